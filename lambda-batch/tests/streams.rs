//! Kinesis and DynamoDB Streams: Lambda resumes at the lowest reported
//! sequence number and delivers everything after it again, so the engine
//! stops at the first failure and reports only the checkpoint; records run
//! in order per key and concurrently across keys.

mod common;

use std::collections::HashSet;

use common::*;
use lambda_batch::dynamodb::{AttributeValue, DynamoDbEvent};
use lambda_batch::kinesis::KinesisEvent;
use lambda_batch::{code, Error, Options, StreamOrder};

fn seqs(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{i:03}")).collect()
}

/// `n` records, each with a partition key of its own.
fn distinct_keys(n: usize) -> KinesisEvent {
    let seqs = seqs(n);
    let records: Vec<(&str, &str)> = seqs.iter().map(|s| (s.as_str(), s.as_str())).collect();
    kinesis(&records)
}

fn reported(response: &lambda_batch::kinesis::KinesisEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_no_later_record_starts_and_only_the_checkpoint_is_reported() {
    // Two at a time, 10 ms each: 001 and 002, then 003 (fails) and 004.
    // 004 was already running and finishes; 005 and 006 never start.
    let fake = Fake {
        step: ms(10),
        fail: HashSet::from(["003".to_owned()]),
        ..Fake::default()
    };
    let options = Options::builder().concurrency(2).build().expect("valid");
    let report = fake
        .run(distinct_keys(6), secs(10), &options)
        .await
        .expect("processed");
    assert_eq!(fake.started(), strings(&["001", "002", "003", "004"]));
    assert_eq!(reported(&report.response()), strings(&["003"]));
    assert_eq!(report.succeeded(), 2);
    assert_eq!(
        failed(&report),
        pairs(&[
            ("003", "injected"),
            ("004", code::AFTER_CHECKPOINT),
            ("005", code::AFTER_CHECKPOINT),
            ("006", code::AFTER_CHECKPOINT),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn the_lowest_failure_is_the_checkpoint_even_when_a_later_record_fails_first() {
    let fake = Fake {
        step: ms(5),
        slow: [("002".to_owned(), ms(50))].into(),
        fail: HashSet::from(["002".to_owned(), "005".to_owned()]),
        ..Fake::default()
    };
    let report = fake
        .run(distinct_keys(6), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(reported(&report.response()), strings(&["002"]));
    assert_eq!(report.succeeded(), 1, "only 001 is before the checkpoint");
    assert_eq!(
        failed(&report)[3],
        ("005".to_owned(), "injected".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn records_of_one_partition_key_run_in_order_and_other_keys_run_concurrently() {
    let event = kinesis(&[
        ("001", "a"),
        ("002", "b"),
        ("003", "a"),
        ("004", "b"),
        ("005", "a"),
        ("006", "c"),
    ]);
    let fake = Fake {
        step: ms(10),
        slow: [("001".to_owned(), ms(30))].into(),
        ..Fake::default()
    };
    let report = fake
        .run(event, secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 6);
    assert_eq!(fake.steps.max(), 3, "one record per key at a time");
    let finished = fake.finished();
    let position = |id: &str| finished.iter().position(|f| f == id).expect("finished");
    assert!(position("001") < position("003") && position("003") < position("005"));
    assert!(
        position("004") < position("001"),
        "key b does not wait for key a: {finished:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_order_runs_one_record_at_a_time() {
    let fake = Fake {
        step: ms(10),
        ..Fake::default()
    };
    let options = Options::builder()
        .stream_order(StreamOrder::InOrder)
        .build()
        .expect("valid");
    let report = fake
        .run(distinct_keys(5), secs(10), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 5);
    assert_eq!(fake.steps.max(), 1);
    assert_eq!(fake.finished(), seqs(5));
}

#[tokio::test(start_paused = true)]
async fn at_the_deadline_the_first_unfinished_record_is_the_checkpoint() {
    // One at a time, 400 ms each, 2 s to the deadline (soft 1.8 s, hard
    // 1.9 s): 001-004 finish, 005 starts at 1.6 s and is cut off at the hard
    // deadline, 006-008 never start.
    let fake = Fake {
        step: ms(400),
        ..Fake::default()
    };
    let options = Options::builder()
        .stream_order(StreamOrder::InOrder)
        .build()
        .expect("valid");
    let report = fake
        .run(distinct_keys(8), secs(2), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 4, "{:?}", failed(&report));
    assert_eq!(reported(&report.response()), strings(&["005"]));
    assert_eq!(
        failed(&report)[0],
        ("005".to_owned(), code::DEADLINE.to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn records_after_the_checkpoint_waiting_in_a_chunk_are_not_written() {
    // 002-005 are done at 10 ms and wait in a chunk (linger 100 ms); 001
    // fails at 50 ms, so the chunk is dropped: they are delivered again.
    let fake = Fake {
        step: ms(10),
        slow: [("001".to_owned(), ms(50))].into(),
        fail: HashSet::from(["001".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let options = Options::builder()
        .linger(ms(100))
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid");
    let report = fake
        .run(distinct_keys(5), secs(10), &options)
        .await
        .expect("processed");
    assert!(fake.flushes().is_empty(), "{:?}", fake.flushes());
    assert_eq!(reported(&report.response()), strings(&["001"]));
    assert_eq!(
        report.failures_by_code(),
        vec![(code::AFTER_CHECKPOINT, 4), ("injected", 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_record_fails_the_invocation_by_default() {
    let fake = Fake {
        fail: HashSet::from(["001".to_owned()]),
        ..Fake::default()
    };
    let err = fake
        .run(distinct_keys(3), secs(10), &Options::default())
        .await
        .expect_err("nothing succeeded");
    assert!(matches!(err, Error::AllFailed(_)), "{err}");
}

/// A DynamoDB Streams batch: `(sequence number, item key)` pairs in order,
/// with the fixture's first record as the template.
fn dynamodb(records: &[(&str, &str)]) -> DynamoDbEvent {
    let mut event: DynamoDbEvent =
        serde_json::from_str(include_str!("fixtures/example-dynamodb-event.json"))
            .expect("fixture parses");
    let template = event.records[0].clone();
    event.records = records
        .iter()
        .map(|(seq, key)| {
            let mut r = template.clone();
            r.change.sequence_number = Some((*seq).to_owned());
            r.change
                .keys
                .insert("key".to_owned(), AttributeValue::S((*key).to_owned()));
            r
        })
        .collect();
    event
}

#[tokio::test(start_paused = true)]
async fn dynamodb_changes_of_one_item_run_in_order_and_the_checkpoint_is_the_lowest_failure() {
    let event = dynamodb(&[("1", "x"), ("2", "y"), ("3", "x"), ("4", "y"), ("5", "x")]);
    let fake = Fake {
        step: ms(10),
        fail: HashSet::from(["3".to_owned()]),
        ..Fake::default()
    };
    let report = fake
        .run(event, secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.steps.max(), 2, "items x and y side by side");
    assert!(
        !fake.started().contains(&"5".to_owned()),
        "after 3 failed, 5 never starts"
    );
    let response = report.response();
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_deref())
        .collect();
    assert_eq!(ids, vec![Some("3")]);
    assert_eq!(report.succeeded(), 2);
}
