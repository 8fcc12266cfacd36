//! The batch handler: SQS batch in, partial batch response out.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_smithy_types::error::display::DisplayErrorContext;
use futures::stream::{self, FuturesUnordered, StreamExt};
use futures::FutureExt;
use pipeline_core::{record_id, rfc3339_millis, s3_key, Body, StoredObject, StoredRecord};
use tracing::Instrument;

use crate::config::Config;
use crate::store::{ObjectStore, RecordStore};
use crate::Error;

/// BatchWriteItem takes at most 25 requests.
pub const DYNAMODB_BATCH_LIMIT: usize = 25;

/// Everything an invocation needs, built once at start-up.
#[derive(Debug)]
pub struct State<O, R> {
    /// Where objects go.
    pub objects: O,
    /// Where items go.
    pub records: R,
    /// Settings.
    pub config: Config,
}

/// Why a message was reported as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// PutObject failed; the item was not written.
    ObjectStore(String),
    /// BatchWriteItem failed for the chunk holding the item.
    RecordStore(String),
    /// The item was still unprocessed after every retry.
    Unprocessed,
    /// Not started or not finished before the invocation deadline.
    Deadline,
    /// FIFO: an earlier message of the same group failed.
    EarlierInGroupFailed,
    /// Processing panicked.
    Panicked,
    /// The body holds the configured reject marker.
    Rejected,
}

impl Failure {
    /// A short code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::ObjectStore(_) => "s3_put_failed",
            Failure::RecordStore(_) => "dynamodb_write_failed",
            Failure::Unprocessed => "dynamodb_unprocessed",
            Failure::Deadline => "deadline",
            Failure::EarlierInGroupFailed => "earlier_in_group_failed",
            Failure::Panicked => "panicked",
            Failure::Rejected => "rejected",
        }
    }
}

/// What happened to a batch, besides the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages stored (object and item).
    pub stored: usize,
    /// Failures by message id, in batch order.
    pub failures: Vec<(String, Failure)>,
}

impl Report {
    /// The partial batch response for this report.
    pub fn response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for (id, _) in &self.failures {
            response.add_failure(id.clone());
        }
        response
    }
}

/// One message prepared for processing.
struct Message<'a> {
    message_id: &'a str,
    body: &'a str,
    received_at: String,
}

type Outcome = Result<StoredRecord, Failure>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

enum Step {
    /// A message's object was written (or not).
    Object(usize, Outcome),
    /// A BatchWriteItem chunk finished.
    Chunk(Vec<(usize, Result<(), Failure>)>),
}

/// Handles one Lambda invocation: the deadline comes from the Lambda context
/// as milliseconds since the Unix epoch.
pub async fn handle_invocation<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    event: SqsEvent,
    deadline_epoch_ms: u64,
) -> Result<SqsBatchResponse, Error> {
    let now_ms = epoch_ms_now();
    let deadline = Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
    let started = Instant::now();
    let report = handle(state, &event, deadline).await?;
    crate::metrics::emit(
        &state.config.metrics_namespace,
        event.records.len(),
        &report,
        started.elapsed(),
    );
    Ok(report.response())
}

/// Processes a batch and reports, by message id, every message that was not
/// stored. Fails as a whole only when the event cannot be answered with a
/// valid partial response (a record without a message id).
pub async fn handle<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    event: &SqsEvent,
    deadline: Instant,
) -> Result<Report, Error> {
    let config = &state.config;
    // Stop starting work at `soft`; stop waiting for it at `hard`, leaving
    // time to send the response before Lambda kills the invocation.
    let soft = deadline
        .checked_sub(config.deadline_margin)
        .unwrap_or_else(Instant::now);
    let hard = deadline
        .checked_sub(config.deadline_margin / 2)
        .unwrap_or_else(Instant::now);

    let (messages, duplicates) = prepare(&event.records)?;
    let distinct = (0..messages.len()).filter(|&i| duplicates[i].is_none());
    let outcomes = if is_fifo(&event.records) {
        let groups = groups(&event.records, distinct);
        run_fifo(state, &messages, groups, soft, hard).await
    } else {
        run_standard(state, &messages, distinct.collect(), soft, hard).await
    };
    Ok(report(&messages, &duplicates, outcomes))
}

