//! Scheduling: which record starts when, when a chunk is sent, when the
//! engine stops waiting, and what the report says. It knows records only
//! by position, identifier and lane, as the [`Source`] gives them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant as StdInstant};

use futures_util::future::Either;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::failure::{code, Failure};
use crate::handler::Steps;
use crate::options::Options;
use crate::report::{RecordFailure, Report};
use crate::source::{Ordering, Record, Source};
use crate::Error;

/// What ended in the set of running futures.
enum Event<O> {
    /// A record's per-record step ended.
    Processed(usize, Result<O, Failure>),
    /// A call of the batched step ended: the records it held, their results.
    Flushed(Vec<usize>, Vec<Result<(), Failure>>),
}

/// Where a record stands.
#[derive(Default)]
enum State {
    /// Not started.
    #[default]
    Waiting,
    /// In its per-record step, waiting in a chunk, or in a batched call.
    Running,
    Succeeded,
    /// Its own failure.
    Failed(Failure),
    /// Not started because an earlier record of its lane failed.
    Skipped(Failure),
}

/// Runs one batch: the public `process` functions come here.
pub(crate) async fn run<S: Source, T: Steps<S>>(
    event: S,
    deadline: StdInstant,
    steps: &T,
    options: &Options,
) -> Result<Report<S>, Error> {
    let plan = Plan::new(&event, options)?;
    let budget = options
        .deadline()
        .budget(Instant::now().into_std(), deadline)?;
    let event = Arc::new(event);
    let count = event.records().len();
    let mut run = Run {
        steps,
        event: Arc::clone(&event),
        options,
        soft: Instant::from_std(budget.soft),
        hard: Instant::from_std(budget.hard),
        limit: steps.limit(),
        states: std::iter::repeat_with(State::default).take(count).collect(),
        next: plan.next,
        ready: plan.heads,
        ordering: plan.ordering,
        cutoff: usize::MAX,
    };
    run.run().await;
    let report = report(&*event, &plan.first, run.states, plan.ordering, run.cutoff);
    if options.fail_on_full_batch_failure() && report.all_failed() {
        return Err(Error::AllFailed(report.summary()));
    }
    Ok(report)
}

/// The batch arranged in lanes: a record starts only after the one before it
/// in its lane succeeded.
struct Plan {
    /// Ready to start: lane heads, lowest position first.
    heads: BinaryHeap<Reverse<usize>>,
    /// The next record of each record's lane.
    next: Vec<Option<usize>>,
    /// For every record, the position of the first record with its identifier.
    first: Vec<usize>,
    ordering: Ordering,
}

impl Plan {
    fn new<S: Source>(event: &S, options: &Options) -> Result<Self, Error> {
        let records = event.records();
        let ordering = event.ordering(options);
        let mut first_by_id: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        let mut first = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            // Without an identifier a failure cannot be reported, and an
            // empty itemIdentifier fails the whole batch on AWS anyway.
            let id = S::item_identifier(record)
                .filter(|id| !id.is_empty())
                .ok_or(Error::MissingItemIdentifier { index })?;
            first.push(*first_by_id.entry(id).or_insert(index));
        }
        let mut next = vec![None; records.len()];
        let mut heads = Vec::new();
        let distinct = (0..records.len()).filter(|&i| first[i] == i);
        if ordering == Ordering::Independent {
            heads.extend(distinct);
        } else {
            // The last record seen of each lane.
            let mut tails: HashMap<u64, usize> = HashMap::new();
            for i in distinct {
                match S::lane(&records[i], options) {
                    None => heads.push(i),
                    Some(lane) => match tails.insert(lane, i) {
                        Some(tail) => next[tail] = Some(i),
                        None => heads.push(i),
                    },
                }
            }
        }
        Ok(Self {
            heads: heads.into_iter().map(Reverse).collect(),
            next,
            first,
            ordering,
        })
    }
}

struct Run<'a, S: Source, T: Steps<S>> {
    steps: &'a T,
    event: Arc<S>,
    options: &'a Options,
    soft: Instant,
    hard: Instant,
    limit: usize,
    states: Vec<State>,
    next: Vec<Option<usize>>,
    ready: BinaryHeap<Reverse<usize>>,
    ordering: Ordering,
    /// Streams: the lowest position that failed; nothing after it starts.
    cutoff: usize,
}

