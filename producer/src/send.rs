//! Splitting a request into SendMessageBatch calls and accounting for every
//! entry.
//!
//! Messages travel in lanes. On a FIFO queue a lane is a `MessageGroupId`:
//! its messages go out in request order, one call at a time, and the lane
//! stops at its first message that is not enqueued (the rest are held
//! back, so the client resends from there and the group stays in order).
//! On a standard queue every message is a lane of its own. A call packs
//! the next messages of idle lanes, at most 10 entries and 1 MiB as SQS
//! counts it, and up to [`SendOptions::concurrency`] calls run at once.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_smithy_types::error::display::DisplayErrorContext;
use futures::stream::{FuturesUnordered, StreamExt};
use pipeline_core::{
    message_record_id, Accepted, EnqueueResponse, Rejected, IDEMPOTENCY_KEY_ATTRIBUTE,
    MAX_SQS_MESSAGE_BYTES,
};
use tokio::time::Instant;

use crate::error::code;
use crate::store::{Entry, EntryFailure, EntryResult, Queue};
use crate::{ErrorClass, SendError};

/// SendMessageBatch takes at most 10 entries...
pub const SQS_BATCH_LIMIT: usize = 10;
/// ...and at most 1 MiB of messages per call.
pub const SQS_BATCH_BYTES: usize = MAX_SQS_MESSAGE_BYTES;
/// Data type of the idempotency-key message attribute.
pub const KEY_ATTRIBUTE_TYPE: &str = "String";

/// The size SQS counts for a message against its 1 MiB limit: the body,
/// plus each message attribute's name, data type and value. System
/// attributes (the `AWSTraceHeader`) do not count.
pub fn sqs_size(body: &str, idempotency_key: Option<&str>) -> usize {
    body.len()
        + idempotency_key.map_or(0, |key| {
            IDEMPOTENCY_KEY_ATTRIBUTE.len() + KEY_ATTRIBUTE_TYPE.len() + key.len()
        })
}

/// One message to send, with what travels beside its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outgoing {
    /// The body, byte for byte as the client sent it.
    pub body: String,
    /// Its idempotency key, if any.
    pub key: Option<String>,
    /// Its `MessageGroupId`, if any.
    pub group: Option<String>,
    /// Its `MessageDeduplicationId` (FIFO queues only).
    pub deduplication_id: Option<String>,
}

impl Outgoing {
    /// Its size as SQS counts it (see [`sqs_size`]).
    pub fn sqs_size(&self) -> usize {
        sqs_size(&self.body, self.key.as_deref())
    }
}

/// How [`send_all`] sends.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions<'a> {
    /// SendMessageBatch calls in flight at once.
    pub concurrency: usize,
    /// Calls per entry SQS failed with a retryable error (whole-call errors
    /// are the SDK's to retry, inside one call's budget).
    pub max_attempts: u32,
    /// Longest a call may take, SDK retries included.
    pub call_timeout: Duration,
    /// When every call must be over, so the request can still be answered.
    pub deadline: Instant,
    /// The request's X-Ray trace header, carried by every message.
    pub trace_header: Option<&'a str>,
    /// Keep each `MessageGroupId`'s order (FIFO queues): one call at a time
    /// per group, and nothing after a message of the group that failed.
    pub ordered: bool,
}

/// Shortest budget worth starting a call with.
const MIN_CALL_BUDGET: Duration = Duration::from_millis(50);

