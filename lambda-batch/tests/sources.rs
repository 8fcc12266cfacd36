//! Each source against the event fixtures `aws_lambda_events` ships
//! (copied into tests/fixtures/): payload decoding, item identifiers and
//! the JSON of the partial batch response Lambda reads.

mod common;

use common::secs;
use lambda_batch::dynamodb::{Change, ChangeKind, DynamoDbEvent, Keys, NewImage};
use lambda_batch::kinesis::KinesisEvent;
use lambda_batch::sqs::{SqsBatchResponse, SqsEvent};
use lambda_batch::{code, Failure, Json, Options, Record};
use serde_json::json;

fn lenient() -> Options {
    common::lenient()
}

/// The SQS fixture (one message) with a second message cloned from it.
fn sqs_fixture() -> SqsEvent {
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("fixtures/example-sqs-event.json")).expect("parses");
    let mut second = event.records[0].clone();
    second.message_id = Some("MessageID_2".to_owned());
    event.records.push(second);
    event
}

/// A DynamoDB fixture; its records share one sequence number, which a real
/// shard never does, so each gets its own.
fn dynamodb_fixture(json: &str) -> DynamoDbEvent {
    let mut event: DynamoDbEvent = serde_json::from_str(json).expect("parses");
    for (i, record) in event.records.iter_mut().enumerate() {
        record.change.sequence_number = Some(format!("14054000000000020632828{i:02}"));
    }
    event
}

#[tokio::test]
async fn sqs_fixture_reports_the_failed_message_id_in_lambdas_response_shape() {
    let event = sqs_fixture();
    let handler = |body: String, record: Record<SqsEvent>| async move {
        assert_eq!(body, "Message Body");
        assert_eq!(record.receive_count(), Some(2));
        match record.message_id() {
            "MessageID_2" => Err(Failure::new("rejected", "test")),
            _ => Ok(()),
        }
    };
    let report = lambda_batch::process(event, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    let response = serde_json::to_value(report.response()).expect("serializes");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "MessageID_2"}]})
    );
    // The same shape as the response fixture.
    let fixture: SqsBatchResponse =
        serde_json::from_str(include_str!("fixtures/example-sqs-batch-response.json"))
            .expect("parses");
    let fixture = serde_json::to_value(fixture).expect("serializes");
    assert_eq!(
        fixture["batchItemFailures"][0].as_object().map(|o| o.len()),
        Some(1)
    );
}

