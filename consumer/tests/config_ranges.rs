//! Every engine variable's whole accepted range gives a working consumer:
//! the bounds are read at start-up, and a batch then goes through the real
//! handler (engine + pipeline, in-memory stores) with nothing refused per
//! invocation. Values that depend on another variable are refused at
//! start-up, naming both.

mod fakes;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consumer::{Config, Pipeline};
use fakes::{MemObjects, MemRecords};
use lambda_batch::sqs::{SqsEvent, SqsMessage};

fn config(vars: &[(&str, &str)]) -> Result<Config, pipeline_core::env::EnvError> {
    Config::from_lookup(|name| match name {
        "BUCKET_NAME" => Some("bucket".to_owned()),
        "TABLE_NAME" => Some("table".to_owned()),
        _ => vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned()),
    })
}

fn batch(n: usize) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = (0..n)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m-{i}"));
            m.body = Some(format!("{{\"n\":{i}}}"));
            m.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:q".to_owned());
            m
        })
        .collect();
    event
}

/// Lambda's longest timeout, so that even the largest margins leave work.
fn deadline_ms() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from((now + Duration::from_secs(900)).as_millis()).expect("fits")
}

/// Each value of `variable` starts and stores a batch of 30 whole.
async fn works_across(variable: &str, values: &[&str]) {
    for value in values {
        let config = config(&[(variable, value)])
            .unwrap_or_else(|e| panic!("{variable}={value} refused at start-up: {e}"));
        let pipeline = Pipeline {
            objects: MemObjects::default(),
            records: MemRecords::default(),
            config,
        };
        let response = consumer::handle_invocation(&pipeline, batch(30), deadline_ms())
            .await
            .unwrap_or_else(|e| panic!("{variable}={value}: the engine refused a batch: {e}"));
        assert!(
            response.batch_item_failures.is_empty(),
            "{variable}={value}"
        );
        assert_eq!(pipeline.records.ids().len(), 30, "{variable}={value}");
    }
}

fn refused(vars: &[(&str, &str)], names: &[&str]) {
    let err = config(vars).expect_err("refused at start-up").to_string();
    for name in names {
        assert!(err.contains(name), "{err} should name {name}");
    }
}

#[tokio::test]
async fn max_concurrency_1_to_10000() {
    works_across("MAX_CONCURRENCY", &["1", "10000"]).await;
    refused(&[("MAX_CONCURRENCY", "0")], &["MAX_CONCURRENCY"]);
}

#[tokio::test]
async fn flush_concurrency_1_to_400() {
    works_across("FLUSH_CONCURRENCY", &["1", "400"]).await;
    refused(&[("FLUSH_CONCURRENCY", "401")], &["FLUSH_CONCURRENCY"]);
}

#[tokio::test]
async fn batch_linger_ms_0_to_1000() {
    // Above 100 ms the max linger follows it: BATCH_LINGER_MS=200 alone
    // used to start, then fail every batch.
    works_across("BATCH_LINGER_MS", &["0", "200", "1000"]).await;
    refused(&[("BATCH_LINGER_MS", "1001")], &["BATCH_LINGER_MS"]);
}

#[tokio::test]
async fn batch_max_linger_ms_from_the_linger_to_10000() {
    works_across("BATCH_MAX_LINGER_MS", &["5", "10000"]).await;
    refused(
        &[("BATCH_LINGER_MS", "200"), ("BATCH_MAX_LINGER_MS", "50")],
        &["BATCH_MAX_LINGER_MS", "BATCH_LINGER_MS"],
    );
}

#[tokio::test]
async fn deadline_margin_percent_0_to_50() {
    works_across("DEADLINE_MARGIN_PERCENT", &["0", "50"]).await;
    refused(
        &[("DEADLINE_MARGIN_PERCENT", "51")],
        &["DEADLINE_MARGIN_PERCENT"],
    );
}

#[tokio::test]
async fn deadline_margin_min_ms_0_to_the_max() {
    works_across("DEADLINE_MARGIN_MIN_MS", &["0", "2000"]).await;
    refused(
        &[("DEADLINE_MARGIN_MIN_MS", "2001")],
        &["DEADLINE_MARGIN_MAX_MS", "DEADLINE_MARGIN_MIN_MS"],
    );
}

#[tokio::test]
async fn deadline_margin_max_ms_from_the_min_to_600000() {
    works_across("DEADLINE_MARGIN_MAX_MS", &["200", "600000"]).await;
    refused(
        &[("DEADLINE_MARGIN_MAX_MS", "600001")],
        &["DEADLINE_MARGIN_MAX_MS"],
    );
}

#[tokio::test]
async fn step_timeout_ms_0_to_900000() {
    works_across("STEP_TIMEOUT_MS", &["0", "1", "900000"]).await;
}

#[tokio::test]
async fn fifo_mode_group_or_batch() {
    works_across("FIFO_MODE", &["group", "batch"]).await;
    refused(&[("FIFO_MODE", "strict")], &["FIFO_MODE"]);
}

#[tokio::test]
async fn fail_on_full_batch_failure_either_way() {
    works_across("FAIL_ON_FULL_BATCH_FAILURE", &["true", "false"]).await;
}

#[tokio::test]
async fn dynamodb_max_attempts_1_to_50() {
    works_across("DYNAMODB_MAX_ATTEMPTS", &["1", "50"]).await;
}
