//! The consumer's error: a failed call to one of its stores.

use pipeline_core::BoxError;

/// A call to S3 or DynamoDB that failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed")]
pub struct StoreError {
    /// The operation, e.g. `S3 PutObject`.
    pub operation: &'static str,
    /// Whether another attempt may succeed: throttling, a 5xx, a timeout or
    /// a lost connection, as opposed to a refused request.
    pub retryable: bool,
    /// The SDK's error.
    #[source]
    pub source: BoxError,
}

impl StoreError {
    /// A failure of `operation`.
    pub fn new(operation: &'static str, retryable: bool, source: impl Into<BoxError>) -> Self {
        Self {
            operation,
            retryable,
            source: source.into(),
        }
    }
}
