//! Amazon SQS: standard queues (fair queues included) and FIFO queues.
//!
//! - The item identifier is the `messageId`; every failed message is
//!   reported, and only those are delivered again.
//! - FIFO is decided by the queue (an `eventSourceARN` ending in `.fifo`),
//!   never by `MessageGroupId`, which standard queues accept for fair
//!   queueing since 2025 and which says nothing about order there.
//! - On a FIFO queue, [`FifoMode`] says what a failure
//!   stops: the rest of its group (default) or the rest of the batch.

use std::collections::HashMap;

pub use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute,
};

use crate::decode::{invalid, Decode, Json};
use crate::failure::{code, Failure};
use crate::options::{FifoMode, Options};
use crate::source::{lane_of, Ordering, Record, Source};

/// Whether these records come from a FIFO queue: its ARN ends in `.fifo`.
pub fn is_fifo(records: &[SqsMessage]) -> bool {
    records.iter().any(|r| {
        r.event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
    })
}

impl Source for SqsEvent {
    type Record = SqsMessage;
    type Response = SqsBatchResponse;

    fn records(&self) -> &[SqsMessage] {
        &self.records
    }

    fn item_identifier(record: &SqsMessage) -> Option<&str> {
        record.message_id.as_deref()
    }

    fn ordering(&self, options: &Options) -> Ordering {
        if !is_fifo(&self.records) {
            return Ordering::Independent;
        }
        let skipped = match options.fifo() {
            FifoMode::StopGroup => code::EARLIER_IN_GROUP_FAILED,
            FifoMode::StopBatch => code::EARLIER_IN_BATCH_FAILED,
        };
        Ordering::Lanes { skipped }
    }

    fn lane(record: &SqsMessage, options: &Options) -> Option<u64> {
        match options.fifo() {
            FifoMode::StopBatch => Some(0),
            FifoMode::StopGroup => Some(lane_of(
                record
                    .attributes
                    .get("MessageGroupId")
                    .map_or("", String::as_str),
            )),
        }
    }

    fn response<'a>(failed: impl Iterator<Item = &'a str>) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failed
            .map(|id| {
                let mut item = BatchItemFailure::default();
                item.item_identifier = id.to_owned();
                item
            })
            .collect();
        response
    }
}

fn body(record: &SqsMessage) -> &str {
    record.body.as_deref().unwrap_or_default()
}

/// The body as JSON.
impl<T: serde::de::DeserializeOwned> Decode<SqsMessage> for Json<T> {
    fn decode(record: &SqsMessage) -> Result<Self, Failure> {
        Json::from_slice(body(record).as_bytes())
    }
}

/// The body as text.
impl Decode<SqsMessage> for String {
    fn decode(record: &SqsMessage) -> Result<Self, Failure> {
        record
            .body
            .clone()
            .ok_or_else(|| invalid("the message has no body"))
    }
}

/// The body's bytes.
impl Decode<SqsMessage> for Vec<u8> {
    fn decode(record: &SqsMessage) -> Result<Self, Failure> {
        String::decode(record).map(String::into_bytes)
    }
}

impl Record<SqsEvent> {
    /// The message id.
    pub fn message_id(&self) -> &str {
        self.id()
    }

    /// The body (empty when the record has none).
    pub fn body(&self) -> &str {
        body(self.get())
    }

    /// A system attribute such as `ApproximateReceiveCount`, `SentTimestamp`
    /// or (FIFO) `SequenceNumber`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.get().attributes.get(name).map(String::as_str)
    }

    /// A message attribute's string value.
    pub fn message_attribute(&self, name: &str) -> Option<&str> {
        self.get()
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    }

    /// Every message attribute.
    pub fn message_attributes(&self) -> &HashMap<String, SqsMessageAttribute> {
        &self.get().message_attributes
    }

    /// `MessageGroupId`: on a FIFO queue the ordering group, on a standard
    /// queue the fair-queue tenant (which says nothing about order).
    pub fn group_id(&self) -> Option<&str> {
        self.attribute("MessageGroupId")
    }

    /// How many times SQS has handed this message out, this time included.
    pub fn receive_count(&self) -> Option<u32> {
        self.attribute("ApproximateReceiveCount")?.parse().ok()
    }

    /// Milliseconds since the Unix epoch when SQS first handed the message
    /// out, or else when it was sent.
    pub fn first_received_ms(&self) -> Option<u64> {
        ["ApproximateFirstReceiveTimestamp", "SentTimestamp"]
            .iter()
            .find_map(|k| self.attribute(k)?.parse().ok())
    }
}

/// Runs an SQS consumer on Lambda with default [`Options`]: one call of
/// `handler` per message (see [`crate::run`] for options).
#[cfg(feature = "runtime")]
pub async fn run<P, H>(handler: H) -> Result<(), lambda_runtime::Error>
where
    P: Decode<SqsMessage> + Send,
    H: crate::Handler<SqsEvent, P>,
{
    crate::run(handler, Options::default()).await
}
