//! How a batch is run: concurrency, flush policy, deadline, order, errors.
//! Built once, checked once: an [`Options`] value is always valid, so the
//! engine never refuses one at invocation time.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use crate::Error;

/// What a failure stops on an SQS FIFO queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FifoMode {
    /// Groups run concurrently, each in order; after a failure the rest of
    /// that group is reported unprocessed (Powertools' `skipGroupOnError`).
    #[default]
    StopGroup,
    /// The batch runs one message at a time, in order; after a failure the
    /// rest of the batch is reported unprocessed (Powertools' default).
    StopBatch,
}

/// Which records of a Kinesis or DynamoDB Streams batch may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StreamOrder {
    /// Records with different keys (Kinesis partition key, DynamoDB item
    /// key) run concurrently; records with the same key run in order, as
    /// Lambda's `ParallelizationFactor` keeps them.
    #[default]
    PerKey,
    /// One record at a time, in sequence-number order.
    InOrder,
}

/// An option out of range, refused when [`Options`] are built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// `concurrency` is 0.
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    /// `flush_concurrency` is 0.
    #[error("flush_concurrency must be at least 1")]
    ZeroFlushConcurrency,
    /// `linger` is above `max_linger`.
    #[error("linger ({linger:?}) must not be above max_linger ({max_linger:?})")]
    LingerAboveMaxLinger {
        /// The linger asked for.
        linger: Duration,
        /// The max_linger asked for.
        max_linger: Duration,
    },
    /// The deadline margin's fraction is outside `[0, 1)`.
    #[error("the deadline margin fraction ({fraction}) must be in [0, 1)")]
    MarginFraction {
        /// The fraction asked for.
        fraction: f64,
    },
    /// The deadline margin's cap is below its floor.
    #[error("the deadline margin cap ({cap:?}) must not be below its floor ({floor:?})")]
    MarginCapBelowFloor {
        /// The floor asked for.
        floor: Duration,
        /// The cap asked for.
        cap: Duration,
    },
}

/// When the engine stops starting work and when it stops waiting for it.
///
/// The margin is `fraction` of the time the invocation has, at least `floor`
/// and at most `cap`. Records start until `deadline - margin` (the *soft*
/// deadline); running work, including batched calls, is waited for until
/// `deadline - margin / 2` (the *hard* deadline); the rest of the time is
/// left to send the response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeadlinePolicy {
    floor: Duration,
    fraction: f64,
    cap: Duration,
    min_work: Duration,
}

impl Default for DeadlinePolicy {
    /// A margin of 10%, at least 200 ms and at most 2 s; at least 100 ms of work.
    fn default() -> Self {
        Self {
            floor: Duration::from_millis(200),
            fraction: 0.1,
            cap: Duration::from_secs(2),
            min_work: Duration::from_millis(100),
        }
    }
}

/// The soft and hard deadlines of one invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Stop starting records.
    pub soft: Instant,
    /// Stop waiting for running work.
    pub hard: Instant,
}

impl DeadlinePolicy {
    /// A margin of `fraction` of the invocation's time, clamped to `[floor, cap]`.
    pub fn new(floor: Duration, fraction: f64, cap: Duration) -> Result<Self, OptionsError> {
        // `contains` is false for NaN too.
        if !(0.0..1.0).contains(&fraction) {
            return Err(OptionsError::MarginFraction { fraction });
        }
        if cap < floor {
            return Err(OptionsError::MarginCapBelowFloor { floor, cap });
        }
        Ok(Self {
            floor,
            fraction,
            cap,
            ..Self::default()
        })
    }

    /// The least time to work (before the soft deadline); an invocation with
    /// less fails as a whole with [`Error::DeadlineTooShort`] rather than
    /// reporting every record as not started. 100 ms by default.
    #[must_use]
    pub fn with_min_work(mut self, min_work: Duration) -> Self {
        self.min_work = min_work;
        self
    }

    /// Smallest margin.
    pub fn floor(&self) -> Duration {
        self.floor
    }

    /// Share of the invocation's time kept as margin.
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// Largest margin.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// Least time to work.
    pub fn min_work(&self) -> Duration {
        self.min_work
    }

    /// The margin for an invocation with `available` time.
    pub fn margin(&self, available: Duration) -> Duration {
        available
            .mul_f64(self.fraction)
            .max(self.floor)
            .min(self.cap)
    }

    /// The budget of an invocation that started at `now` and must answer by
    /// `deadline`.
    pub fn budget(&self, now: Instant, deadline: Instant) -> Result<Budget, Error> {
        let available = deadline.saturating_duration_since(now);
        let margin = self.margin(available);
        let work = available.saturating_sub(margin);
        if work < self.min_work {
            return Err(Error::DeadlineTooShort {
                available,
                margin,
                min_work: self.min_work,
            });
        }
        Ok(Budget {
            soft: now + work,
            hard: now + available.saturating_sub(margin / 2),
        })
    }
}

/// Settings of the engine; `Options::default()` suits most consumers, and
/// [`Options::builder`] changes what you need:
///
/// ```
/// use std::time::Duration;
/// use lambda_batch::{FifoMode, Options, OptionsError};
///
/// let options = Options::builder()
///     .concurrency(16)
///     .flush_concurrency(1) // calls of the batched step must not overlap
///     .fifo(FifoMode::StopBatch)
///     .build()?;
/// assert_eq!(options.concurrency(), 16);
///
/// let refused = Options::builder().linger(Duration::from_millis(200)).build();
/// assert!(matches!(refused, Err(OptionsError::LingerAboveMaxLinger { .. })));
/// # Ok::<(), OptionsError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    concurrency: NonZeroUsize,
    flush_concurrency: NonZeroUsize,
    linger: Duration,
    max_linger: Duration,
    deadline: DeadlinePolicy,
    step_timeout: Option<Duration>,
    fifo: FifoMode,
    stream_order: StreamOrder,
    fail_on_full_batch_failure: bool,
}