/// Standard queue: the messages run concurrently; items join chunks of 25 as
/// their objects land, so DynamoDB writes overlap the remaining S3 puts.
async fn run_standard<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    messages: &[Message<'_>],
    indices: Vec<usize>,
    soft: Instant,
    hard: Instant,
) -> Vec<Result<(), Failure>> {
    let mut outcomes: Vec<Option<Result<(), Failure>>> = vec![None; messages.len()];
    let mut pending = indices.into_iter();
    let mut in_flight: FuturesUnordered<BoxFuture<'_, Step>> = FuturesUnordered::new();
    let mut objects_in_flight = 0usize;
    let mut chunk: Vec<(usize, StoredRecord)> = Vec::with_capacity(DYNAMODB_BATCH_LIMIT);

    loop {
        while objects_in_flight < state.config.max_concurrency {
            let Some(index) = pending.next() else { break };
            objects_in_flight += 1;
            in_flight.push(Box::pin(
                store_message(state, messages, index, soft).map(|(i, o)| Step::Object(i, o)),
            ));
        }
        // Write a full chunk, or what is left once every object is done.
        if chunk.len() == DYNAMODB_BATCH_LIMIT || (objects_in_flight == 0 && !chunk.is_empty()) {
            in_flight.push(Box::pin(
                write_chunk(state, std::mem::take(&mut chunk), soft).map(Step::Chunk),
            ));
        }
        let step =
            match tokio::time::timeout_at(tokio::time::Instant::from_std(hard), in_flight.next())
                .await
            {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        unfinished = in_flight.len(),
                        "deadline reached; reporting unfinished messages as failed"
                    );
                    break;
                }
            };
        match step {
            Step::Object(index, outcome) => {
                objects_in_flight -= 1;
                match outcome {
                    Ok(record) => chunk.push((index, record)),
                    Err(failure) => outcomes[index] = Some(Err(failure)),
                }
            }
            Step::Chunk(results) => {
                for (index, outcome) in results {
                    outcomes[index] = Some(outcome);
                }
            }
        }
    }
    drop(in_flight);
    unfinished_missed_the_deadline(outcomes)
}

/// FIFO queue: message groups advance in rounds, the n-th message of every
/// group in round n. A message is written whole (object, then item) before
/// the next one of its group starts, and at a group's first failure the
/// rest of the group is not processed but reported, so the group is retried
/// in order. Items of one round share BatchWriteItem calls across groups.
async fn run_fifo<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    messages: &[Message<'_>],
    groups: Vec<Vec<usize>>,
    soft: Instant,
    hard: Instant,
) -> Vec<Result<(), Failure>> {
    let limit = state.config.max_concurrency;
    let mut outcomes: Vec<Option<Result<(), Failure>>> = vec![None; messages.len()];
    let mut queues: Vec<VecDeque<usize>> = groups.into_iter().map(VecDeque::from).collect();
    let rounds = async {
        loop {
            let round: Vec<(usize, usize)> = queues
                .iter_mut()
                .enumerate()
                .filter_map(|(group, queue)| queue.pop_front().map(|index| (group, index)))
                .collect();
            if round.is_empty() {
                break;
            }
            let objects: Vec<(usize, Outcome)> = stream::iter(
                round
                    .iter()
                    .map(|&(_, i)| store_message(state, messages, i, soft)),
            )
            .buffer_unordered(limit)
            .collect()
            .await;
            let mut stored = Vec::new();
            for (index, outcome) in objects {
                match outcome {
                    Ok(record) => stored.push((index, record)),
                    Err(failure) => outcomes[index] = Some(Err(failure)),
                }
            }
            let mut chunks = Vec::new();
            while !stored.is_empty() {
                let rest = stored.split_off(stored.len().min(DYNAMODB_BATCH_LIMIT));
                chunks.push(write_chunk(
                    state,
                    std::mem::replace(&mut stored, rest),
                    soft,
                ));
            }
            for (index, outcome) in futures::future::join_all(chunks)
                .await
                .into_iter()
                .flatten()
            {
                outcomes[index] = Some(outcome);
            }
            for &(group, index) in &round {
                if matches!(outcomes[index], Some(Err(_))) {
                    for later in queues[group].drain(..) {
                        outcomes[later] = Some(Err(Failure::EarlierInGroupFailed));
                    }
                }
            }
        }
    };
    if tokio::time::timeout_at(tokio::time::Instant::from_std(hard), rounds)
        .await
        .is_err()
    {
        tracing::warn!("deadline reached; reporting unfinished messages as failed");
    }
    unfinished_missed_the_deadline(outcomes)
}

