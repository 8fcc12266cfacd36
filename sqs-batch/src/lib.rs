//! SQS batch processing for AWS Lambda.
//!
//! Give it the raw [`SqsEvent`] of an invocation, its deadline and a
//! [`Processor`]; it runs the messages with bounded concurrency, feeds their
//! outputs to an optional batched step in chunks, stops starting work before
//! the deadline, keeps FIFO order, and returns a [`Report`] whose
//! [`response`](Report::response) is the partial batch response Lambda
//! expects with `ReportBatchItemFailures`.
//!
//! What it guarantees:
//!
//! - every failed message is reported by its own, non-empty message id, so a
//!   partial response is never invalid (an empty or unknown id makes Lambda
//!   retry the whole batch); a repeated message id is processed once;
//! - one message's trouble (an error, a bad body, a panic, a call that never
//!   answers) fails that message only; a chunk of the batched step is sent
//!   when full, at once when no message is running, after
//!   [`Options::linger`] when none is waiting to start and the running ones
//!   could not fill it, after
//!   [`Options::max_linger`] in any case, and at the soft deadline, so a slow
//!   message never holds back another's write;
//! - a batched call still running at the hard deadline is abandoned and its
//!   items reported failed, though the call may still take effect: delivery
//!   is at least once, so the batched step must be idempotent;
//! - both steps are bounded ([`Options::concurrency`],
//!   [`Options::flush_concurrency`]), for batches of up to 10,000 records;
//! - the deadline margin scales with the time the invocation has
//!   ([`DeadlinePolicy`]); an invocation too short to work is an error, not a
//!   batch of silent per-message failures;
//! - FIFO is decided by the queue (`.fifo` ARN), with two modes
//!   ([`FifoMode`]); a fair-queue `MessageGroupId` on a standard queue never
//!   serialises anything.
//!
//! # Example
//!
//! ```
//! use sqs_batch::{Failure, Json, Message, Options, Processor};
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: String, cents: u64 }
//!
//! /// Checks each order, then "saves" up to 10 per call.
//! struct Orders;
//!
//! impl Processor for Orders {
//!     type Body<'a> = Json<Order>;
//!     type Output = Order;
//!
//!     async fn process(&self, _: Message<'_>, Json(order): Json<Order>) -> Result<Order, Failure> {
//!         if order.cents == 0 {
//!             return Err(Failure::new("free_order", format_args!("order {} costs nothing", order.id)));
//!         }
//!         Ok(order)
//!     }
//!
//!     fn batch_limit(&self) -> usize { 10 }
//!
//!     async fn flush(&self, orders: Vec<Order>, _deadline: std::time::Instant) -> Vec<Result<(), Failure>> {
//!         orders.iter().map(|_| Ok(())).collect() // one call to your store here
//!     }
//! }
//!
//! # async fn handler(event: aws_lambda_events::event::sqs::SqsEvent, deadline_ms: u64)
//! #     -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, sqs_batch::Error> {
//! let deadline = sqs_batch::deadline_from_epoch_ms(deadline_ms);
//! let report = sqs_batch::process(&Orders, &event, deadline, &Options::default()).await?;
//! Ok(report.response())
//! # }
//! ```

mod engine;
mod message;
mod options;
mod processor;
mod report;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
pub use engine::{is_fifo, process};
pub use message::{Decode, Json, Message};
pub use options::{Budget, DeadlinePolicy, FifoMode, Options};
pub use processor::Processor;
pub use report::{code, Failure, Report};

/// Why a batch could not be answered with a partial batch response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record lacks a message id, so its failure could not be reported.
    #[error("invalid SQS event: {0}")]
    InvalidEvent(String),
    /// The invocation has too little time left to process anything.
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
    /// Every message failed ([`Options::fail_on_full_batch_failure`]).
    #[error("every message of the batch failed ({} of {})", .0.failures.len(), .0.received)]
    AllFailed(Box<Report>),
    /// An option is out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl Error {
    /// The report, when the batch was processed but every message failed.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Error::AllFailed(report) => Some(report),
            _ => None,
        }
    }
}

/// The [`Instant`] of a deadline given, as Lambda gives it
/// (`Context::deadline`), in milliseconds since the Unix epoch.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
