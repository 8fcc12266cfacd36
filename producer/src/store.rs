//! The producer's side effects behind small traits. The AWS SDK
//! implementations are in [`crate::aws`].

use std::future::Future;
use std::time::Duration;

use pipeline_core::StoredRecord;

use crate::{Error, SendError};

/// One entry of a SendMessageBatch call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Id of the entry within its call.
    pub id: String,
    /// The message body.
    pub body: String,
    /// X-Ray trace header of the request, sent as the `AWSTraceHeader`
    /// system attribute so the consumer's trace continues the producer's.
    pub trace_header: Option<String>,
    /// The idempotency key, sent as the
    /// [`pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE`] message attribute.
    pub idempotency_key: Option<String>,
    /// `MessageGroupId`: the FIFO group, or the fair-queue tenant.
    pub group_id: Option<String>,
    /// `MessageDeduplicationId` (FIFO queues only).
    pub deduplication_id: Option<String>,
}

/// Why SQS did not take an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// SQS error code.
    pub code: String,
    /// SQS error message (for the log only: it may name resources).
    pub message: String,
    /// Whether the caller's request was at fault (not worth retrying).
    pub sender_fault: bool,
}

impl EntryFailure {
    /// Whether SQS refused the entry for its size. SQS has no code of its
    /// own for that in a batch: a message over the limit fails with
    /// `InvalidParameterValue` and "Message must be shorter than N bytes".
    pub fn is_size_refusal(&self) -> bool {
        self.code.contains("TooLong")
            || (self.code.contains("InvalidParameterValue")
                && self.message.contains("shorter than"))
    }
}

/// Outcome of one entry: the SQS message id, or why it was not sent.
pub type EntryResult = (String, Result<String, EntryFailure>);

/// Where messages are sent.
pub trait Queue: Send + Sync + 'static {
    /// Sends up to 10 entries in one call, giving up after `budget` (SDK
    /// retries included); answers per entry id.
    fn send_batch(
        &self,
        entries: &[Entry],
        budget: Duration,
    ) -> impl Future<Output = Result<Vec<EntryResult>, SendError>> + Send;
}

/// Where stored records are looked up.
pub trait Records: Send + Sync + 'static {
    /// The record with this id, if the consumer has stored it.
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<StoredRecord>, Error>> + Send;
}