#[tokio::test]
async fn sqs_json_bodies_decode_per_message() {
    let event = sqs_fixture();
    // "Message Body" is not JSON: each message fails on its own.
    let handler = |_: Json<serde_json::Value>, _: Record<SqsEvent>| async { Ok(()) };
    let report = lambda_batch::process(event, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    assert_eq!(report.failures_by_code(), vec![(code::INVALID_PAYLOAD, 2)]);
}

#[tokio::test]
async fn kinesis_fixture_decodes_base64_data_and_reports_the_sequence_number() {
    let event: KinesisEvent =
        serde_json::from_str(include_str!("fixtures/example-kinesis-event.json")).expect("parses");
    let second = event.records[1].kinesis.sequence_number.clone();
    let handler = |text: String, record: Record<KinesisEvent>| async move {
        assert_eq!(text, "Hello World");
        assert_eq!(record.data(), b"Hello World");
        assert_eq!(record.partition_key(), "s1");
        if record.index() == 1 {
            return Err(Failure::new("rejected", "test"));
        }
        Ok(())
    };
    let report = lambda_batch::process(event, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    let response = serde_json::to_value(report.response()).expect("serializes");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": second}]})
    );
}

#[tokio::test]
async fn kinesis_data_that_is_not_utf8_fails_only_its_record() {
    let mut event: KinesisEvent =
        serde_json::from_str(include_str!("fixtures/example-kinesis-event.json")).expect("parses");
    event.records[1].kinesis.data.0 = vec![0xff, 0xfe];
    let handler = |_: String, _: Record<KinesisEvent>| async { Ok(()) };
    let report = lambda_batch::process(event, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 1);
    assert_eq!(report.failures()[0].failure.code(), code::INVALID_PAYLOAD);
    let bytes = |data: Vec<u8>, _: Record<KinesisEvent>| async move {
        assert!(!data.is_empty());
        Ok(())
    };
    let mut event: KinesisEvent =
        serde_json::from_str(include_str!("fixtures/example-kinesis-event.json")).expect("parses");
    event.records[0].kinesis.data.0 = vec![0xff];
    let report = lambda_batch::process(event, secs(10), &bytes, &lenient())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), 2, "bytes take anything");
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Row {
    key: String,
    val: String,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct RowKey {
    key: String,
}

#[tokio::test]
async fn dynamodb_fixture_images_decode_into_types_and_the_response_names_the_sequence_number() {
    let event = dynamodb_fixture(include_str!("fixtures/example-dynamodb-event.json"));
    let first = event.records[0].change.sequence_number.clone();
    let handler = |NewImage(row): NewImage<Row>, record: Record<DynamoDbEvent>| async move {
        assert_eq!(
            row,
            Row {
                key: "binary".into(),
                val: "data".into()
            }
        );
        assert_eq!(record.event_name(), "INSERT");
        Err(Failure::new("rejected", "test"))
    };
    let report = lambda_batch::process(event, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    let response = serde_json::to_value(report.response()).expect("serializes");
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": first}]})
    );
}

#[tokio::test]
async fn dynamodb_change_and_keys_decode_and_a_record_without_images_fails_alone() {
    let event = dynamodb_fixture(include_str!("fixtures/example-dynamodb-event.json"));
    let change = |c: Change<Row>, _: Record<DynamoDbEvent>| async move {
        assert_eq!(c.kind, ChangeKind::Insert);
        assert!(c.old.is_none());
        assert_eq!(c.new.map(|r| r.val), Some("data".to_owned()));
        Ok(())
    };
    let report = lambda_batch::process(event.clone(), secs(10), &change, &lenient())
        .await
        .expect("processed");
    assert_eq!(report.succeeded(), event.records.len());
    let keys = |Keys(k): Keys<RowKey>, _: Record<DynamoDbEvent>| async move {
        assert_eq!(k.key, "binary");
        Ok(())
    };
    let report = lambda_batch::process(event, secs(10), &keys, &lenient())
        .await
        .expect("processed");
    assert!(report.failures().is_empty());

    // Null Keys and images (the fixture's first record): that record fails
    // with invalid_payload and is the checkpoint; the second one is after it.
    let nulls = dynamodb_fixture(include_str!(
        "fixtures/example-dynamodb-event-null-items.json"
    ));
    let handler = |_: NewImage<Row>, _: Record<DynamoDbEvent>| async { Ok(()) };
    let report = lambda_batch::process(nulls, secs(10), &handler, &lenient())
        .await
        .expect("processed");
    let codes: Vec<&str> = report.failures().iter().map(|f| f.failure.code()).collect();
    assert_eq!(codes, vec![code::INVALID_PAYLOAD, code::AFTER_CHECKPOINT]);
    assert_eq!(report.reported_ids().count(), 1);
}

#[tokio::test]
async fn a_full_success_is_an_empty_list_for_every_source() {
    let sqs = sqs_fixture();
    let ok = |(), _: Record<SqsEvent>| async { Ok(()) };
    let report = lambda_batch::process(sqs, secs(10), &ok, &Options::default())
        .await
        .expect("ok");
    assert_eq!(
        serde_json::to_value(report.response()).expect("json"),
        json!({"batchItemFailures": []})
    );
    let kinesis: KinesisEvent =
        serde_json::from_str(include_str!("fixtures/example-kinesis-event.json")).expect("parses");
    let ok = |(), _: Record<KinesisEvent>| async { Ok(()) };
    let report = lambda_batch::process(kinesis, secs(10), &ok, &Options::default())
        .await
        .expect("ok");
    assert_eq!(
        serde_json::to_value(report.response()).expect("json"),
        json!({"batchItemFailures": []})
    );
}