impl<'a, S: Source, T: Steps<S>> Run<'a, S, T> {
    async fn run(&mut self) {
        let mut in_flight = FuturesUnordered::new();
        let (mut running, mut flushing) = (0usize, 0usize);
        let mut chunk: Vec<(usize, T::Output)> = Vec::new();
        let mut chunk_since = Instant::now();
        let mut full: VecDeque<Vec<(usize, T::Output)>> = VecDeque::new();
        let mut hard = pin!(tokio::time::sleep_until(self.hard));
        let mut linger = pin!(tokio::time::sleep_until(self.hard));
        let mut armed: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now < self.soft {
                while running < self.options.concurrency() {
                    let Some(Reverse(index)) = self.ready.pop() else {
                        break;
                    };
                    running += 1;
                    self.states[index] = State::Running;
                    let record = Record::new(Arc::clone(&self.event), index, self.hard.into_std());
                    in_flight.push(Either::Left(start(
                        self.steps,
                        record,
                        self.options.step_timeout(),
                    )));
                }
            }
            // A waiting chunk is due after its linger, at the soft deadline
            // at the latest; wake up then even if nothing else happens.
            let mut wake = None;
            if !chunk.is_empty() {
                let due = (chunk_since + self.linger(chunk.len(), running)).min(self.soft);
                if chunk.len() >= self.limit || running == 0 || now >= due {
                    full.push_back(std::mem::take(&mut chunk));
                } else {
                    wake = Some(due);
                }
            }
            // Batched calls start until the hard deadline: the records in a
            // chunk have done their own step, and a call still running at the
            // hard deadline is abandoned like any other work.
            while flushing < self.options.flush_concurrency() {
                let Some(mut items) = full.pop_front() else {
                    break;
                };
                // Streams: records after the checkpoint are delivered again
                // anyway; writing them now would only repeat the write.
                items.retain(|(index, _)| *index < self.cutoff);
                if items.is_empty() {
                    continue;
                }
                flushing += 1;
                in_flight.push(Either::Right(flush(
                    self.steps,
                    items,
                    self.hard.into_std(),
                )));
            }
            if in_flight.is_empty() {
                break;
            }
            if wake != armed {
                if let Some(at) = wake {
                    linger.as_mut().reset(at);
                }
                armed = wake;
            }
            let woke = poll_fn(|cx| {
                if let Poll::Ready(event) = in_flight.poll_next_unpin(cx) {
                    return Poll::Ready(Some(event));
                }
                if armed.is_some() && linger.as_mut().poll(cx).is_ready() {
                    armed = None;
                    return Poll::Ready(None);
                }
                if hard.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(None));
                }
                Poll::Pending
            })
            .await;
            match woke {
                // The linger ran out: loop to send the chunk.
                None => {}
                // The hard deadline: whatever still runs is reported.
                Some(None) => {
                    tracing::warn!(
                        running,
                        flushing,
                        "hard deadline reached; reporting unfinished records as failed"
                    );
                    break;
                }
                Some(Some(Event::Processed(index, Ok(output)))) => {
                    running -= 1;
                    if self.limit == 0 {
                        self.complete(index, Ok(()));
                    } else {
                        if chunk.is_empty() {
                            chunk_since = Instant::now();
                        }
                        chunk.push((index, output));
                    }
                }
                Some(Some(Event::Processed(index, Err(failure)))) => {
                    running -= 1;
                    self.complete(index, Err(failure));
                }
                Some(Some(Event::Flushed(indices, results))) => {
                    flushing -= 1;
                    let mut results = results.into_iter();
                    for index in indices {
                        let result = results.next().unwrap_or_else(|| {
                            Err(Failure::new(
                                code::NO_RESULT,
                                "the batched step returned fewer results than items",
                            ))
                        });
                        self.complete(index, result);
                    }
                }
            }
        }
    }

    /// How long a chunk of `items` waits for more: the short linger once no
    /// record waits to start and the running ones could not fill it anyway;
    /// `max_linger` while more items are coming, so a stalled record holds a
    /// chunk back for `max_linger` at the most.
    fn linger(&self, items: usize, running: usize) -> Duration {
        if self.ready.is_empty() && items + running < self.limit {
            self.options.linger()
        } else {
            self.options.max_linger()
        }
    }

    /// Records a record's outcome and what it means for the records after it.
    fn complete(&mut self, index: usize, result: Result<(), Failure>) {
        let failure = match result {
            Ok(()) => {
                self.states[index] = State::Succeeded;
                if let Some(next) = self.next[index].filter(|&n| n < self.cutoff) {
                    self.ready.push(Reverse(next));
                }
                return;
            }
            Err(failure) => failure,
        };
        self.states[index] = State::Failed(failure);
        match self.ordering {
            Ordering::Lanes { skipped } => {
                let event = Arc::clone(&self.event);
                let failed = S::item_identifier(&event.records()[index]).unwrap_or_default();
                let mut later = self.next[index];
                while let Some(i) = later {
                    self.states[i] = State::Skipped(Failure::new(
                        skipped,
                        format_args!("record {failed} before it failed"),
                    ));
                    later = self.next[i];
                }
            }
            Ordering::Checkpoint if index < self.cutoff => {
                self.cutoff = index;
                self.ready.retain(|&Reverse(i)| i < index);
            }
            _ => {}
        }
    }
}

