//! Why a batch could not be answered with a partial batch response.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Why a batch could not be answered with a partial batch response. Each
/// variant has a stable name for Lambda's `errorType`
/// ([`error_type`](Error::error_type)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record has no item identifier (SQS `messageId`, stream
    /// `SequenceNumber`), or an empty one, so its failure could not be
    /// reported. errorType `BatchInvalidEvent`.
    #[error(
        "record {index} of the batch has no item identifier, so its failure could not be reported"
    )]
    MissingItemIdentifier {
        /// The record's position in the batch.
        index: usize,
    },
    /// The invocation has too little time left to process anything.
    /// errorType `BatchDeadlineTooShort`.
    #[error(
        "the invocation has {available:?} left; after the deadline margin of {margin:?} \
         that is less than the {min_work:?} needed to do any work"
    )]
    DeadlineTooShort {
        /// Time from the start of processing to the deadline.
        available: Duration,
        /// The margin the deadline policy keeps.
        margin: Duration,
        /// The least working time the policy accepts.
        min_work: Duration,
    },
    /// Nothing of the batch succeeded
    /// ([`Options::fail_on_full_batch_failure`](crate::Options::fail_on_full_batch_failure)).
    /// errorType `BatchAllFailed`.
    #[error("{0}")]
    AllFailed(FailureSummary),
}

impl Error {
    /// The name Lambda records as the invocation's `errorType`:
    /// `BatchInvalidEvent`, `BatchDeadlineTooShort` or `BatchAllFailed`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::MissingItemIdentifier { .. } => "BatchInvalidEvent",
            Error::DeadlineTooShort { .. } => "BatchDeadlineTooShort",
            Error::AllFailed(_) => "BatchAllFailed",
        }
    }
}

#[cfg(feature = "runtime")]
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(error: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// How many records of a batch failed, and the most common reason codes: a
/// bounded summary, whatever the size of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailureSummary {
    /// Records in the event.
    pub received: usize,
    /// Distinct records that failed.
    pub failed: usize,
    /// Failures by reason code, most frequent first, at most
    /// [`FailureSummary::MAX_CODES`] of them.
    pub by_code: Vec<(Cow<'static, str>, usize)>,
}

impl FailureSummary {
    /// The most reason codes a summary lists.
    pub const MAX_CODES: usize = 8;
}

impl fmt::Display for FailureSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no record of the batch succeeded: {} of {} will be delivered again",
            self.failed, self.received
        )?;
        for (i, (code, n)) in self.by_code.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{code} x{n}")?;
        }
        let listed: usize = self.by_code.iter().map(|(_, n)| n).sum();
        if listed < self.failed {
            write!(f, ", other codes x{}", self.failed - listed)?;
        }
        Ok(())
    }
}
