//! Behaviour of the S3 + DynamoDB processor under the engine, with in-memory
//! stores. The engine's own policies are tested in `lambda-batch/tests`.

mod fakes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use consumer::{code, Config, Pipeline};
use fakes::{MemObjects, MemRecords};
use lambda_batch::sqs::{SqsEvent, SqsMessage};
use lambda_batch::{code as engine_code, Error, Options, Report};
use pipeline_core::{record_id, s3_key};

fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.receipt_handle = Some(format!("rh-{id}"));
    m.body = Some(body.to_owned());
    m.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:q".to_owned());
    m.attributes = HashMap::from([
        (
            "ApproximateFirstReceiveTimestamp".to_owned(),
            "1798329723456".to_owned(),
        ),
        ("SentTimestamp".to_owned(), "1798329723000".to_owned()),
    ]);
    m
}

fn fifo(id: &str, group: &str) -> SqsMessage {
    let mut m = message(id, "{}");
    m.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:q.fifo".to_owned());
    m.attributes
        .insert("MessageGroupId".to_owned(), group.to_owned());
    m
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn batch(n: usize) -> Vec<SqsMessage> {
    (0..n)
        .map(|i| message(&format!("m-{i}"), &format!("{{\"n\":{i}}}")))
        .collect()
}

type State = Pipeline<MemObjects, MemRecords>;

async fn handle(s: &State, event: &SqsEvent, deadline: Instant) -> Result<Report<SqsEvent>, Error> {
    lambda_batch::process_batched(event.clone(), deadline, s, &s.config.engine).await
}

fn engine(f: impl FnOnce(lambda_batch::OptionsBuilder) -> lambda_batch::OptionsBuilder) -> Options {
    f(Options::builder()).build().expect("valid options")
}

fn state(objects: MemObjects, records: MemRecords) -> State {
    let mut config = Config::for_tests("bucket", "table");
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(4);
    Pipeline {
        objects,
        records,
        config,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn rid(message_id: &str) -> String {
    record_id(message_id).to_string()
}

fn failed_ids(state: &State, report: &Report<SqsEvent>) -> Vec<String> {
    let response = report.response();
    let ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    for id in &ids {
        assert!(
            !id.is_empty(),
            "empty itemIdentifier would fail the whole batch"
        );
    }
    let _ = state;
    ids
}

#[tokio::test]
async fn every_message_ends_as_one_object_and_one_item() {
    let s = state(MemObjects::default(), MemRecords::default());
    let report = handle(&s, &event(batch(7)), far()).await.expect("handled");
    assert_eq!(report.succeeded(), 7);
    assert!(report.failures().is_empty());
    assert_eq!(s.objects.keys().len(), 7);
    assert_eq!(s.records.ids().len(), 7);
    let key = s3_key("records/", &record_id("m-3"));
    let object = s.objects.get(&key).expect("object written");
    assert_eq!(object["id"], rid("m-3"));
    assert_eq!(object["messageId"], "m-3");
    assert_eq!(object["receivedAt"], "2026-12-27T00:02:03.456Z");
    assert_eq!(object["body"], serde_json::json!({"n": 3}));
    let item = s.records.items.lock().expect("lock")[&rid("m-3")].clone();
    assert_eq!(item.s3_key, key);
    assert_eq!(item.body_bytes, 7);
}

#[tokio::test]
async fn partial_failure_is_reported_by_message_id() {
    let objects = MemObjects {
        fail: HashSet::from(["m-2".to_owned()]),
        ..Default::default()
    };
    let s = state(objects, MemRecords::default());
    let report = handle(&s, &event(batch(5)), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["m-2"]);
    assert!(report.failures()[0].failure.code() == code::S3_PUT_FAILED);
    assert_eq!(report.succeeded(), 4);
}

#[tokio::test]
async fn failed_s3_put_keeps_the_item_out_of_dynamodb() {
    let objects = MemObjects {
        fail: HashSet::from(["m-1".to_owned()]),
        ..Default::default()
    };
    let s = state(objects, MemRecords::default());
    handle(&s, &event(batch(3)), far()).await.expect("handled");
    assert!(!s.records.ids().contains(&rid("m-1")));
    assert!(s
        .records
        .calls()
        .iter()
        .flatten()
        .all(|id| *id != rid("m-1")));
}

#[tokio::test]
async fn unprocessed_items_are_retried_until_stored() {
    let records = MemRecords::default();
    records
        .unprocessed
        .lock()
        .expect("lock")
        .insert(rid("m-0"), 2);
    let s = state(MemObjects::default(), records);
    let report = handle(&s, &event(batch(3)), far()).await.expect("handled");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(s.records.calls().len(), 3, "first call plus two retries");
    assert_eq!(
        s.records.calls()[1],
        vec![rid("m-0")],
        "only the unprocessed item is retried"
    );
}

#[tokio::test]
async fn items_still_unprocessed_after_every_retry_are_reported_as_failures() {
    let records = MemRecords::default();
    records
        .unprocessed
        .lock()
        .expect("lock")
        .insert(rid("m-1"), u32::MAX);
    let s = state(MemObjects::default(), records);
    let report = handle(&s, &event(batch(3)), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["m-1"]);
    assert_eq!(
        report.failures()[0].failure.code(),
        code::DYNAMODB_UNPROCESSED
    );
    assert_eq!(
        s.records.calls().len() as u32,
        s.config.dynamodb_max_attempts
    );
}

#[tokio::test]
async fn more_than_25_items_are_chunked_without_duplicate_keys() {
    let s = state(MemObjects::default(), MemRecords::default());
    let report = handle(&s, &event(batch(60)), far()).await.expect("handled");
    assert_eq!(report.succeeded(), 60);
    let calls = s.records.calls();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert!(call.len() <= 25);
        assert_eq!(call.iter().collect::<HashSet<_>>().len(), call.len());
    }
    assert_eq!(s.records.ids().len(), 60);
}

#[tokio::test]
async fn a_message_delivered_twice_in_one_batch_is_written_once_and_reported_once() {
    let mut records = batch(30);
    records.push(message("m-4", "{\"n\":4}"));
    records.push(message("m-29", "{\"n\":29}"));
    let objects = MemObjects {
        fail: HashSet::from(["m-29".to_owned()]),
        ..Default::default()
    };
    let s = state(objects, MemRecords::default());
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert_eq!(s.objects.puts.load(Ordering::SeqCst), 30);
    assert_eq!(s.records.ids().len(), 29);
    assert_eq!(failed_ids(&s, &report), vec!["m-29"]);
}

#[tokio::test]
async fn a_whole_chunk_write_error_fails_only_that_chunks_messages() {
    // 60 messages: three chunks, and only the one holding m-30 fails.
    let records = MemRecords {
        fail_with: Some(rid("m-30")),
        ..Default::default()
    };
    let s = state(MemObjects::default(), records);
    let report = handle(&s, &event(batch(60)), far()).await.expect("handled");
    let calls = s.records.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let failing: HashSet<String> = calls
        .iter()
        .find(|c| c.contains(&rid("m-30")))
        .expect("a chunk holds m-30")
        .iter()
        .cloned()
        .collect();
    assert_eq!(report.failures().len(), failing.len());
    assert!(report
        .failures()
        .iter()
        .all(|f| f.failure.code() == code::DYNAMODB_WRITE_FAILED && failing.contains(&rid(&f.id))));
    assert_eq!(report.succeeded(), 60 - failing.len());
    assert_eq!(s.records.ids().len(), 60 - failing.len());
}

#[tokio::test]
async fn an_all_failed_batch_fails_the_invocation_and_the_report_names_every_message() {
    let fail: HashSet<String> = (0..10).map(|i| format!("m-{i}")).collect();
    let mut s = state(
        MemObjects {
            fail,
            ..Default::default()
        },
        MemRecords::default(),
    );
    let err = handle(&s, &event(batch(10)), far())
        .await
        .expect_err("all failed");
    let Error::AllFailed(summary) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((summary.received, summary.failed), (10, 10));
    assert_eq!(err.error_type(), "BatchAllFailed");
    assert!(s.records.calls().is_empty());
    s.config.engine = engine(|o| o.fail_on_full_batch_failure(false));
    let report = handle(&s, &event(batch(10)), far())
        .await
        .expect("reported");
    let ids = failed_ids(&s, &report);
    assert_eq!(ids, (0..10).map(|i| format!("m-{i}")).collect::<Vec<_>>());
    let report = handle(&s, &event(batch(10)), far())
        .await
        .expect("reported");
    assert_eq!(report.response().batch_item_failures.len(), 10);
}

#[tokio::test]
async fn raw_non_json_bodies_are_stored_as_strings() {
    let s = state(MemObjects::default(), MemRecords::default());
    let records = vec![
        message("a", "hello"),
        message("b", "{not json"),
        message("c", "\"quoted\""),
    ];
    handle(&s, &event(records), far()).await.expect("handled");
    let body = |id: &str| {
        s.objects
            .get(&s3_key("records/", &record_id(id)))
            .expect("object")["body"]
            .clone()
    };
    assert_eq!(body("a"), "hello");
    assert_eq!(body("b"), "{not json");
    assert_eq!(body("c"), "quoted");
}

#[tokio::test]
async fn fifo_group_stops_at_its_first_failure_and_reports_the_rest() {
    let records = vec![
        fifo("a1", "A"),
        fifo("b1", "B"),
        fifo("a2", "A"),
        fifo("b2", "B"),
        fifo("a3", "A"),
    ];
    let objects = MemObjects {
        fail: HashSet::from(["a2".to_owned()]),
        ..Default::default()
    };
    let s = state(objects, MemRecords::default());
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["a2", "a3"]);
    assert!(
        !s.objects
            .keys()
            .contains(&s3_key("records/", &record_id("a3"))),
        "a3 must not be processed"
    );
    assert_eq!(
        s.records.ids(),
        HashSet::from([rid("a1"), rid("b1"), rid("b2")])
    );
}

#[tokio::test]
async fn fifo_unprocessed_item_fails_the_later_messages_of_its_group() {
    let records = MemRecords::default();
    records
        .unprocessed
        .lock()
        .expect("lock")
        .insert(rid("a1"), u32::MAX);
    let s = state(MemObjects::default(), records);
    let batch = vec![
        fifo("a1", "A"),
        fifo("a2", "A"),
        fifo("b1", "B"),
        fifo("b2", "B"),
    ];
    let report = handle(&s, &event(batch), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["a1", "a2"]);
    assert_eq!(
        report.failures()[1].failure.code(),
        engine_code::EARLIER_IN_GROUP_FAILED
    );
    let a2 = s3_key("records/", &record_id("a2"));
    assert!(
        !s.objects.keys().contains(&a2),
        "a2 must not be processed after a1 failed"
    );
    assert_eq!(s.records.ids(), HashSet::from([rid("b1"), rid("b2")]));
}

#[tokio::test]
async fn near_the_deadline_finished_messages_are_stored_and_only_the_rest_reported() {
    let objects = MemObjects {
        delay: Some(Duration::from_millis(400)),
        ..Default::default()
    };
    let mut s = state(objects, MemRecords::default());
    s.config.engine = engine(|o| o.concurrency(2));
    // 700 ms: margin 200 ms, so new work starts until 500 ms and running
    // work is waited for until 600 ms. m-0 and m-1 end at 400 ms and are
    // written; m-2 and m-3 start at 400 ms and are cut off; m-4 and m-5
    // never start.
    let deadline = Instant::now() + Duration::from_millis(700);
    let report = handle(&s, &event(batch(6)), deadline)
        .await
        .expect("handled");
    assert!(Instant::now() < deadline, "returned after the deadline");
    assert_eq!(failed_ids(&s, &report), vec!["m-2", "m-3", "m-4", "m-5"]);
    let codes: Vec<&str> = report.failures().iter().map(|f| f.failure.code()).collect();
    assert_eq!(
        codes,
        [
            engine_code::DEADLINE,
            engine_code::DEADLINE,
            engine_code::NOT_STARTED,
            engine_code::NOT_STARTED
        ]
    );
    assert_eq!(s.records.ids(), HashSet::from([rid("m-0"), rid("m-1")]));
    assert_eq!(
        s.objects.puts.load(Ordering::SeqCst),
        4,
        "new work must not start after the soft deadline"
    );
}

#[tokio::test]
async fn a_deadline_already_passed_is_an_invocation_error_and_starts_nothing() {
    let s = state(MemObjects::default(), MemRecords::default());
    let err = handle(&s, &event(batch(3)), Instant::now())
        .await
        .expect_err("too short");
    assert!(matches!(err, Error::DeadlineTooShort { .. }), "{err}");
    assert_eq!(s.objects.puts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_panicking_message_fails_alone() {
    let objects = MemObjects {
        panic: HashSet::from(["m-1".to_owned()]),
        ..Default::default()
    };
    let s = state(objects, MemRecords::default());
    let report = handle(&s, &event(batch(3)), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["m-1"]);
    assert_eq!(report.failures()[0].failure.code(), engine_code::PANICKED);
    assert_eq!(report.succeeded(), 2);
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_invocation_with_a_clear_error() {
    let mut bad = message("x", "{}");
    bad.message_id = None;
    let s = state(MemObjects::default(), MemRecords::default());
    let err = handle(&s, &event(vec![message("a", "{}"), bad]), far())
        .await
        .expect_err("must fail");
    assert_eq!(err, Error::MissingItemIdentifier { index: 1 });
}

#[tokio::test]
async fn a_batch_of_10000_is_stored_with_bounded_concurrency() {
    let objects = MemObjects {
        delay: Some(Duration::from_millis(1)),
        ..Default::default()
    };
    let mut s = state(objects, MemRecords::default());
    s.config.engine = engine(|o| o.concurrency(50));
    let report = handle(&s, &event(batch(10_000)), far())
        .await
        .expect("handled");
    assert_eq!(report.succeeded(), 10_000);
    assert_eq!(s.records.ids().len(), 10_000);
    let max = s.objects.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 50, "max in flight {max}");
    assert!(
        max > 1,
        "messages should run concurrently, max in flight {max}"
    );
}

#[tokio::test]
async fn receive_time_falls_back_to_sent_time() {
    let mut m = message("a", "{}");
    m.attributes.remove("ApproximateFirstReceiveTimestamp");
    let s = state(MemObjects::default(), MemRecords::default());
    handle(&s, &event(vec![m]), far()).await.expect("handled");
    let object = s
        .objects
        .get(&s3_key("records/", &record_id("a")))
        .expect("object");
    assert_eq!(object["receivedAt"], "2026-12-27T00:02:03.000Z");
}

#[tokio::test]
async fn bodies_with_the_reject_marker_are_reported_and_not_written() {
    let mut s = state(MemObjects::default(), MemRecords::default());
    s.config.reject_marker = Some("poison-pill".to_owned());
    let records = vec![message("a", "{}"), message("b", r#"{"x":"poison-pill"}"#)];
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["b"]);
    assert_eq!(report.failures()[0].failure.code(), code::REJECTED);
    assert_eq!(s.objects.keys().len(), 1);
    assert_eq!(s.records.ids(), HashSet::from([rid("a")]));
}

/// An event as Lambda sends it, parsed the way the runtime parses it.
fn event_from_json(records: serde_json::Value) -> SqsEvent {
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("event parses")
}

#[tokio::test]
async fn bodies_at_the_sqs_size_limit_are_stored_whole() {
    let limit = pipeline_core::MAX_SQS_MESSAGE_BYTES;
    let json_body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(limit - 10));
    let text_body = "y".repeat(limit);
    assert_eq!(json_body.len(), limit);
    let s = state(MemObjects::default(), MemRecords::default());
    let records = vec![
        message("big-json", &json_body),
        message("big-text", &text_body),
    ];
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert!(report.failures().is_empty());
    let items = s.records.items.lock().expect("lock").clone();
    assert_eq!(items[&rid("big-json")].body_bytes, limit as u64);
    let object = s
        .objects
        .get(&s3_key("records/", &record_id("big-text")))
        .expect("object");
    assert_eq!(object["body"].as_str().map(str::len), Some(limit));
}

#[tokio::test]
async fn unusual_unicode_survives_as_valid_json() {
    let bodies = [
        "\u{202E}right-to-left\u{202C} \u{200D}\u{1F468}\u{200D}\u{1F469}",
        r#"{"lone":"\ud800"}"#,
        "\u{FEFF}{\"bom\":1}",
        "tab\tnew\nline\r\u{7F}",
        r#"{"escaped":"\u0000\u001f"}"#,
        "日本語のテキスト",
    ];
    let records: Vec<SqsMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| message(&format!("u-{i}"), b))
        .collect();
    let s = state(MemObjects::default(), MemRecords::default());
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    for (i, raw) in bodies.iter().enumerate() {
        let object = s
            .objects
            .get(&s3_key("records/", &record_id(&format!("u-{i}"))))
            .expect("valid JSON object");
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(parsed) => assert_eq!(object["body"], parsed, "body {i}"),
            Err(_) => assert_eq!(object["body"].as_str(), Some(*raw), "body {i}"),
        }
    }
}

#[tokio::test]
async fn message_attributes_of_every_type_and_a_missing_receipt_handle_are_fine() {
    let e = event_from_json(serde_json::json!([{
        "messageId": "attrs",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1798329723000",
                        "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1798329723456",
                        "AWSTraceHeader": "Root=1-00000000-000000000000000000000000"},
        "messageAttributes": {
            "s": {"stringValue": "text", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "n": {"stringValue": "-12.5e3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
            "b": {"binaryValue": "AAECAwT/", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
            "c": {"stringValue": "x", "stringListValues": [], "binaryListValues": [], "dataType": "String.custom"}
        },
        "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1"
    }]));
    let s = state(MemObjects::default(), MemRecords::default());
    let report = handle(&s, &e, far()).await.expect("handled");
    assert_eq!(report.succeeded(), 1);
}

#[tokio::test]
async fn a_fifo_event_as_lambda_sends_it_keeps_group_order() {
    let fifo_record = |id: &str, group: &str, seq: &str| {
        serde_json::json!({
            "messageId": id, "receiptHandle": "rh", "body": format!("{{\"id\":\"{id}\"}}"),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1798329723000",
                            "SequenceNumber": seq, "MessageGroupId": group,
                            "MessageDeduplicationId": id, "ApproximateFirstReceiveTimestamp": "1798329723456"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo", "awsRegion": "us-east-1"
        })
    };
    let e = event_from_json(serde_json::json!([
        fifo_record("g1-a", "g1", "1"),
        fifo_record("g2-a", "g2", "2"),
        fifo_record("g1-b", "g1", "3"),
        fifo_record("g1-c", "g1", "4"),
    ]));
    let records = MemRecords::default();
    records
        .unprocessed
        .lock()
        .expect("lock")
        .insert(rid("g1-b"), u32::MAX);
    let s = state(MemObjects::default(), records);
    let report = handle(&s, &e, far()).await.expect("handled");
    assert_eq!(failed_ids(&s, &report), vec!["g1-b", "g1-c"]);
    assert!(s.records.ids().contains(&rid("g1-a")) && s.records.ids().contains(&rid("g2-a")));
}

#[tokio::test]
async fn fifo_groups_share_dynamodb_calls() {
    let batch: Vec<SqsMessage> = (0..30)
        .map(|i| fifo(&format!("g{}-{}", i % 10, i / 10), &format!("G{}", i % 10)))
        .collect();
    let s = state(MemObjects::default(), MemRecords::default());
    let report = handle(&s, &event(batch), far()).await.expect("handled");
    assert_eq!(report.succeeded(), 30);
    // Ten groups of three: each step of the ten groups shares one call.
    let calls = s.records.calls();
    assert_eq!(
        calls.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 10]
    );
    let first_round: HashSet<String> = (0..10).map(|g| rid(&format!("g{g}-0"))).collect();
    assert_eq!(
        calls[0].iter().cloned().collect::<HashSet<_>>(),
        first_round
    );
}

#[tokio::test]
async fn two_messages_with_one_idempotency_key_in_a_batch_are_one_item_and_both_succeed() {
    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    let keyed = |id: &str| {
        let mut m = message(id, "{\"order\":7}");
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".to_owned());
        attribute.string_value = Some("order-7".to_owned());
        m.message_attributes.insert(
            pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE.to_owned(),
            attribute,
        );
        m
    };
    let s = state(MemObjects::default(), MemRecords::default());
    let records = vec![keyed("first-send"), message("other", "{}"), keyed("resend")];
    let report = handle(&s, &event(records), far()).await.expect("handled");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(report.succeeded(), 3);
    let id = pipeline_core::message_record_id("first-send", Some("order-7")).to_string();
    assert_eq!(s.records.ids(), HashSet::from([id, rid("other")]));
    for call in s.records.calls() {
        let distinct: HashSet<&String> = call.iter().collect();
        assert_eq!(
            distinct.len(),
            call.len(),
            "one key twice in one call: {call:?}"
        );
    }
}

#[tokio::test]
async fn a_throttling_storm_that_ends_before_the_deadline_is_ridden_out_and_nothing_is_reported() {
    // BatchWriteItem throttled 8 times in a row (longer than the SDK's three
    // attempts), then accepted: the pipeline's retries carry the chunk.
    let records = MemRecords::default();
    records.throttle_first.store(8, Ordering::SeqCst);
    let s = state(MemObjects::default(), records);
    let report = handle(&s, &event(batch(10)), far()).await.expect("handled");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(s.records.calls().len(), 9);
    assert_eq!(s.records.ids().len(), 10);
}

#[tokio::test]
async fn a_throttled_chunk_is_reported_when_the_deadline_leaves_no_time_to_retry() {
    let records = MemRecords::default();
    records.throttle_first.store(usize::MAX, Ordering::SeqCst);
    let mut s = state(MemObjects::default(), records);
    s.config.backoff_base = Duration::from_millis(200);
    s.config.backoff_cap = Duration::from_millis(200);
    let deadline = Instant::now() + Duration::from_millis(1_500);
    let report = handle(&s, &event(batch(3)), deadline)
        .await
        .expect_err("nothing stored")
        .to_string();
    assert!(Instant::now() < deadline, "answered before the deadline");
    assert!(report.contains("dynamodb_write_failed x3"), "{report}");
}
