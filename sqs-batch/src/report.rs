//! What happened to each message: [`Failure`], [`Report`] and the partial
//! batch response.

use std::borrow::Cow;
use std::fmt;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

/// Reason codes the engine itself reports. A processor adds its own.
pub mod code {
    /// Not started, or not finished, before the soft / hard deadline.
    pub const DEADLINE: &str = "deadline";
    /// The per-message step took longer than
    /// [`Options::step_timeout`](crate::Options::step_timeout).
    pub const STEP_TIMEOUT: &str = "step_timeout";
    /// The per-message step or the batched step panicked.
    pub const PANICKED: &str = "panicked";
    /// The body did not decode into the processor's body type.
    pub const INVALID_BODY: &str = "invalid_body";
    /// FIFO, [`FifoMode::StopGroup`](crate::FifoMode::StopGroup): an earlier
    /// message of the same group failed, so this one was not processed.
    pub const EARLIER_IN_GROUP_FAILED: &str = "earlier_in_group_failed";
    /// FIFO, [`FifoMode::StopBatch`](crate::FifoMode::StopBatch): an earlier
    /// message of the batch failed, so this one was not processed.
    pub const EARLIER_IN_BATCH_FAILED: &str = "earlier_in_batch_failed";
    /// The batched step returned no result for this item.
    pub const NO_RESULT: &str = "no_result";
}

/// Why one message was not processed. `code` is short and stable, for
/// metrics and alarms; `detail` is for logs only (it may hold error text
/// from a backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stable reason code, e.g. `deadline` or `s3_put_failed`.
    pub code: Cow<'static, str>,
    /// What went wrong, for the log.
    pub detail: String,
}

impl Failure {
    /// A failure with a reason code and a detail for the log.
    pub fn new(code: impl Into<Cow<'static, str>>, detail: impl fmt::Display) -> Self {
        Self {
            code: code.into(),
            detail: detail.to_string(),
        }
    }

    /// The reason code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.detail)
        }
    }
}

/// The outcome of a batch: counts, and every failed message by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records in the event.
    pub received: usize,
    /// Distinct messages that were processed to the end.
    pub succeeded: usize,
    /// Records whose message id repeated an earlier record's; each shares
    /// the outcome of the first.
    pub duplicates: usize,
    /// Failed messages, one per distinct message id, in batch order.
    pub failures: Vec<(String, Failure)>,
}

impl Report {
    /// The partial batch response: one `itemIdentifier` per failed message.
    /// Every id is a non-empty message id of the batch, so Lambda never
    /// treats the response as invalid and retries the whole batch.
    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = self
            .failures
            .iter()
            .map(|(id, _)| {
                let mut item = BatchItemFailure::default();
                item.item_identifier = id.clone();
                item
            })
            .collect();
        response
    }

    /// Whether every distinct message of a non-empty batch failed.
    pub fn all_failed(&self) -> bool {
        self.succeeded == 0 && !self.failures.is_empty()
    }

    /// The ids of the failed messages, in batch order.
    pub fn failed_ids(&self) -> impl Iterator<Item = &str> {
        self.failures.iter().map(|(id, _)| id.as_str())
    }

    /// Failures counted by reason code, for metrics.
    pub fn failures_by_code(&self) -> Vec<(&str, usize)> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, failure) in &self.failures {
            match counts.iter_mut().find(|(c, _)| *c == failure.code()) {
                Some((_, n)) => *n += 1,
                None => counts.push((failure.code(), 1)),
            }
        }
        counts
    }
}