/// The per-record step of one record; a panic fails this record only.
fn start<'a, S: Source, T: Steps<S>>(
    steps: &'a T,
    record: Record<S>,
    step_timeout: Option<Duration>,
) -> impl Future<Output = Event<T::Output>> + 'a {
    let index = record.index();
    let span = tracing::info_span!("record", id = record.id());
    let step = async move {
        let step = steps.step(record);
        match step_timeout {
            None => step.await,
            Some(limit) => tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
                Err(Failure::new(
                    code::STEP_TIMEOUT,
                    format_args!("the step took longer than {limit:?}"),
                ))
            }),
        }
    };
    AssertUnwindSafe(step)
        .catch_unwind()
        .map(move |result| {
            Event::Processed(
                index,
                result
                    .unwrap_or_else(|panic| Err(Failure::new(code::PANICKED, panic_text(&*panic)))),
            )
        })
        .instrument(span)
}

/// One call of the batched step; a panic fails the items of this call only.
fn flush<'a, S: Source, T: Steps<S>>(
    steps: &'a T,
    items: Vec<(usize, T::Output)>,
    deadline: StdInstant,
) -> impl Future<Output = Event<T::Output>> + 'a {
    let span = tracing::info_span!("flush", items = items.len());
    let (indices, outputs): (Vec<usize>, Vec<T::Output>) = items.into_iter().unzip();
    let n = indices.len();
    AssertUnwindSafe(async move { steps.flush(outputs, deadline).await })
        .catch_unwind()
        .map(move |results| {
            let results = results.unwrap_or_else(|panic| {
                vec![Err(Failure::new(code::PANICKED, panic_text(&*panic))); n]
            });
            Event::Flushed(indices, results)
        })
        .instrument(span)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// One entry per distinct record that did not succeed, in batch order, and
/// one log line per failure of a record's own; records that were only
/// skipped or never started are counted in one line each.
fn report<S: Source>(
    event: &S,
    first: &[usize],
    states: Vec<State>,
    ordering: Ordering,
    cutoff: usize,
) -> Report<S> {
    let records = event.records();
    let checkpoint = ordering == Ordering::Checkpoint;
    let mut report = Report {
        received: records.len(),
        succeeded: 0,
        duplicates: 0,
        failures: Vec::new(),
        reported: 0,
        source: PhantomData,
    };
    let (mut not_started, mut skipped, mut after_checkpoint) = (0usize, 0usize, 0usize);
    for (index, state) in states.into_iter().enumerate() {
        if first[index] != index {
            report.duplicates += 1;
            continue;
        }
        // Streams: Lambda delivers every record after the first one that
        // did not succeed again, whatever happened to it here.
        let redelivered = checkpoint && (index > cutoff || !report.failures.is_empty());
        let id = S::item_identifier(&records[index]).unwrap_or_default();
        let failure = match state {
            State::Failed(failure) => {
                own_failure(id, &failure);
                failure
            }
            State::Skipped(failure) => {
                skipped += 1;
                failure
            }
            State::Succeeded | State::Running | State::Waiting if redelivered => {
                after_checkpoint += 1;
                Failure::new(
                    code::AFTER_CHECKPOINT,
                    "after the checkpoint: Lambda delivers it again",
                )
            }
            State::Succeeded => {
                report.succeeded += 1;
                continue;
            }
            State::Running => {
                let failure = Failure::new(code::DEADLINE, "still running at the hard deadline");
                own_failure(id, &failure);
                failure
            }
            State::Waiting => {
                not_started += 1;
                Failure::new(code::NOT_STARTED, "not started before the soft deadline")
            }
        };
        report.failures.push(RecordFailure {
            id: id.to_owned(),
            index,
            failure,
        });
    }
    report.reported = if checkpoint {
        report.failures.len().min(1)
    } else {
        report.failures.len()
    };
    if not_started + skipped + after_checkpoint > 0 {
        tracing::warn!(
            not_started,
            skipped,
            after_checkpoint,
            "records reported failed without a failure of their own"
        );
    }
    report
}

fn own_failure(id: &str, failure: &Failure) {
    tracing::warn!(
        id,
        reason = failure.code(),
        detail = failure.detail(),
        "record failed"
    );
}