/// Sends every message and accounts for each one as accepted or failed:
/// lanes concurrently, each lane's calls one after another; entries SQS
/// failed with a retryable error are sent again while attempts and the
/// deadline allow, and only when no later message of their lane went in.
pub async fn send_all<Q: Queue>(
    queue: &Q,
    messages: &[Outgoing],
    options: SendOptions<'_>,
) -> EnqueueResponse {
    let mut plan = Plan::new(messages, options);
    let mut in_flight = FuturesUnordered::new();
    loop {
        let now = Instant::now();
        let time_for_a_call = options.deadline.saturating_duration_since(now) >= MIN_CALL_BUDGET;
        while time_for_a_call && in_flight.len() < options.concurrency.max(1) {
            let call = plan.pack(now);
            if call.is_empty() {
                break;
            }
            in_flight.push(send_call(queue, messages, call, options));
        }
        // Lanes due now were packed above unless every call slot is taken.
        let room = in_flight.len() < options.concurrency.max(1);
        let wake = plan.next_wake(now).filter(|_| time_for_a_call && room);
        if in_flight.is_empty() && wake.is_none() {
            break;
        }
        tokio::select! {
            Some((call, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                plan.settle(&call, outcome);
            }
            () = tokio::time::sleep_until(wake.unwrap_or(options.deadline)), if wake.is_some() => {}
        }
    }
    plan.finish()
}

/// One call: its entries (message indices), and SQS's answer.
async fn send_call<Q: Queue>(
    queue: &Q,
    messages: &[Outgoing],
    call: Vec<usize>,
    options: SendOptions<'_>,
) -> (Vec<usize>, Result<Vec<EntryResult>, SendError>) {
    let left = options.deadline.saturating_duration_since(Instant::now());
    let budget = options.call_timeout.min(left);
    let entries: Vec<Entry> = call
        .iter()
        .map(|&i| {
            let m = &messages[i];
            Entry {
                id: i.to_string(),
                body: m.body.clone(),
                trace_header: options.trace_header.map(str::to_owned),
                idempotency_key: m.key.clone(),
                group_id: m.group.clone(),
                deduplication_id: m.deduplication_id.clone(),
            }
        })
        .collect();
    let outcome = match tokio::time::timeout(budget, queue.send_batch(&entries, budget)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(SendError::new(
            ErrorClass::OutcomeUnknown,
            "Timeout",
            format!("no answer within the call's budget of {budget:?}"),
        )),
    };
    (call, outcome)
}

/// The messages of one lane still to send, in order.
#[derive(Debug)]
struct Lane {
    pending: VecDeque<usize>,
    /// A call holding some of its messages is in flight.
    busy: bool,
    /// Not before this (a retry's backoff).
    not_before: Instant,
}

/// Where every message stands.
struct Plan<'a> {
    messages: &'a [Outgoing],
    options: SendOptions<'a>,
    lanes: Vec<Lane>,
    lane_of: Vec<usize>,
    /// Lanes before this one have nothing left to send.
    first_open: usize,
    /// Calls each message was in.
    attempts: Vec<u32>,
    /// Why a message waiting to be sent again failed last time.
    last_failure: Vec<Option<Rejected>>,
    accepted: Vec<Accepted>,
    failed: Vec<Rejected>,
}

/// What SQS said about one entry of a call.
enum Answer {
    Sent(String),
    Failed(EntryFailure),
    /// Neither in `Successful` nor in `Failed`.
    Missing,
}

impl<'a> Plan<'a> {
    fn new(messages: &'a [Outgoing], options: SendOptions<'a>) -> Self {
        let now = Instant::now();
        let mut lanes: Vec<Lane> = Vec::new();
        let mut lane_of = Vec::with_capacity(messages.len());
        let mut by_group: HashMap<&str, usize> = HashMap::new();
        for (i, m) in messages.iter().enumerate() {
            let group = m.group.as_deref().filter(|_| options.ordered);
            let lane = match group.map(|g| by_group.get(g).copied().ok_or(g)) {
                Some(Ok(lane)) => lane,
                grouped => {
                    lanes.push(Lane {
                        pending: VecDeque::new(),
                        busy: false,
                        not_before: now,
                    });
                    if let Some(Err(g)) = grouped {
                        by_group.insert(g, lanes.len() - 1);
                    }
                    lanes.len() - 1
                }
            };
            lanes[lane].pending.push_back(i);
            lane_of.push(lane);
        }
        Self {
            messages,
            options,
            lanes,
            lane_of,
            first_open: 0,
            attempts: vec![0; messages.len()],
            last_failure: vec![None; messages.len()],
            accepted: Vec::with_capacity(messages.len()),
            failed: Vec::new(),
        }
    }

    /// The next call: the next messages of idle lanes that are due, at most
    /// 10 entries and 1 MiB; empty when there is nothing to send now.
    fn pack(&mut self, now: Instant) -> Vec<usize> {
        while self
            .lanes
            .get(self.first_open)
            .is_some_and(|l| l.pending.is_empty() && !l.busy)
        {
            self.first_open += 1;
        }
        let mut call = Vec::new();
        let mut bytes = 0;
        for lane in &mut self.lanes[self.first_open..] {
            if lane.busy || lane.not_before > now {
                continue;
            }
            while let Some(&i) = lane.pending.front() {
                let size = self.messages[i].sqs_size();
                if call.len() == SQS_BATCH_LIMIT
                    || (!call.is_empty() && bytes + size > SQS_BATCH_BYTES)
                {
                    break;
                }
                bytes += size;
                call.push(i);
                self.attempts[i] += 1;
                lane.pending.pop_front();
                lane.busy = true;
            }
            if call.len() == SQS_BATCH_LIMIT {
                break;
            }
        }
        call
    }

