#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod decode;
pub mod dynamodb;
mod engine;
mod error;
mod failure;
mod handler;
pub mod kinesis;
mod options;
mod report;
#[cfg(feature = "runtime")]
mod runtime;
mod source;
pub mod sqs;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use decode::{Decode, Json};
pub use error::{Error, FailureSummary};
pub use failure::{code, Failure};
pub use handler::{BatchHandler, Handler};
pub use options::{
    Budget, DeadlinePolicy, FifoMode, Options, OptionsBuilder, OptionsError, StreamOrder,
};
pub use report::{RecordFailure, Report};
#[cfg(feature = "runtime")]
pub use runtime::{deadline, handle, handle_batched, run, run_batched};
pub use source::{lane_of, Ordering, Record, Source};

/// Processes one batch with a per-record [`Handler`] and reports every
/// record that did not succeed.
///
/// Fails as a whole only when no valid partial response can be given (a
/// record without an item identifier), when the invocation has too little
/// time to do anything, or, with
/// [`Options::fail_on_full_batch_failure`], when nothing succeeded.
pub async fn process<S, P, H>(
    event: S,
    deadline: Instant,
    handler: &H,
    options: &Options,
) -> Result<Report<S>, Error>
where
    S: Source,
    P: Decode<S::Record> + Send,
    H: Handler<S, P>,
{
    engine::run(event, deadline, &handler::PerRecord::new(handler), options).await
}

/// Processes one batch with a [`BatchHandler`] (see [`process`]).
pub async fn process_batched<S, H>(
    event: S,
    deadline: Instant,
    handler: &H,
    options: &Options,
) -> Result<Report<S>, Error>
where
    S: Source,
    H: BatchHandler<S>,
{
    engine::run(event, deadline, &handler::Batched(handler), options).await
}

/// The [`Instant`] of a deadline given in milliseconds since the Unix epoch,
/// as Lambda gives it (`Context::deadline`).
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
