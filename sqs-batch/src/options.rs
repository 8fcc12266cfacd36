//! How a batch is run: concurrency, flush policy, deadline, FIFO, errors.

use std::time::{Duration, Instant};

use crate::Error;

/// What to do in a FIFO batch at a message's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoMode {
    /// Groups run concurrently, each in order; at a failure the rest of that
    /// group is reported unprocessed (Powertools' `skipGroupOnError`).
    #[default]
    StopGroup,
    /// The batch runs one message at a time, in order; at a failure the rest
    /// of the batch is reported unprocessed (Powertools' default FIFO mode).
    StopBatch,
}

/// When the engine stops starting work and when it stops waiting for it.
///
/// The margin is `fraction` of the time the invocation has, at least `floor`
/// and at most `cap`. New messages and flushes start until `deadline -
/// margin` (the soft deadline); running work is waited for until `deadline -
/// margin / 2` (the hard deadline); the rest is left to send the response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeadlinePolicy {
    /// Smallest margin.
    pub floor: Duration,
    /// Share of the invocation's time kept as margin.
    pub fraction: f64,
    /// Largest margin.
    pub cap: Duration,
    /// Least time to work with (before the soft deadline); an invocation
    /// with less fails as a whole with [`Error::DeadlineTooShort`] rather
    /// than reporting every message as cut off.
    pub min_work: Duration,
}

impl Default for DeadlinePolicy {
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
pub struct Budget {
    /// Stop starting messages and flushes.
    pub soft: Instant,
    /// Stop waiting for running work.
    pub hard: Instant,
}

impl DeadlinePolicy {
    /// The margin for an invocation with `available` time.
    pub fn margin(&self, available: Duration) -> Duration {
        available
            .mul_f64(self.fraction.clamp(0.0, 1.0))
            .max(self.floor)
            .min(self.cap.max(self.floor))
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

/// Settings of the engine. `Options::default()` suits most consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Messages in their per-message step at once (FIFO: groups), at least 1.
    pub concurrency: usize,
    /// Calls of the batched step in flight at once, at least 1.
    pub flush_concurrency: usize,
    /// How long a chunk waits for more items once no message is waiting to
    /// start and the messages still running could not fill it (it is sent
    /// at once when no message is running).
    pub linger: Duration,
    /// How long a chunk waits for more items otherwise: while messages wait
    /// to start, or enough are running to fill it. A stalled message holds a
    /// chunk back this long at the most.
    pub max_linger: Duration,
    /// The soft and hard deadlines.
    pub deadline: DeadlinePolicy,
    /// Longest a per-message step may take before it fails with
    /// [`code::STEP_TIMEOUT`](crate::code::STEP_TIMEOUT), freeing its slot
    /// (and, in FIFO, letting its lane go on to report the rest). None (the
    /// default): only the hard deadline cuts a step off.
    pub step_timeout: Option<Duration>,
    /// FIFO queues: what a failure stops.
    pub fifo: FifoMode,
    /// Return [`Error::AllFailed`] when every message failed, so the event
    /// source mapping sees an invocation error and backs off (Powertools'
    /// `throwOnFullBatchFailure`). On by default, as in Powertools.
    pub fail_on_full_batch_failure: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            concurrency: 64,
            flush_concurrency: 4,
            linger: Duration::from_millis(5),
            max_linger: Duration::from_millis(100),
            deadline: DeadlinePolicy::default(),
            step_timeout: None,
            fifo: FifoMode::StopGroup,
            fail_on_full_batch_failure: true,
        }
    }
}

impl Options {
    /// Checks the settings, naming the first one out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |name: &'static str, reason: &str| {
            Err(Error::InvalidOptions(format!("{name} {reason}")))
        };
        if self.concurrency == 0 {
            return bad("concurrency", "must be at least 1");
        }
        if self.flush_concurrency == 0 {
            return bad("flush_concurrency", "must be at least 1");
        }
        if self.linger > self.max_linger {
            return bad("linger", "must not be above max_linger");
        }
        if !(0.0..1.0).contains(&self.deadline.fraction) {
            return bad("deadline.fraction", "must be in [0, 1)");
        }
        if self.deadline.cap < self.deadline.floor {
            return bad("deadline.cap", "must not be below deadline.floor");
        }
        Ok(())
    }
}
