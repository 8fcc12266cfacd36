//! Why one record was not processed: [`Failure`] and the engine's reason codes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Reason codes the engine itself reports. Your handlers add their own.
pub mod code {
    /// The soft deadline came before the record could start.
    pub const NOT_STARTED: &str = "not_started";
    /// The record's work was still running at the hard deadline.
    pub const DEADLINE: &str = "deadline";
    /// The per-record step took longer than
    /// [`Options::step_timeout`](crate::Options::step_timeout).
    pub const STEP_TIMEOUT: &str = "step_timeout";
    /// The per-record step, or the batched call that held the record, panicked.
    pub const PANICKED: &str = "panicked";
    /// The payload did not decode into the handler's payload type.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// The batched step returned no result for this record.
    pub const NO_RESULT: &str = "no_result";
    /// An error converted with `?` (`From<E: std::error::Error>`) rather than
    /// built with [`Failure::new`](crate::Failure::new).
    pub const ERROR: &str = "error";
    /// SQS FIFO, [`FifoMode::StopGroup`](crate::FifoMode::StopGroup): an
    /// earlier message of the same group failed, so this one was not started.
    pub const EARLIER_IN_GROUP_FAILED: &str = "earlier_in_group_failed";
    /// SQS FIFO, [`FifoMode::StopBatch`](crate::FifoMode::StopBatch): an
    /// earlier message of the batch failed, so this one was not started.
    pub const EARLIER_IN_BATCH_FAILED: &str = "earlier_in_batch_failed";
    /// Streams: the record comes after the checkpoint (the lowest failed
    /// record), so Lambda delivers it again whatever happened to it here.
    pub const AFTER_CHECKPOINT: &str = "after_checkpoint";
}

/// Why one record was not processed.
///
/// `code` is short and stable, for metrics and alarms; `detail` is for logs
/// only (it may hold error text from a backend). Clones are cheap.
///
/// Any `std::error::Error` converts into a `Failure` with the code
/// [`code::ERROR`], so `?` works in a handler:
///
/// ```
/// use lambda_batch::Failure;
///
/// fn parse(text: &str) -> Result<u32, Failure> {
///     let n: u32 = text.parse()?; // ParseIntError -> Failure { code: "error", .. }
///     if n == 0 {
///         return Err(Failure::new("zero", "the count must be positive"));
///     }
///     Ok(n)
/// }
/// assert_eq!(parse("x").unwrap_err().code(), "error");
/// assert_eq!(parse("0").unwrap_err().code(), "zero");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    code: Cow<'static, str>,
    detail: Arc<str>,
}

impl Failure {
    /// A failure with a reason code and a detail for the log.
    pub fn new(code: impl Into<Cow<'static, str>>, detail: impl fmt::Display) -> Self {
        Self {
            code: code.into(),
            detail: detail.to_string().into(),
        }
    }

    /// The reason code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// What went wrong, for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// `?` on any error: code [`code::ERROR`], the error and its sources as the
/// detail.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        let mut detail = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::new(code::ERROR, detail)
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

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("code", &self.code)
            .field("detail", &self.detail)
            .finish()
    }
}
