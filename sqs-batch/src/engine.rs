//! Scheduling: which message starts when, when a chunk is sent, and when
//! the engine stops waiting.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Instant as StdInstant;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::message::{Decode, Message};
use crate::options::{FifoMode, Options};
use crate::processor::Processor;
use crate::report::{code, Failure, Report};
use crate::Error;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

enum Step<T> {
    /// A message's per-message step ended.
    Processed(usize, Result<T, Failure>),
    /// A call of the batched step ended: the records it held and their results.
    Flushed(Vec<usize>, Vec<Result<(), Failure>>),
}

/// Whether the batch comes from a FIFO queue: decided by the queue (its ARN
/// ends in `.fifo`), never by `MessageGroupId`, which standard queues accept
/// for fair queueing since 2025.
pub fn is_fifo(records: &[SqsMessage]) -> bool {
    records.iter().any(|r| {
        r.event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
    })
}

/// Processes one SQS batch with `processor` and reports every message that
/// did not succeed, by message id.
///
/// Fails as a whole only when no valid partial response can be given (a
/// record without a message id), when the invocation has too little time to
/// do anything, or, with [`Options::fail_on_full_batch_failure`], when every
/// message failed (the report is in the error).
pub async fn process<P: Processor>(
    processor: &P,
    event: &SqsEvent,
    deadline: StdInstant,
    options: &Options,
) -> Result<Report, Error> {
    options.validate()?;
    let budget = options
        .deadline
        .budget(Instant::now().into_std(), deadline)?;
    let batch = Batch::prepare(&event.records, options.fifo)?;
    let mut run = Run {
        processor,
        records: &event.records,
        options,
        soft: Instant::from_std(budget.soft),
        hard: Instant::from_std(budget.hard),
        limit: processor.batch_limit(),
        outcomes: vec![None; event.records.len()],
        next: batch.next,
        ready: batch.heads,
        skipped: match options.fifo {
            FifoMode::StopGroup => code::EARLIER_IN_GROUP_FAILED,
            FifoMode::StopBatch => code::EARLIER_IN_BATCH_FAILED,
        },
    };
    run.run().await;
    let report = report(&event.records, &batch.first, run.outcomes);
    if options.fail_on_full_batch_failure && report.all_failed() {
        return Err(Error::AllFailed(Box::new(report)));
    }
    Ok(report)
}

/// The batch's distinct messages, arranged in lanes: a message starts only
/// after the one before it in its lane succeeded. Standard queue: every
/// message is a lane of its own. FIFO: a lane per group, or one lane.
struct Batch {
    /// Lane heads, in batch order: ready to start.
    heads: VecDeque<usize>,
    /// The next message of each message's lane.
    next: Vec<Option<usize>>,
    /// For every record, the index of the first record with its message id.
    first: Vec<usize>,
}

impl Batch {
    fn prepare(records: &[SqsMessage], mode: FifoMode) -> Result<Self, Error> {
        let mut first_by_id: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        let mut first = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            // Without an id a failure cannot be reported, and an empty
            // itemIdentifier fails the whole batch on AWS anyway: say so.
            let id = match record.message_id.as_deref() {
                Some(id) if !id.is_empty() => id,
                _ => {
                    return Err(Error::InvalidEvent(format!(
                        "record {index} has no messageId, so its failure could not be reported"
                    )))
                }
            };
            first.push(*first_by_id.entry(id).or_insert(index));
        }
        let distinct = (0..records.len()).filter(|&i| first[i] == i);
        let mut next = vec![None; records.len()];
        let mut heads = VecDeque::new();
        if !is_fifo(records) {
            heads.extend(distinct);
        } else {
            // The last message seen of each lane.
            let mut tails: HashMap<&str, usize> = HashMap::new();
            for i in distinct {
                let lane = match mode {
                    FifoMode::StopGroup => records[i]
                        .attributes
                        .get("MessageGroupId")
                        .map_or("", String::as_str),
                    FifoMode::StopBatch => "",
                };
                match tails.insert(lane, i) {
                    Some(tail) => next[tail] = Some(i),
                    None => heads.push_back(i),
                }
            }
        }
        Ok(Self { heads, next, first })
    }
}

struct Run<'a, P: Processor> {
    processor: &'a P,
    records: &'a [SqsMessage],
    options: &'a Options,
    soft: Instant,
    hard: Instant,
    limit: usize,
    outcomes: Vec<Option<Result<(), Failure>>>,
    next: Vec<Option<usize>>,
    ready: VecDeque<usize>,
    skipped: &'static str,
}

