//! The S3 + DynamoDB batch handler the engine runs: per message, its object
//! to S3; per chunk of 25, the items to DynamoDB with BatchWriteItem.

use std::collections::hash_map::{Entry, HashMap};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_smithy_types::error::display::DisplayErrorContext;
use lambda_batch::sqs::SqsEvent;
use lambda_batch::{BatchHandler, Failure, Record};
use pipeline_core::{message_record_id, rfc3339_millis, s3_key, Body, StoredObject, StoredRecord};

use crate::config::Config;
use crate::store::{ObjectStore, RecordStore};

/// BatchWriteItem takes at most 25 requests.
pub const DYNAMODB_BATCH_LIMIT: usize = 25;

/// Shortest time worth starting another BatchWriteItem attempt with.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(50);

/// The consumer's reason codes, beside the engine's ([`lambda_batch::code`]).
pub mod code {
    /// PutObject failed; the item was not written.
    pub const S3_PUT_FAILED: &str = "s3_put_failed";
    /// BatchWriteItem failed for the chunk holding the item, with an error
    /// another attempt would not fix, or still failing (throttled, 5xx,
    /// timed out) when the attempts or the time ran out.
    pub const DYNAMODB_WRITE_FAILED: &str = "dynamodb_write_failed";
    /// The item was still unprocessed after every retry.
    pub const DYNAMODB_UNPROCESSED: &str = "dynamodb_unprocessed";
    /// The body holds the configured reject marker.
    pub const REJECTED: &str = "rejected";
}

/// The stores and settings, built once at start-up; the engine's handler.
#[derive(Debug)]
pub struct Pipeline<O, R> {
    /// Where objects go.
    pub objects: O,
    /// Where items go.
    pub records: R,
    /// Settings.
    pub config: Config,
}

impl<O: ObjectStore, R: RecordStore> BatchHandler<SqsEvent> for Pipeline<O, R> {
    /// The body is read from the record as it is: no copy, no parsing.
    type Payload = ();
    type Output = StoredRecord;

    fn batch_limit(&self) -> NonZeroUsize {
        NonZeroUsize::new(DYNAMODB_BATCH_LIMIT).unwrap_or(NonZeroUsize::MIN)
    }

    async fn prepare(&self, (): (), message: Record<SqsEvent>) -> Result<StoredRecord, Failure> {
        let body = message.body();
        if let Some(marker) = &self.config.reject_marker {
            if body.contains(marker.as_str()) {
                return Err(Failure::new(code::REJECTED, "body holds the reject marker"));
            }
        }
        let received_at = rfc3339_millis(message.first_received_ms().unwrap_or_else(epoch_ms_now));
        let key = message.message_attribute(pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE);
        let id = message_record_id(message.message_id(), key);
        let key = s3_key(&self.config.records_prefix, &id);
        let object = StoredObject {
            id,
            message_id: message.message_id(),
            received_at: &received_at,
            body: Body::from_raw(body),
            sequence_number: message.attribute("SequenceNumber"),
        };
        if let Err(err) = self.objects.put(&key, object.to_json()).await {
            return Err(Failure::new(code::S3_PUT_FAILED, DisplayErrorContext(&err)));
        }
        Ok(StoredRecord {
            id: id.to_string(),
            message_id: message.message_id().to_owned(),
            s3_key: key,
            received_at,
            body_bytes: body.len() as u64,
            stored_at: rfc3339_millis(epoch_ms_now()),
        })
    }

    /// Writes one chunk of at most 25 items with distinct ids. This is the
    /// one retry layer for BatchWriteItem (the client makes one attempt per
    /// call): unprocessed items, throttling, 5xx and timeouts are retried
    /// with full-jitter backoff while attempts and the deadline allow.
    async fn flush(
        &self,
        records: Vec<StoredRecord>,
        deadline: Instant,
    ) -> Vec<Result<(), Failure>> {
        let config = &self.config;
        let mut results = vec![Ok(()); records.len()];
        // Two messages with one idempotency key share a record id, and
        // BatchWriteItem rejects a call holding one key twice: write the
        // first, and give its copies its result.
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut first: HashMap<String, usize> = HashMap::with_capacity(records.len());
        let (mut indices, mut pending): (Vec<usize>, Vec<StoredRecord>) = records
            .into_iter()
            .enumerate()
            .filter(|(i, r)| match first.entry(r.id.clone()) {
                Entry::Occupied(seen) => {
                    copies.push((*i, *seen.get()));
                    false
                }
                Entry::Vacant(slot) => {
                    slot.insert(*i);
                    true
                }
            })
            .unzip();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            attempt += 1;
            let failure = match self.records.put_batch(&pending).await {
                Ok(unprocessed) => {
                    // Keep what is left; the rest is written. Moves, no copies.
                    (indices, pending) = indices
                        .into_iter()
                        .zip(pending)
                        .filter(|(_, r)| unprocessed.contains(&r.id))
                        .unzip();
                    if pending.is_empty() {
                        break;
                    }
                    Failure::new(
                        code::DYNAMODB_UNPROCESSED,
                        format_args!("still unprocessed after {attempt} BatchWriteItem calls"),
                    )
                }
                Err(err) => {
                    let failure =
                        Failure::new(code::DYNAMODB_WRITE_FAILED, DisplayErrorContext(&err));
                    if !err.retryable {
                        fail(&mut results, &indices, &failure);
                        break;
                    }
                    failure
                }
            };
            let delay = pipeline_aws::backoff(attempt, config.backoff_base, config.backoff_cap);
            let time_left = Instant::now() + delay + MIN_ATTEMPT_BUDGET < deadline;
            if attempt < config.dynamodb_max_attempts && time_left {
                tracing::debug!(
                    items = pending.len(),
                    attempt,
                    ?delay,
                    "retrying BatchWriteItem"
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            fail(&mut results, &indices, &failure);
            break;
        }
        for (copy, of) in copies {
            results[copy] = results[of].clone();
        }
        results
    }
}

fn fail(results: &mut [Result<(), Failure>], indices: &[usize], failure: &Failure) {
    for &i in indices {
        results[i] = Err(failure.clone());
    }
}

pub(crate) fn epoch_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
