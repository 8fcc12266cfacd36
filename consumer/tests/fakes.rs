//! In-memory stores for handler tests.
#![allow(dead_code)] // each test file uses a part

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use consumer::{ObjectStore, RecordStore, StoreError};
use pipeline_core::StoredRecord;

/// Objects by key; puts of keys containing a listed message's id fail.
#[derive(Default)]
pub struct MemObjects {
    pub objects: Mutex<HashMap<String, Vec<u8>>>,
    /// Message ids whose puts fail.
    pub fail: HashSet<String>,
    /// Message ids whose puts panic.
    pub panic: HashSet<String>,
    pub delay: Option<Duration>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub puts: AtomicUsize,
}

impl MemObjects {
    pub fn keys(&self) -> HashSet<String> {
        self.objects.lock().expect("lock").keys().cloned().collect()
    }
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        let objects = self.objects.lock().expect("lock");
        serde_json::from_slice(objects.get(key)?).ok()
    }
}

fn message_id_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("object is JSON");
    v["messageId"].as_str().expect("messageId").to_owned()
}

impl ObjectStore for MemObjects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.puts.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let message_id = message_id_of(&body);
        if self.panic.contains(&message_id) {
            panic!("injected panic for {message_id}");
        }
        if self.fail.contains(&message_id) {
            return Err(StoreError::new(
                "S3 PutObject",
                true,
                format!("injected 503 SlowDown for {message_id}"),
            ));
        }
        self.objects
            .lock()
            .expect("lock")
            .insert(key.to_owned(), body);
        Ok(())
    }
}

const BATCH_WRITE: &str = "DynamoDB BatchWriteItem";

/// Items by id; can leave chosen ids unprocessed a number of times, or fail.
#[derive(Default)]
pub struct MemRecords {
    pub items: Mutex<HashMap<String, StoredRecord>>,
    /// Record id -> how many more calls leave it unprocessed (u32::MAX: always).
    pub unprocessed: Mutex<HashMap<String, u32>>,
    pub fail_all: bool,
    /// Calls holding this record id fail as a whole, with an error another
    /// attempt would not fix.
    pub fail_with: Option<String>,
    /// How many calls from the first fail as a whole with a retryable error
    /// (a throttling storm).
    pub throttle_first: AtomicUsize,
    /// The ids sent in each call.
    pub calls: Mutex<Vec<Vec<String>>>,
}

impl MemRecords {
    pub fn ids(&self) -> HashSet<String> {
        self.items.lock().expect("lock").keys().cloned().collect()
    }
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().expect("lock").clone()
    }
}

impl RecordStore for MemRecords {
    async fn put_batch(&self, records: &[StoredRecord]) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        self.calls.lock().expect("lock").push(ids.clone());
        // The real service rejects these outright; so does the fake.
        let distinct: HashSet<&String> = ids.iter().collect();
        if records.len() > 25 || distinct.len() != ids.len() {
            return Err(StoreError::new(
                BATCH_WRITE,
                false,
                "ValidationException: bad batch",
            ));
        }
        if self.fail_all || self.fail_with.as_ref().is_some_and(|id| ids.contains(id)) {
            return Err(StoreError::new(BATCH_WRITE, false, "AccessDeniedException"));
        }
        let throttled = self
            .throttle_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttled {
            return Err(StoreError::new(
                BATCH_WRITE,
                true,
                "ProvisionedThroughputExceededException",
            ));
        }
        let mut left = Vec::new();
        let mut unprocessed = self.unprocessed.lock().expect("lock");
        let mut items = self.items.lock().expect("lock");
        for record in records {
            match unprocessed.get_mut(&record.id) {
                Some(n) if *n > 0 => {
                    if *n != u32::MAX {
                        *n -= 1;
                    }
                    left.push(record.id.clone());
                }
                _ => {
                    items.insert(record.id.clone(), record.clone());
                }
            }
        }
        Ok(left)
    }
}