const fn non_zero(n: usize) -> NonZeroUsize {
    match NonZeroUsize::new(n) {
        Some(n) => n,
        None => panic!("zero"),
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: non_zero(64),
            flush_concurrency: non_zero(4),
            linger: Duration::from_millis(5),
            max_linger: Duration::from_millis(100),
            deadline: DeadlinePolicy::default(),
            step_timeout: None,
            fifo: FifoMode::StopGroup,
            stream_order: StreamOrder::PerKey,
            fail_on_full_batch_failure: true,
        }
    }
}

impl Options {
    /// A builder starting from the defaults.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder {
            options: Self::default(),
            concurrency: 64,
            flush_concurrency: 4,
        }
    }

    /// Records in their per-record step at once (SQS FIFO: groups; streams:
    /// keys). Default 64.
    pub fn concurrency(&self) -> usize {
        self.concurrency.get()
    }

    /// Calls of the batched step in flight at once. Default 4.
    pub fn flush_concurrency(&self) -> usize {
        self.flush_concurrency.get()
    }

    /// How long a partly filled chunk waits once no record is waiting to
    /// start and the running ones could not fill it. Default 5 ms.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// How long a partly filled chunk waits at most. Default 100 ms.
    pub fn max_linger(&self) -> Duration {
        self.max_linger
    }

    /// The soft and hard deadlines.
    pub fn deadline(&self) -> &DeadlinePolicy {
        &self.deadline
    }

    /// Longest a per-record step may take. Default none.
    pub fn step_timeout(&self) -> Option<Duration> {
        self.step_timeout
    }

    /// SQS FIFO: what a failure stops. Default [`FifoMode::StopGroup`].
    pub fn fifo(&self) -> FifoMode {
        self.fifo
    }

    /// Streams: which records run at once. Default [`StreamOrder::PerKey`].
    pub fn stream_order(&self) -> StreamOrder {
        self.stream_order
    }

    /// Whether a batch in which nothing succeeded is an invocation error
    /// ([`Error::AllFailed`]). Default true.
    pub fn fail_on_full_batch_failure(&self) -> bool {
        self.fail_on_full_batch_failure
    }
}

/// Builds [`Options`]; [`build`](OptionsBuilder::build) checks them.
#[derive(Debug, Clone)]
#[must_use]
pub struct OptionsBuilder {
    options: Options,
    concurrency: usize,
    flush_concurrency: usize,
}

impl OptionsBuilder {
    /// Records in their per-record step at once, at least 1. On an SQS FIFO
    /// queue this bounds groups, on a stream keys. Default 64.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Calls of the batched step in flight at once, at least 1. Default 4.
    pub fn flush_concurrency(mut self, n: usize) -> Self {
        self.flush_concurrency = n;
        self
    }

    /// How long a partly filled chunk waits for more items once no record
    /// is waiting to start and the running ones could not fill it; with no
    /// record running it goes at once. Not above `max_linger`. Default 5 ms.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.options.linger = linger;
        self
    }

    /// How long a partly filled chunk waits otherwise (records still queued,
    /// or enough running to fill it): the longest a stalled record holds
    /// back the others' batched call. Default 100 ms.
    pub fn max_linger(mut self, max_linger: Duration) -> Self {
        self.options.max_linger = max_linger;
        self
    }

    /// The deadline policy. Default [`DeadlinePolicy::default`].
    pub fn deadline(mut self, policy: DeadlinePolicy) -> Self {
        self.options.deadline = policy;
        self
    }

    /// Longest a per-record step may take; past it the record fails with
    /// [`code::STEP_TIMEOUT`](crate::code::STEP_TIMEOUT) and frees its slot.
    /// None (the default): only the hard deadline cuts a step off.
    pub fn step_timeout(mut self, limit: Option<Duration>) -> Self {
        self.options.step_timeout = limit;
        self
    }

    /// SQS FIFO: what a failure stops. Default [`FifoMode::StopGroup`].
    pub fn fifo(mut self, mode: FifoMode) -> Self {
        self.options.fifo = mode;
        self
    }

    /// Streams: which records run at once. Default [`StreamOrder::PerKey`].
    pub fn stream_order(mut self, order: StreamOrder) -> Self {
        self.options.stream_order = order;
        self
    }

    /// Return [`Error::AllFailed`] when nothing of a batch succeeded, so the
    /// event source mapping sees an invocation error and backs off
    /// (Powertools' `throwOnFullBatchFailure`). Default true.
    pub fn fail_on_full_batch_failure(mut self, on: bool) -> Self {
        self.options.fail_on_full_batch_failure = on;
        self
    }

    /// The options, or the first one out of range.
    pub fn build(self) -> Result<Options, OptionsError> {
        let mut options = self.options;
        options.concurrency =
            NonZeroUsize::new(self.concurrency).ok_or(OptionsError::ZeroConcurrency)?;
        options.flush_concurrency =
            NonZeroUsize::new(self.flush_concurrency).ok_or(OptionsError::ZeroFlushConcurrency)?;
        if options.linger > options.max_linger {
            return Err(OptionsError::LingerAboveMaxLinger {
                linger: options.linger,
                max_linger: options.max_linger,
            });
        }
        Ok(options)
    }
}
