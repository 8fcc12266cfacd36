//! Arbitrary bytes as the Lambda event, through the engine and the consumer's processor with
//! stores that fail for some messages.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use consumer::{Config, ObjectStore, Pipeline, RecordStore, StoreError};
use lambda_batch::sqs::SqsEvent;
use libfuzzer_sys::fuzz_target;
use pipeline_core::StoredRecord;

/// Fails puts of objects whose message id ends in '7'; keeps the rest.
/// Its assertions count although the engine catches panics: libfuzzer-sys
/// aborts on any panic before unwinding.
#[derive(Default)]
struct Objects(Mutex<HashMap<String, Vec<u8>>>);

impl ObjectStore for Objects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let object: serde_json::Value =
            serde_json::from_slice(&body).expect("stored object is JSON");
        let message_id = object["messageId"].as_str().expect("messageId").to_owned();
        if message_id.ends_with('7') {
            return Err(StoreError::new("S3 PutObject", false, "injected"));
        }
        self.0.lock().expect("lock").insert(key.to_owned(), body);
        Ok(())
    }
}

/// Leaves items whose message id ends in '3' unprocessed; rejects bad batches as DynamoDB does.
#[derive(Default)]
struct Items(Mutex<HashMap<String, StoredRecord>>);

impl RecordStore for Items {
    async fn put_batch(&self, records: &[StoredRecord]) -> Result<Vec<String>, StoreError> {
        let ids: HashSet<&String> = records.iter().map(|r| &r.id).collect();
        assert!(
            records.len() <= 25 && ids.len() == records.len(),
            "invalid BatchWriteItem"
        );
        let mut left = Vec::new();
        for r in records {
            if r.message_id.ends_with('3') {
                left.push(r.id.clone());
            } else {
                self.0.lock().expect("lock").insert(r.id.clone(), r.clone());
            }
        }
        Ok(left)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<SqsEvent>(data) else {
        return;
    };
    let mut config = Config::for_tests("bucket", "table");
    config.backoff_base = Duration::from_millis(1);
    config.backoff_cap = Duration::from_millis(1);
    config.dynamodb_max_attempts = 2;
    // Every failure is reported, never turned into an invocation error.
    config.engine = lambda_batch::Options::builder()
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid");
    let state = Pipeline {
        objects: Objects::default(),
        records: Items::default(),
        config,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(lambda_batch::process_batched(
        event.clone(),
        Instant::now() + Duration::from_secs(60),
        &state,
        &state.config.engine,
    ));
    let ids: HashSet<&str> = event
        .records
        .iter()
        .filter_map(|r| r.message_id.as_deref())
        .collect();
    let missing_id = event
        .records
        .iter()
        .any(|r| r.message_id.as_deref().is_none_or(str::is_empty));
    let report = match result {
        Err(_) => {
            assert!(
                missing_id,
                "only a record without a message id fails the invocation"
            );
            return;
        }
        Ok(report) => report,
    };
    assert!(!missing_id);
    let response = report.response();
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed.len(),
        response.batch_item_failures.len(),
        "each failure reported once"
    );
    let items = state.records.0.lock().expect("lock");
    let objects = state.objects.0.lock().expect("lock");
    assert!(
        items.values().all(|r| objects.contains_key(&r.s3_key)),
        "an item is written only after its object"
    );
    let stored: HashSet<&str> = items.values().map(|r| r.message_id.as_str()).collect();
    for id in &ids {
        assert!(!id.is_empty());
        assert!(
            failed.contains(id) != stored.contains(id),
            "message {id:?} must be stored or reported, not both or neither"
        );
    }
    assert!(
        failed.iter().all(|id| ids.contains(id)),
        "only ids of the batch are reported"
    );
    // FIFO (decided by the queue's ARN): within a group, nothing after a
    // failed message is stored.
    if lambda_batch::sqs::is_fifo(&event.records) {
        // Duplicates of a message id are handled with its first record.
        let (mut blocked, mut seen) = (HashSet::new(), HashSet::new());
        for r in &event.records {
            let group = r
                .attributes
                .get("MessageGroupId")
                .map_or("", String::as_str);
            let id = r.message_id.as_deref().unwrap_or_default();
            if !seen.insert(id) {
                continue;
            }
            if blocked.contains(group) {
                assert!(
                    !stored.contains(id),
                    "{id:?} stored after a failure in its group"
                );
            } else if failed.contains(id) {
                blocked.insert(group);
            }
        }
    }
});
