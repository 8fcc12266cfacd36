//! Every scheduling policy of the engine, on SQS batches: bounds, flush
//! policy, deadlines, FIFO, isolation of failures, the report.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use lambda_batch::sqs::SqsEvent;
use lambda_batch::{code, DeadlinePolicy, Error, Failure, FifoMode, Json, Options, Record};

#[tokio::test(start_paused = true)]
async fn a_stalled_message_fails_alone_and_the_others_are_written_before_the_deadline() {
    let fake = Fake {
        step: ms(20),
        stall: HashSet::from(["m3".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = fake
        .run(standard(10), secs(5), &Options::default())
        .await
        .expect("processed");
    assert_eq!(failed(&report), pairs(&[("m3", code::DEADLINE)]));
    assert_eq!(report.succeeded(), 9);
    let flushes = fake.flushes();
    assert_eq!(flushes.len(), 1, "the 9 share one call: {flushes:?}");
    assert_eq!(flushes[0].len(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_waits_only_the_linger_for_a_slow_message() {
    // The fast four end at 20 ms; the slow one runs 2 s. Nothing waits to
    // start and the one running could not fill the chunk: it goes after the
    // 5 ms linger, not after max_linger (100 ms) or the slow message.
    let fake = Fake {
        step: ms(20),
        slow: HashMap::from([("m0".to_owned(), Duration::from_secs(2))]),
        batch: 25,
        ..Fake::default()
    };
    let started = tokio::time::Instant::now();
    let report = fake
        .run(standard(5), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 5);
    let flushes = fake.flushes();
    assert_eq!(
        flushes.len(),
        2,
        "the fast four are not held back: {flushes:?}"
    );
    assert_eq!(flushes[0].len(), 4);
    assert_eq!(flushes[1], strings(&["m0"]));
    assert_eq!(
        fake.flush_times()[0] - started,
        ms(20 + 5),
        "sent after the linger"
    );
}

#[tokio::test(start_paused = true)]
async fn items_finishing_together_share_one_call_and_full_chunks_go_at_once() {
    let fake = Fake {
        step: ms(20),
        batch: 25,
        ..Fake::default()
    };
    let started = tokio::time::Instant::now();
    let report = fake
        .run(standard(60), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 60);
    let sizes: Vec<usize> = fake.flushes().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![25, 25, 10]);
    let times: Vec<Duration> = fake.flush_times().iter().map(|t| *t - started).collect();
    assert_eq!(times[..2], [ms(20), ms(20)], "full chunks wait for nothing");
}

#[tokio::test(start_paused = true)]
async fn at_the_soft_deadline_unstarted_messages_are_reported_and_done_ones_are_written() {
    let fake = Fake {
        step: ms(400),
        batch: 25,
        ..Fake::default()
    };
    let options = Options::builder()
        .concurrency(2)
        .max_linger(Duration::from_secs(60))
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid");
    // 2 s: margin 200 ms, soft deadline at 1.8 s, hard at 1.9 s. Messages
    // start in pairs at 0, 0.4, 0.8, 1.2 and 1.6 s; the last pair would end
    // at 2.0 s, after the hard deadline.
    let report = fake
        .run(standard(20), secs(2), &options)
        .await
        .expect("processed");
    assert_eq!(
        fake.started().len(),
        10,
        "nothing starts after the soft deadline"
    );
    assert_eq!(report.succeeded(), 8, "{:?}", failed(&report));
    let codes = report.failures_by_code();
    assert_eq!(codes, vec![(code::NOT_STARTED, 10), (code::DEADLINE, 2)]);
    assert_eq!(
        fake.flushes().len(),
        1,
        "the chunk goes out at the soft deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_finishing_between_the_soft_and_hard_deadline_is_still_written() {
    // Soft deadline 1.8 s, hard 1.9 s: the message ends at 1.85 s and its
    // batched call (10 ms) starts at once and ends before the hard deadline.
    let fake = Fake {
        step: ms(1_850),
        batch: 25,
        flush_time: ms(10),
        ..Fake::default()
    };
    let started = tokio::time::Instant::now();
    let report = fake
        .run(standard(1), secs(2), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 1, "{:?}", failed(&report));
    assert_eq!(fake.flush_times()[0] - started, ms(1_850));
}

#[tokio::test(start_paused = true)]
async fn a_batched_call_stalled_past_the_hard_deadline_fails_its_items_and_the_answer_comes_in_time(
) {
    let fake = Fake {
        step: ms(10),
        batch: 25,
        flush_stall: true,
        ..Fake::default()
    };
    let started = tokio::time::Instant::now();
    // 2 s to the deadline: hard deadline at 1.9 s.
    let report = fake
        .run(standard(30), secs(2), &lenient())
        .await
        .expect("processed");
    let answered = elapsed(started);
    assert_eq!(fake.flushes().len(), 2, "a full chunk of 25 and the rest");
    assert_eq!(report.failures_by_code(), vec![(code::DEADLINE, 30)]);
    assert_eq!(
        answered,
        ms(1_900),
        "answered at the hard deadline, 100 ms before Lambda's"
    );
    let ids: HashSet<String> = report.reported_ids().map(str::to_owned).collect();
    assert_eq!(
        ids,
        ids_set(30),
        "every item of the stalled calls is reported"
    );
}

fn ids_set(n: usize) -> HashSet<String> {
    ids(n).into_iter().collect()
}

#[tokio::test(start_paused = true)]
async fn the_margin_scales_with_the_time_the_invocation_has() {
    let policy = *Options::default().deadline();
    assert_eq!(policy.margin(Duration::from_secs(1)), ms(200));
    assert_eq!(policy.margin(Duration::from_secs(5)), ms(500));
    assert_eq!(
        policy.margin(Duration::from_secs(900)),
        Duration::from_secs(2)
    );
    // A one-second function gets 800 ms of work, not nothing.
    let fake = Fake {
        step: ms(100),
        ..Fake::default()
    };
    let report = fake
        .run(standard(10), secs(1), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 10);
}

#[tokio::test(start_paused = true)]
async fn an_invocation_too_short_to_work_is_an_error_not_silent_failures() {
    let fake = Fake::default();
    let err = fake
        .run(standard(3), in_(ms(250)), &Options::default())
        .await
        .expect_err("too short");
    assert!(matches!(err, Error::DeadlineTooShort { .. }), "{err}");
    assert_eq!(err.error_type(), "BatchDeadlineTooShort");
    assert!(fake.started().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fair_queue_message_group_on_a_standard_queue_is_not_serialised() {
    let fake = Fake {
        step: ms(100),
        fail: HashSet::from(["m0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let records = (0..20)
        .map(|i| sqs_record(&format!("m{i}"), QUEUE, Some("tenant-a")))
        .collect();
    let report = fake
        .run(sqs_event(records), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.steps.max(), 20, "all 20 ran at once");
    assert_eq!(
        failed(&report),
        pairs(&[("m0", "injected")]),
        "one failure fails no one else"
    );
}

fn fifo_event() -> SqsEvent {
    // Groups a and b interleaved: a0 b0 a1 b1 a2 b2.
    sqs_event(
        ["a0", "b0", "a1", "b1", "a2", "b2"]
            .iter()
            .map(|id| sqs_record(id, FIFO_QUEUE, Some(&id[..1])))
            .collect(),
    )
}

#[tokio::test(start_paused = true)]
async fn fifo_stop_group_reports_the_rest_of_the_failed_group_only() {
    let fake = Fake {
        step: ms(10),
        fail: HashSet::from(["a1".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = fake
        .run(fifo_event(), secs(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        pairs(&[("a1", "injected"), ("a2", code::EARLIER_IN_GROUP_FAILED)])
    );
    assert_eq!(report.succeeded(), 4);
    assert!(!fake.started().contains(&"a2".to_owned()));
    assert_eq!(fake.steps.max(), 2, "the two groups run side by side");
}

#[tokio::test(start_paused = true)]
async fn fifo_stop_batch_reports_every_later_message_of_the_batch() {
    let fake = Fake {
        step: ms(10),
        fail: HashSet::from(["a1".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let options = Options::builder()
        .fifo(FifoMode::StopBatch)
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid");
    let report = fake
        .run(fifo_event(), secs(10), &options)
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        pairs(&[
            ("a1", "injected"),
            ("b1", code::EARLIER_IN_BATCH_FAILED),
            ("a2", code::EARLIER_IN_BATCH_FAILED),
            ("b2", code::EARLIER_IN_BATCH_FAILED)
        ])
    );
    assert_eq!(
        fake.started(),
        strings(&["a0", "b0", "a1"]),
        "one at a time, in order"
    );
    assert_eq!(fake.steps.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn fifo_next_message_starts_only_after_the_previous_one_is_written() {
    let fake = Fake {
        step: ms(10),
        flush_fail: HashSet::from(["a0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = fake
        .run(fifo_event(), secs(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        pairs(&[
            ("a0", "flush_failed"),
            ("a1", code::EARLIER_IN_GROUP_FAILED),
            ("a2", code::EARLIER_IN_GROUP_FAILED)
        ])
    );
    assert_eq!(report.succeeded(), 3);
    assert!(!fake.started().contains(&"a1".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn flush_calls_in_flight_never_exceed_the_limit_on_a_batch_of_10000() {
    let fake = Fake {
        step: ms(5),
        batch: 25,
        flush_time: ms(50),
        ..Fake::default()
    };
    let options = Options::builder()
        .concurrency(256)
        .flush_concurrency(3)
        .build()
        .expect("valid");
    let report = fake
        .run(standard(10_000), secs(600), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 10_000);
    assert_eq!(
        fake.flushing.max(),
        3,
        "the limit is reached and never passed"
    );
    assert_eq!(fake.steps.max(), 256);
    let written: usize = fake.flushes().iter().map(Vec::len).sum();
    assert_eq!(written, 10_000);
    assert!(fake.flushes().iter().all(|c| c.len() <= 25));
}

#[tokio::test(start_paused = true)]
async fn one_failing_flush_fails_only_its_own_items() {
    let fake = Fake {
        step: ms(10),
        batch: 25,
        flush_fail: HashSet::from(["m30".to_owned()]),
        ..Fake::default()
    };
    let report = fake
        .run(standard(60), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.flushes().len(), 3);
    assert_eq!(failed(&report), pairs(&[("m30", "flush_failed")]));
    assert_eq!(report.succeeded(), 59);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_flush_fails_its_items_and_a_short_answer_is_no_success() {
    let panicking = Fake {
        batch: 25,
        flush_panic: true,
        ..Fake::default()
    };
    let report = panicking
        .run(standard(3), secs(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(report.failures_by_code(), vec![(code::PANICKED, 3)]);

    let short = Fake {
        batch: 25,
        flush_short: 1,
        ..Fake::default()
    };
    let report = short
        .run(standard(3), secs(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(failed(&report), pairs(&[("m2", code::NO_RESULT)]));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_message_fails_alone() {
    for batch in [0, 25] {
        let fake = Fake {
            panic: HashSet::from(["m1".to_owned()]),
            batch,
            ..Fake::default()
        };
        let report = fake
            .run(standard(4), secs(10), &Options::default())
            .await
            .expect("processed");
        assert_eq!(
            failed(&report),
            pairs(&[("m1", code::PANICKED)]),
            "batch {batch}"
        );
        assert!(report.failures()[0]
            .failure
            .detail()
            .contains("injected panic"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_repeated_message_id_is_processed_once_and_reported_once() {
    let fake = Fake {
        fail: HashSet::from(["m1".to_owned()]),
        ..Fake::default()
    };
    let mut records = standard(3).records;
    records.push(sqs_record("m1", QUEUE, None));
    records.push(sqs_record("m0", QUEUE, None));
    let report = fake
        .run(sqs_event(records), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.started().len(), 3);
    assert_eq!(report.duplicates(), 2);
    assert_eq!(failed(&report), pairs(&[("m1", "injected")]));
    assert_eq!(report.response().batch_item_failures.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_record_without_a_message_id_fails_the_invocation_with_a_clear_error() {
    for id in [None, Some(String::new())] {
        let mut records = standard(2).records;
        records[1].message_id = id;
        let err = Fake::default()
            .run(sqs_event(records), secs(10), &Options::default())
            .await
            .expect_err("must fail");
        assert_eq!(err, Error::MissingItemIdentifier { index: 1 });
        assert!(
            err.to_string()
                .contains("record 1 of the batch has no item identifier"),
            "{err}"
        );
        assert_eq!(err.error_type(), "BatchInvalidEvent");
    }
}

#[tokio::test(start_paused = true)]
async fn every_reported_id_is_a_message_id_of_the_batch() {
    let fake = Fake {
        fail: (0..50).step_by(3).map(|i| format!("m{i}")).collect(),
        batch: 10,
        flush_fail: HashSet::from(["m10".to_owned()]),
        ..Fake::default()
    };
    let report = fake
        .run(standard(50), secs(10), &Options::default())
        .await
        .expect("processed");
    let batch = ids_set(50);
    let response = report.response();
    for failure in &response.batch_item_failures {
        assert!(
            batch.contains(&failure.item_identifier),
            "{}",
            failure.item_identifier
        );
    }
    assert_eq!(response.batch_item_failures.len(), 18);
}

#[tokio::test(start_paused = true)]
async fn when_nothing_succeeds_the_invocation_fails_with_a_bounded_summary_unless_told_otherwise() {
    let fake = Fake {
        fail: ids(3).into_iter().collect(),
        ..Fake::default()
    };
    let err = fake
        .run(standard(3), secs(10), &Options::default())
        .await
        .expect_err("all failed");
    let Error::AllFailed(summary) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((summary.received, summary.failed), (3, 3));
    assert_eq!(err.error_type(), "BatchAllFailed");
    let report = fake
        .run(standard(3), secs(10), &lenient())
        .await
        .expect("reported instead");
    assert_eq!(report.response().batch_item_failures.len(), 3);
    let empty = fake
        .run(sqs_event(vec![]), secs(10), &Options::default())
        .await
        .expect("an empty batch is no failure");
    assert_eq!(empty.received(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_all_failed_error_stays_short_on_a_batch_of_10000_with_many_codes() {
    // 10,000 failures under 40 different codes: the error names at most
    // eight codes and the rest as one count, whatever the batch size.
    let handler = |(), record: Record<SqsEvent>| async move {
        let n: usize = record.id()[1..].parse().expect("m<n>");
        Err::<(), _>(Failure::new(format!("code_{}", n % 40), "down"))
    };
    let err = lambda_batch::process(standard(10_000), secs(60), &handler, &Options::default())
        .await
        .expect_err("all failed");
    let text = err.to_string();
    assert!(text.len() < 300, "{} characters: {text}", text.len());
    assert!(
        text.starts_with("no record of the batch succeeded: 10000 of 10000 will be delivered again"),
        "{text}"
    );
    assert!(text.ends_with("other codes x8000"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_per_message() {
    let fake = Fake {
        step: ms(10),
        ..Fake::default()
    };
    let options = Options::builder().concurrency(7).build().expect("valid");
    let report = fake
        .run(standard(100), secs(10), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 100);
    assert_eq!(fake.steps.max(), 7);
}

#[derive(serde::Deserialize)]
struct Order {
    id: String,
    cents: u64,
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_parse_fails_only_its_message() {
    let mut records = standard(3).records;
    records[0].body = Some(r#"{"id":"a","cents":5}"#.to_owned());
    records[1].body = Some(r#"{"id":"b","cents":"five"}"#.to_owned());
    records[2].body = Some("not json".to_owned());
    let orders = Mutex::new(Vec::new());
    let handler = |Json(order): Json<Order>, _: Record<SqsEvent>| {
        orders
            .lock()
            .expect("lock")
            .push(format!("{}:{}", order.id, order.cents));
        async { Ok(()) }
    };
    let report = lambda_batch::process(sqs_event(records), secs(10), &handler, &Options::default())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        pairs(&[("m1", code::INVALID_PAYLOAD), ("m2", code::INVALID_PAYLOAD)])
    );
    assert!(
        report.failures()[0]
            .failure
            .detail()
            .contains("invalid type"),
        "{:?}",
        report.failures()[0]
    );
    assert_eq!(*orders.lock().expect("lock"), strings(&["a:5"]));
}

#[test]
fn out_of_range_options_are_refused_when_built_not_per_invocation() {
    use lambda_batch::OptionsError;
    assert_eq!(
        Options::builder().concurrency(0).build(),
        Err(OptionsError::ZeroConcurrency)
    );
    assert_eq!(
        Options::builder().flush_concurrency(0).build(),
        Err(OptionsError::ZeroFlushConcurrency)
    );
    let err = Options::builder()
        .linger(ms(200))
        .build()
        .expect_err("above max_linger");
    assert!(err.to_string().contains("max_linger"), "{err}");
    assert!(Options::builder()
        .linger(ms(200))
        .max_linger(ms(200))
        .build()
        .is_ok());
    assert!(matches!(
        DeadlinePolicy::new(ms(200), 1.0, ms(2_000)),
        Err(OptionsError::MarginFraction { .. })
    ));
    assert!(matches!(
        DeadlinePolicy::new(ms(200), f64::NAN, ms(2_000)),
        Err(OptionsError::MarginFraction { .. })
    ));
    assert!(matches!(
        DeadlinePolicy::new(ms(300), 0.1, ms(200)),
        Err(OptionsError::MarginCapBelowFloor { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_step_timeout_frees_a_stalled_slot_so_the_fifo_lane_goes_on() {
    let fake = Fake {
        step: ms(10),
        stall: HashSet::from(["a0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let options = Options::builder()
        .fifo(FifoMode::StopBatch)
        .step_timeout(Some(ms(300)))
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid");
    let started = tokio::time::Instant::now();
    let report = fake
        .run(fifo_event(), secs(60), &options)
        .await
        .expect("processed");
    assert_eq!(elapsed(started), ms(300), "not held to the deadline");
    assert_eq!(
        failed(&report)[0],
        ("a0".to_owned(), code::STEP_TIMEOUT.to_owned())
    );
    assert_eq!(
        report.failures().len(),
        6,
        "the rest of the batch is reported"
    );
}

#[tokio::test(start_paused = true)]
async fn a_chunk_that_running_messages_will_fill_waits_for_them_not_the_linger() {
    // 100 messages, 64 at a time, 20 ms each: the first wave leaves 14 items
    // once two chunks of 25 are full; the 36 still running fill it, so it is
    // not sent half-empty after the linger: four calls, all full.
    let fake = Fake {
        step: ms(20),
        batch: 25,
        flush_time: ms(20),
        ..Fake::default()
    };
    let report = fake
        .run(standard(100), secs(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 100);
    let sizes: Vec<usize> = fake.flushes().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![25, 25, 25, 25]);
}

#[cfg(feature = "runtime")]
#[test]
fn errors_reach_lambda_under_their_documented_names() {
    let cases = [
        (
            Error::MissingItemIdentifier { index: 0 },
            "BatchInvalidEvent",
        ),
        (
            Error::DeadlineTooShort {
                available: ms(1),
                margin: ms(1),
                min_work: ms(1),
            },
            "BatchDeadlineTooShort",
        ),
    ];
    for (err, name) in cases {
        let diagnostic = lambda_runtime::Diagnostic::from(err.clone());
        assert_eq!(diagnostic.error_type, name);
        assert_eq!(diagnostic.error_message, err.to_string());
    }
}