/// Messages with no outcome were cut off by the deadline.
fn unfinished_missed_the_deadline(
    outcomes: Vec<Option<Result<(), Failure>>>,
) -> Vec<Result<(), Failure>> {
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(Failure::Deadline)))
        .collect()
}

/// Checks every record and prepares one [`Message`] per distinct message id.
/// `duplicates[i]` is the index of the first record with the same id.
#[allow(clippy::type_complexity)]
fn prepare(records: &[SqsMessage]) -> Result<(Vec<Message<'_>>, Vec<Option<usize>>), Error> {
    let mut first_by_id: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut messages = Vec::with_capacity(records.len());
    let mut duplicates = Vec::with_capacity(records.len());
    let now = epoch_ms_now();
    for (index, record) in records.iter().enumerate() {
        // Without a message id the failure cannot be reported, and an empty
        // itemIdentifier would fail the whole batch anyway: say so loudly.
        let message_id = match record.message_id.as_deref() {
            Some(id) if !id.is_empty() => id,
            _ => {
                return Err(Error::InvalidEvent(format!(
                    "record {index} has no messageId, so its failure could not be reported"
                )))
            }
        };
        let received_ms = ["ApproximateFirstReceiveTimestamp", "SentTimestamp"]
            .iter()
            .find_map(|k| record.attributes.get(*k)?.parse::<u64>().ok())
            .unwrap_or(now);
        duplicates.push(first_by_id.get(message_id).copied());
        first_by_id.entry(message_id).or_insert(index);
        messages.push(Message {
            message_id,
            body: record.body.as_deref().unwrap_or(""),
            received_at: rfc3339_millis(received_ms),
        });
    }
    Ok((messages, duplicates))
}

/// Whether the batch comes from a FIFO queue.
fn is_fifo(records: &[SqsMessage]) -> bool {
    records.iter().any(|r| {
        r.attributes.contains_key("MessageGroupId")
            || r.event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(".fifo"))
    })
}

/// The message groups of a FIFO batch, each in batch order, in the order
/// their first messages appear.
fn groups(records: &[SqsMessage], indices: impl Iterator<Item = usize>) -> Vec<Vec<usize>> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in indices {
        let group = group_of(&records[i]);
        groups
            .entry(group)
            .or_insert_with(|| {
                order.push(group);
                Vec::new()
            })
            .push(i);
    }
    order.into_iter().filter_map(|g| groups.remove(g)).collect()
}

fn group_of(record: &SqsMessage) -> &str {
    record
        .attributes
        .get("MessageGroupId")
        .map(String::as_str)
        .unwrap_or("")
}

/// Writes one message's object unless the deadline is near; a panic fails
/// this message only.
async fn store_message<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    messages: &[Message<'_>],
    index: usize,
    soft: Instant,
) -> (usize, Outcome) {
    if Instant::now() >= soft {
        return (index, Err(Failure::Deadline));
    }
    let message = &messages[index];
    let span = tracing::info_span!("message", message_id = message.message_id);
    let outcome = AssertUnwindSafe(store_object(state, message).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(
                message_id = message.message_id,
                "processing panicked; reporting the message as failed"
            );
            Err(Failure::Panicked)
        });
    (index, outcome)
}