    /// The earliest time after `now` an idle lane waiting on a backoff
    /// becomes due.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.lanes[self.first_open..]
            .iter()
            .filter(|l| !l.busy && !l.pending.is_empty() && l.not_before > now)
            .map(|l| l.not_before)
            .min()
    }

    /// Accounts for the entries of a call that is over.
    fn settle(&mut self, call: &[usize], outcome: Result<Vec<EntryResult>, SendError>) {
        // Each lane's entries in this call, in order.
        let mut lanes: Vec<(usize, Vec<usize>)> = Vec::new();
        for &i in call {
            let lane = self.lane_of[i];
            match lanes.iter_mut().find(|(l, _)| *l == lane) {
                Some((_, entries)) => entries.push(i),
                None => lanes.push((lane, vec![i])),
            }
        }
        for (lane, _) in &lanes {
            self.lanes[*lane].busy = false;
        }
        let results = match outcome {
            Ok(results) => results,
            Err(err) => {
                // The SDK already retried what was retryable within the
                // budget: retrying here too would stack the two layers.
                tracing::warn!(
                    error = %DisplayErrorContext(&err),
                    code = %err.code,
                    class = ?err.class,
                    entries = call.len(),
                    "SendMessageBatch failed"
                );
                for (lane, entries) in lanes {
                    for &i in &entries {
                        self.failed.push(whole_call(i, err.class));
                    }
                    self.stop(lane, entries[0]);
                }
                return;
            }
        };
        let mut answers: HashMap<usize, Answer> = HashMap::with_capacity(call.len());
        for (entry_id, result) in results {
            // Only ids we sent count, and only their first answer.
            let Some(i) = entry_id.parse().ok().filter(|i| call.contains(i)) else {
                continue;
            };
            answers.entry(i).or_insert(match result {
                Ok(message_id) => Answer::Sent(message_id),
                Err(f) => Answer::Failed(f),
            });
        }
        for (lane, entries) in lanes {
            let answers: Vec<(usize, Answer)> = entries
                .into_iter()
                .map(|i| (i, answers.remove(&i).unwrap_or(Answer::Missing)))
                .collect();
            self.settle_lane(lane, answers);
        }
    }

    /// One lane's entries of a call that SQS answered.
    fn settle_lane(&mut self, lane: usize, answers: Vec<(usize, Answer)>) {
        let Some(first_bad) = answers
            .iter()
            .position(|(_, a)| !matches!(a, Answer::Sent(_)))
        else {
            for (i, answer) in answers {
                if let Answer::Sent(message_id) = answer {
                    self.accept(i, message_id);
                }
            }
            return;
        };
        let first_bad_index = answers[first_bad].0;
        // Whether each entry has a later entry of its lane that SQS took.
        let mut taken_after = vec![false; answers.len()];
        for p in (0..answers.len().saturating_sub(1)).rev() {
            taken_after[p] = taken_after[p + 1] || matches!(answers[p + 1].1, Answer::Sent(_));
        }
        let now = Instant::now();
        let most_attempts = answers[first_bad..]
            .iter()
            .map(|(i, _)| self.attempts[*i])
            .max()
            .unwrap_or(0);
        let delay = pipeline_aws::backoff(
            most_attempts + 1,
            Duration::from_millis(20),
            Duration::from_millis(1_280),
        );
        // Send the failed tail again only if nothing after its first failure
        // went in (else it could only land behind later messages), every
        // failure in it is worth retrying, and attempts and time remain.
        let retry = answers[first_bad..]
            .iter()
            .all(|(_, a)| matches!(a, Answer::Failed(f) if !f.sender_fault))
            && most_attempts < self.options.max_attempts
            && now + delay + MIN_CALL_BUDGET <= self.options.deadline;
        let mut retried = Vec::new();
        for (p, (i, answer)) in answers.into_iter().enumerate() {
            match answer {
                Answer::Sent(message_id) => self.accept(i, message_id),
                Answer::Missing => {
                    tracing::warn!(
                        index = i,
                        "SQS answered neither success nor failure for an entry"
                    );
                    self.failed.push(outcome_unknown(i));
                }
                Answer::Failed(f) => {
                    tracing::warn!(index = i, code = %f.code, message = %f.message, sender_fault = f.sender_fault, "SQS failed an entry");
                    if retry {
                        self.last_failure[i] = Some(entry_rejected(i, &f));
                        retried.push(i);
                    } else if taken_after[p] && !f.sender_fault {
                        self.failed.push(order_broken(i));
                    } else {
                        self.failed.push(entry_rejected(i, &f));
                    }
                }
            }
        }
        if retry {
            let lane = &mut self.lanes[lane];
            for &i in retried.iter().rev() {
                lane.pending.push_front(i);
            }
            lane.not_before = now + delay;
        } else {
            self.stop(lane, first_bad_index);
        }
    }

    fn accept(&mut self, index: usize, message_id: String) {
        self.last_failure[index] = None;
        self.accepted.push(Accepted {
            index,
            id: message_record_id(&message_id, self.messages[index].key.as_deref()).to_string(),
            message_id,
        });
    }

    /// Holds back the rest of an ordered lane after message `first` failed.
    fn stop(&mut self, lane: usize, first: usize) {
        if !self.options.ordered {
            return;
        }
        let held: Vec<usize> = self.lanes[lane].pending.drain(..).collect();
        self.failed
            .extend(held.into_iter().map(|i| held_back(i, first)));
    }

    /// Every message still waiting never got its turn in time.
    fn finish(mut self) -> EnqueueResponse {
        for lane in &mut self.lanes {
            for i in lane.pending.drain(..) {
                let failure = self.last_failure[i].take().unwrap_or_else(|| not_sent(i));
                self.failed.push(failure);
            }
        }
        let mut response = EnqueueResponse {
            accepted: self.accepted,
            failed: self.failed,
            ..EnqueueResponse::default()
        };
        response.accepted.sort_by_key(|a| a.index);
        response.failed.sort_by_key(|f| f.index);
        response
    }
}

