//! Splitting a request into SendMessageBatch calls and accounting for every
//! entry.

use std::time::Duration;

use aws_smithy_types::error::display::DisplayErrorContext;
use futures::stream::{self, StreamExt};
use pipeline_core::{
    message_record_id, Accepted, EnqueueResponse, Rejected, MAX_SQS_MESSAGE_BYTES,
};
use tokio::time::Instant;

use crate::store::{Entry, EntryFailure, Queue};
use crate::ErrorClass;

/// SendMessageBatch takes at most 10 entries...
pub const SQS_BATCH_LIMIT: usize = 10;
/// ...and at most 1 MiB of bodies per call.
pub const SQS_BATCH_BYTES: usize = MAX_SQS_MESSAGE_BYTES;

/// Groups message indices into calls of at most 10 entries and 1 MiB.
pub fn chunks<S: AsRef<str>>(bodies: &[S]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0usize;
    for (i, body) in bodies.iter().enumerate() {
        let body = body.as_ref();
        if !current.is_empty()
            && (current.len() == SQS_BATCH_LIMIT || bytes + body.len() > SQS_BATCH_BYTES)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += body.len();
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
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
}

/// Shortest budget worth starting a call with.
const MIN_CALL_BUDGET: Duration = Duration::from_millis(50);

/// Sends every message, chunks concurrently, retrying entries SQS failed
/// with a retryable error while the deadline allows, and accounts for each
/// one as accepted or failed.
pub async fn send_all<Q: Queue>(
    queue: &Q,
    messages: &[Outgoing],
    options: SendOptions<'_>,
) -> EnqueueResponse {
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    let results: Vec<(Vec<Accepted>, Vec<Rejected>)> = stream::iter(chunks(&bodies))
        .map(|chunk| send_chunk(queue, messages, chunk, options))
        .buffer_unordered(options.concurrency)
        .collect()
        .await;
    let mut response = EnqueueResponse::default();
    for (accepted, failed) in results {
        response.accepted.extend(accepted);
        response.failed.extend(failed);
    }
    response.accepted.sort_by_key(|a| a.index);
    response.failed.sort_by_key(|f| f.index);
    response
}

async fn send_chunk<Q: Queue>(
    queue: &Q,
    messages: &[Outgoing],
    mut pending: Vec<usize>,
    options: SendOptions<'_>,
) -> (Vec<Accepted>, Vec<Rejected>) {
    let mut accepted = Vec::with_capacity(pending.len());
    let mut failed = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let now = Instant::now();
        let left = options.deadline.saturating_duration_since(now);
        if left < MIN_CALL_BUDGET {
            // Only reachable before a first call: retries check the time first.
            failed.extend(pending.iter().map(|&i| whole_call(i, ErrorClass::TimedOut)));
            break;
        }
        let budget = options.call_timeout.min(left);
        let entries: Vec<Entry> = pending
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
        let results = match tokio::time::timeout(budget, queue.send_batch(&entries, budget)).await {
            Ok(Ok(results)) => results,
            Ok(Err(err)) => {
                // The SDK already retried what was retryable within the
                // budget: retrying here too would stack the two layers.
                tracing::warn!(
                    error = %DisplayErrorContext(&err),
                    code = %err.code,
                    class = ?err.class,
                    entries = pending.len(),
                    "SendMessageBatch failed"
                );
                failed.extend(pending.iter().map(|&i| whole_call(i, err.class)));
                break;
            }
            Err(_) => {
                tracing::warn!(
                    budget_ms = budget.as_millis() as u64,
                    entries = pending.len(),
                    "SendMessageBatch did not answer within its budget"
                );
                failed.extend(pending.iter().map(|&i| whole_call(i, ErrorClass::TimedOut)));
                break;
            }
        };
        let mut answered = vec![false; pending.len()];
        let mut retry: Vec<(usize, EntryFailure)> = Vec::new();
        for (entry_id, result) in results {
            // Only ids we sent count; anything else is ignored.
            let Some(pos) = pending.iter().position(|i| i.to_string() == entry_id) else {
                continue;
            };
            if std::mem::replace(&mut answered[pos], true) {
                continue;
            }
            let index = pending[pos];
            match result {
                Ok(message_id) => accepted.push(Accepted {
                    index,
                    id: message_record_id(&message_id, messages[index].key.as_deref()).to_string(),
                    message_id,
                }),
                Err(f) => {
                    tracing::warn!(index, code = %f.code, message = %f.message, sender_fault = f.sender_fault, "SQS failed an entry");
                    if f.sender_fault {
                        failed.push(entry_rejected(index, &f.code, false));
                    } else {
                        retry.push((index, f));
                    }
                }
            }
        }
        // An entry SQS neither accepted nor failed was not sent.
        for (pos, seen) in answered.iter().enumerate() {
            if !seen {
                retry.push((
                    pending[pos],
                    EntryFailure {
                        code: "MissingFromResponse".into(),
                        message: "SQS answered neither success nor failure for this entry".into(),
                        sender_fault: false,
                    },
                ));
            }
        }
        if retry.is_empty() {
            break;
        }
        let delay = pipeline_aws::backoff(
            attempt + 1,
            Duration::from_millis(20),
            Duration::from_millis(1_280),
        );
        let time_for_another = Instant::now() + delay + MIN_CALL_BUDGET <= options.deadline;
        if attempt >= options.max_attempts || !time_for_another {
            failed.extend(retry.iter().map(|(i, f)| entry_rejected(*i, &f.code, true)));
            break;
        }
        pending = retry.into_iter().map(|(i, _)| i).collect();
        tokio::time::sleep(delay).await;
    }
    (accepted, failed)
}

/// An entry of a call that failed as a whole.
fn whole_call(index: usize, class: ErrorClass) -> Rejected {
    Rejected {
        index,
        code: class.code().to_owned(),
        message: class.message().to_owned(),
        retryable: class != ErrorClass::Misconfigured,
    }
}

/// An entry SQS failed on its own; its message stays in the log.
fn entry_rejected(index: usize, code: &str, retryable: bool) -> Rejected {
    let message = if retryable {
        "SQS did not take this message; sending it again may succeed"
    } else {
        "SQS refused this message; sending it again as is will not help"
    };
    Rejected {
        index,
        code: code.to_owned(),
        message: message.to_owned(),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_ten_entries() {
        let bodies = vec!["{}".to_owned(); 25];
        let sizes: Vec<usize> = chunks(&bodies).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    #[test]
    fn chunks_hold_at_most_one_mebibyte() {
        let big = "x".repeat(400 * 1024);
        let bodies = vec![big.clone(), big.clone(), big.clone(), "{}".to_owned()];
        let got = chunks(&bodies);
        assert_eq!(got, vec![vec![0, 1], vec![2, 3]]);
    }
}
