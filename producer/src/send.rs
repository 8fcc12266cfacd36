//! Splitting a request into SendMessageBatch calls and accounting for every
//! entry.

use std::time::Duration;

use aws_smithy_types::error::display::DisplayErrorContext;
use futures::stream::{self, StreamExt};
use pipeline_core::{record_id, Accepted, EnqueueResponse, Rejected, MAX_SQS_MESSAGE_BYTES};

use crate::store::{Entry, EntryFailure, Queue};

/// SendMessageBatch takes at most 10 entries...
pub const SQS_BATCH_LIMIT: usize = 10;
/// ...and at most 1 MiB of bodies per call.
pub const SQS_BATCH_BYTES: usize = MAX_SQS_MESSAGE_BYTES;

/// Groups message indices into calls of at most 10 entries and 1 MiB.
pub fn chunks(bodies: &[String]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0usize;
    for (i, body) in bodies.iter().enumerate() {
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

/// Sends every body, chunks concurrently, retrying entries SQS failed with a
/// retryable error, and accounts for each one as accepted or failed. Each
/// message carries `trace_header` (the request's X-Ray trace), if any.
pub async fn send_all<Q: Queue>(
    queue: &Q,
    bodies: &[String],
    concurrency: usize,
    max_attempts: u32,
    trace_header: Option<&str>,
) -> EnqueueResponse {
    let results: Vec<(Vec<Accepted>, Vec<Rejected>)> = stream::iter(chunks(bodies))
        .map(|chunk| send_chunk(queue, bodies, chunk, max_attempts, trace_header))
        .buffer_unordered(concurrency)
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
    bodies: &[String],
    mut pending: Vec<usize>,
    max_attempts: u32,
    trace_header: Option<&str>,
) -> (Vec<Accepted>, Vec<Rejected>) {
    let mut accepted = Vec::with_capacity(pending.len());
    let mut failed = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let entries: Vec<Entry> = pending
            .iter()
            .map(|&i| Entry {
                id: i.to_string(),
                body: bodies[i].clone(),
                trace_header: trace_header.map(str::to_owned),
            })
            .collect();
        let mut retry = Vec::new();
        let mut last_failure: Vec<(usize, EntryFailure)> = Vec::new();
        match queue.send_batch(&entries).await {
            Ok(results) => {
                let mut answered = vec![false; pending.len()];
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
                            id: record_id(&message_id).to_string(),
                            message_id,
                        }),
                        Err(f) if !f.sender_fault => last_failure.push((index, f)),
                        Err(f) => failed.push(rejected(index, f, false)),
                    }
                }
                // An entry SQS neither accepted nor failed was not sent.
                for (pos, seen) in answered.iter().enumerate() {
                    if !seen {
                        last_failure.push((
                            pending[pos],
                            EntryFailure {
                                code: "MissingFromResponse".into(),
                                message: "SQS answered neither success nor failure for this entry"
                                    .into(),
                                sender_fault: false,
                            },
                        ));
                    }
                }
            }
            Err(err) => {
                let message = DisplayErrorContext(&err).to_string();
                tracing::warn!(error = %message, entries = pending.len(), "SendMessageBatch failed");
                for &index in &pending {
                    let failure = EntryFailure {
                        code: "SendMessageBatchFailed".into(),
                        message: message.clone(),
                        sender_fault: false,
                    };
                    last_failure.push((index, failure));
                }
            }
        }
        if attempt >= max_attempts {
            failed.extend(last_failure.into_iter().map(|(i, f)| rejected(i, f, true)));
            break;
        }
        retry.extend(last_failure.into_iter().map(|(i, _)| i));
        pending = retry;
        if !pending.is_empty() {
            let delay = pipeline_aws::backoff(
                attempt + 1,
                Duration::from_millis(20),
                Duration::from_millis(1_280),
            );
            tokio::time::sleep(delay).await;
        }
    }
    (accepted, failed)
}

fn rejected(index: usize, f: EntryFailure, retryable: bool) -> Rejected {
    Rejected {
        index,
        code: f.code,
        message: f.message,
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