impl<'a, P: Processor> Run<'a, P> {
    async fn run(&mut self) {
        let mut in_flight: FuturesUnordered<BoxFuture<'a, Step<P::Output>>> =
            FuturesUnordered::new();
        let (mut running, mut flushing) = (0usize, 0usize);
        let mut chunk: Vec<(usize, P::Output)> = Vec::new();
        let mut chunk_since = Instant::now();
        let mut full: VecDeque<Vec<(usize, P::Output)>> = VecDeque::new();
        loop {
            let now = Instant::now();
            if now < self.soft {
                while running < self.options.concurrency {
                    let Some(index) = self.ready.pop_front() else {
                        break;
                    };
                    running += 1;
                    in_flight.push(self.start(index));
                }
            }
            // When a waiting chunk is due: after its linger, at the soft
            // deadline at the latest. Wake up then even if nothing else happens.
            let mut wake = None;
            if !chunk.is_empty() {
                let due = (chunk_since + self.linger(chunk.len(), running)).min(self.soft);
                if chunk.len() >= self.limit || running == 0 || now >= due {
                    full.push_back(std::mem::take(&mut chunk));
                } else {
                    wake = Some(due);
                }
            }
            while flushing < self.options.flush_concurrency {
                let Some(items) = full.pop_front() else { break };
                flushing += 1;
                in_flight.push(self.flush(items));
            }
            if in_flight.is_empty() {
                break;
            }
            let step = tokio::select! {
                biased;
                step = in_flight.next() => step,
                () = sleep_until_some(wake) => continue,
                () = tokio::time::sleep_until(self.hard) => {
                    tracing::warn!(
                        running,
                        flushing,
                        "hard deadline reached; reporting unfinished messages as failed"
                    );
                    break;
                }
            };
            match step {
                Some(Step::Processed(index, Ok(output))) => {
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
                Some(Step::Processed(index, Err(failure))) => {
                    running -= 1;
                    self.complete(index, Err(failure));
                }
                Some(Step::Flushed(indices, results)) => {
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
                None => break,
            }
        }
    }

    /// How long a chunk of `items` waits for more: the short linger once no
    /// message waits to start and the running ones could not fill it anyway;
    /// `max_linger` while more items are coming (messages waiting to start,
    /// or enough running to fill it), so a stalled message holds a chunk back
    /// for `max_linger` at the most.
    fn linger(&self, items: usize, running: usize) -> std::time::Duration {
        if self.ready.is_empty() && items + running < self.limit {
            self.options.linger
        } else {
            self.options.max_linger
        }
    }

    /// Records a message's outcome: on success the next message of its lane
    /// becomes ready; on failure the rest of the lane is reported unprocessed.
    fn complete(&mut self, index: usize, result: Result<(), Failure>) {
        let ok = result.is_ok();
        self.outcomes[index] = Some(result);
        let mut later = self.next[index];
        if ok {
            self.ready.extend(later);
            return;
        }
        let failed = self.records[index].message_id.as_deref().unwrap_or("");
        while let Some(i) = later {
            self.outcomes[i] = Some(Err(Failure::new(
                self.skipped,
                format_args!("message {failed} before it failed"),
            )));
            later = self.next[i];
        }
    }

    /// The per-message step of one message, its body decoded first; a panic
    /// fails this message only.
    fn start(&self, index: usize) -> BoxFuture<'a, Step<P::Output>> {
        let record = &self.records[index];
        let message = Message {
            id: record.message_id.as_deref().unwrap_or(""),
            body: record.body.as_deref().unwrap_or(""),
            record,
            deadline: self.hard.into_std(),
        };
        let processor = self.processor;
        let step_timeout = self.options.step_timeout;
        let span = tracing::info_span!("message", message_id = message.id);
        Box::pin(async move {
            let step = async {
                let body = P::Body::decode(message.body)?;
                let step = processor.process(message, body);
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
            let result = AssertUnwindSafe(step.instrument(span))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    tracing::error!(
                        message_id = message.id,
                        "processing panicked; reporting the message as failed"
                    );
                    Err(Failure::new(code::PANICKED, panic_text(&*panic)))
                });
            Step::Processed(index, result)
        })
    }

    /// One call of the batched step; a panic fails the items of this call only.
    fn flush(&self, items: Vec<(usize, P::Output)>) -> BoxFuture<'a, Step<P::Output>> {
        let (indices, outputs): (Vec<usize>, Vec<P::Output>) = items.into_iter().unzip();
        let processor = self.processor;
        let deadline = self.hard.into_std();
        let span = tracing::info_span!("flush", items = indices.len());
        Box::pin(async move {
            let n = indices.len();
            let results = AssertUnwindSafe(processor.flush(outputs, deadline).instrument(span))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    tracing::error!(
                        items = n,
                        "batched step panicked; reporting its items as failed"
                    );
                    let failure = Failure::new(code::PANICKED, panic_text(&*panic));
                    vec![Err(failure); n]
                });
            Step::Flushed(indices, results)
        })
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// One entry per distinct failed message id, in batch order; a message
/// without an outcome was cut off by the deadline.
fn report(
    records: &[SqsMessage],
    first: &[usize],
    outcomes: Vec<Option<Result<(), Failure>>>,
) -> Report {
    let mut report = Report {
        received: records.len(),
        ..Report::default()
    };
    for (index, outcome) in outcomes.into_iter().enumerate() {
        if first[index] != index {
            report.duplicates += 1;
            continue;
        }
        match outcome {
            Some(Ok(())) => report.succeeded += 1,
            Some(Err(failure)) => {
                push_failure(&mut report, records, index, failure);
            }
            None => push_failure(
                &mut report,
                records,
                index,
                Failure::new(code::DEADLINE, "not finished before the deadline"),
            ),
        }
    }
    report
}

fn push_failure(report: &mut Report, records: &[SqsMessage], index: usize, failure: Failure) {
    let id = records[index].message_id.clone().unwrap_or_default();
    tracing::warn!(message_id = %id, reason = failure.code(), detail = %failure.detail, "message failed");
    report.failures.push((id, failure));
}