/// Writes one message's object and returns the item to write next.
async fn store_object<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    message: &Message<'_>,
) -> Outcome {
    if let Some(marker) = &state.config.reject_marker {
        if message.body.contains(marker.as_str()) {
            tracing::warn!("body holds the reject marker; leaving it for the DLQ");
            return Err(Failure::Rejected);
        }
    }
    let id = record_id(message.message_id);
    let key = s3_key(&state.config.records_prefix, &id);
    let object = StoredObject {
        id,
        message_id: message.message_id,
        received_at: &message.received_at,
        body: Body::from_raw(message.body),
    };
    if let Err(err) = state.objects.put(&key, object.to_json()).await {
        let detail = DisplayErrorContext(&err).to_string();
        tracing::warn!(error = %detail, "S3 put failed");
        return Err(Failure::ObjectStore(detail));
    }
    Ok(StoredRecord {
        id: id.to_string(),
        message_id: message.message_id.to_owned(),
        s3_key: key,
        received_at: message.received_at.clone(),
        body_bytes: message.body.len() as u64,
        stored_at: rfc3339_millis(epoch_ms_now()),
    })
}

/// Writes one chunk of at most 25 items with distinct ids, retrying
/// unprocessed items with exponential backoff and full jitter.
async fn write_chunk<O: ObjectStore, R: RecordStore>(
    state: &State<O, R>,
    chunk: Vec<(usize, StoredRecord)>,
    soft: Instant,
) -> Vec<(usize, Result<(), Failure>)> {
    let config = &state.config;
    let (mut indices, mut pending): (Vec<usize>, Vec<StoredRecord>) = chunk.into_iter().unzip();
    let mut results = Vec::with_capacity(indices.len());
    let mut attempt = 0u32;
    while !pending.is_empty() {
        attempt += 1;
        let failure = match state.records.put_batch(&pending).await {
            Ok(unprocessed) => {
                // Keep what is left; the rest is written. Moves, no copies.
                (indices, pending) = indices
                    .drain(..)
                    .zip(pending.drain(..))
                    .filter(|(i, r)| {
                        let left = unprocessed.contains(&r.id);
                        if !left {
                            results.push((*i, Ok(())));
                        }
                        left
                    })
                    .unzip();
                if pending.is_empty() {
                    break;
                }
                let delay = backoff(attempt, config.backoff_base, config.backoff_cap);
                if attempt < config.dynamodb_max_attempts && Instant::now() + delay < soft {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                tracing::warn!(
                    items = pending.len(),
                    attempts = attempt,
                    "items still unprocessed; reporting them as failed"
                );
                Failure::Unprocessed
            }
            Err(err) => {
                let detail = DisplayErrorContext(&err).to_string();
                tracing::warn!(error = %detail, items = pending.len(), "BatchWriteItem failed");
                Failure::RecordStore(detail)
            }
        };
        results.extend(indices.drain(..).map(|i| (i, Err(failure.clone()))));
        break;
    }
    results
}

/// Full-jitter exponential backoff: a random delay between zero and
/// `min(cap, base * 2^(attempt-1))`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// Builds the report: one entry per distinct failed message id, in batch order.
fn report(
    messages: &[Message<'_>],
    duplicates: &[Option<usize>],
    outcomes: Vec<Result<(), Failure>>,
) -> Report {
    let mut report = Report::default();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        if duplicates[i].is_some() {
            continue;
        }
        match outcome {
            Ok(()) => report.stored += 1,
            Err(failure) => {
                tracing::warn!(
                    message_id = messages[i].message_id,
                    reason = failure.code(),
                    "message failed"
                );
                report
                    .failures
                    .push((messages[i].message_id.to_owned(), failure));
            }
        }
    }
    report
}

fn epoch_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