/// An entry of a call that failed as a whole.
fn whole_call(index: usize, class: ErrorClass) -> Rejected {
    Rejected {
        index,
        code: class.code().to_owned(),
        message: class.message().to_owned(),
        retryable: class.retryable(),
    }
}

/// An entry whose outcome is unknown.
fn outcome_unknown(index: usize) -> Rejected {
    whole_call(index, ErrorClass::OutcomeUnknown)
}

/// An entry SQS failed on its own; SQS's message stays in the log.
fn entry_rejected(index: usize, failure: &EntryFailure) -> Rejected {
    if failure.is_size_refusal() {
        return whole_call(index, ErrorClass::TooLarge);
    }
    let (message, retryable) = if failure.sender_fault {
        (
            "SQS refused this message; sending it again as is will not help",
            false,
        )
    } else {
        (
            "SQS did not take this message (it was not enqueued); sending it again may succeed",
            true,
        )
    };
    Rejected {
        index,
        code: failure.code.clone(),
        message: message.to_owned(),
        retryable,
    }
}

/// An entry SQS failed while taking later entries of its group in the
/// same call.
fn order_broken(index: usize) -> Rejected {
    Rejected {
        index,
        code: code::ORDER_BROKEN.to_owned(),
        message: "SQS did not take this message but took later messages of its group in the \
                  same call, so it can no longer be enqueued ahead of them; sending it again \
                  enqueues it after them"
            .to_owned(),
        retryable: true,
    }
}

/// A message of an ordered lane not sent because message `first` failed.
fn held_back(index: usize, first: usize) -> Rejected {
    Rejected {
        index,
        code: code::HELD_BACK.to_owned(),
        message: format!(
            "not sent, to keep its message group in order: the group's message at index {first} \
             was not enqueued; send the group again from index {first} on"
        ),
        retryable: true,
    }
}

/// A message the request ran out of time to send.
fn not_sent(index: usize) -> Rejected {
    Rejected {
        index,
        code: code::NOT_SENT.to_owned(),
        message: "not sent: the request ran out of time before its turn; it is not in the \
                  queue, send it again"
            .to_owned(),
        retryable: true,
    }
}
