//! The two side effects of the consumer, each behind a small trait. The
//! AWS SDK implementations are in [`crate::aws`].

use std::future::Future;

use pipeline_core::StoredRecord;

use crate::StoreError;

/// Where record objects are written.
pub trait ObjectStore: Send + Sync {
    /// Writes `body` as the object `key` (overwriting one with the same key).
    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where record items are written.
pub trait RecordStore: Send + Sync {
    /// Writes up to 25 records with distinct ids in one call and returns the
    /// ids of those the store left unprocessed. One attempt: the caller
    /// retries ([`StoreError::retryable`]).
    fn put_batch(
        &self,
        records: &[StoredRecord],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}
