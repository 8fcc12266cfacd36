//! The consumer's error type.

/// A boxed error from a store, kept as the source of [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the consumer library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] pipeline_core::env::EnvError),
    /// S3 PutObject failed (after the SDK's own retries).
    #[error("S3 PutObject failed")]
    PutObject(#[source] BoxError),
    /// DynamoDB BatchWriteItem failed as a whole (after the SDK's own retries).
    #[error("DynamoDB BatchWriteItem failed")]
    BatchWrite(#[source] BoxError),
    /// The batch could not be answered with a partial batch response.
    #[error(transparent)]
    Batch(#[from] sqs_batch::Error),
}
