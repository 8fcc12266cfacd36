//! The consumer's errors.

/// A boxed error from a store, kept as the source of [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the consumer library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] pipeline_core::env::EnvError),
    /// The batch could not be answered with a partial batch response.
    #[error(transparent)]
    Batch(#[from] lambda_batch::Error),
}

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
