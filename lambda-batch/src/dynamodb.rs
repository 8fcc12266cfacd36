//! Amazon DynamoDB Streams.
//!
//! - The item identifier is the record's `dynamodb.SequenceNumber`. As with
//!   Kinesis, Lambda takes the lowest one reported as the checkpoint and
//!   delivers every record from it on again: once a record fails, no later
//!   record starts, and only the first record that did not succeed is
//!   reported.
//! - Records of the same item (equal `Keys`) run in order; other items run
//!   concurrently ([`StreamOrder::PerKey`]).
//! - Images come in DynamoDB's attribute-value JSON; [`NewImage<T>`],
//!   [`OldImage<T>`], [`Keys<T>`] and [`Change<T>`] deserialize them into
//!   your types with `serde_dynamo`. Which images a record has depends on
//!   the stream's view type (`KEYS_ONLY`, `NEW_IMAGE`, `OLD_IMAGE`,
//!   `NEW_AND_OLD_IMAGES`) and on the event (`INSERT` has no old image,
//!   `REMOVE` no new one).

use std::hash::{Hash, Hasher};

pub use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord, StreamRecord};
pub use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
pub use serde_dynamo::{AttributeValue, Item};

use crate::decode::{invalid, Decode};
use crate::failure::Failure;
use crate::options::{Options, StreamOrder};
use crate::source::{Ordering, Record, Source};

impl Source for DynamoDbEvent {
    type Record = EventRecord;
    type Response = DynamoDbEventResponse;

    fn records(&self) -> &[EventRecord] {
        &self.records
    }

    fn item_identifier(record: &EventRecord) -> Option<&str> {
        record.change.sequence_number.as_deref()
    }

    fn ordering(&self, _: &Options) -> Ordering {
        Ordering::Checkpoint
    }

    fn lane(record: &EventRecord, options: &Options) -> Option<u64> {
        Some(match options.stream_order() {
            StreamOrder::PerKey => key_lane(&record.change.keys),
            StreamOrder::InOrder => 0,
        })
    }

    fn response<'a>(failed: impl Iterator<Item = &'a str>) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failed
            .map(|id| {
                let mut item = DynamoDbBatchItemFailure::default();
                item.item_identifier = Some(id.to_owned());
                item
            })
            .collect();
        response
    }
}

/// The lane of an item key: its attributes hashed in name order. Key
/// attributes are strings, numbers or binary.
fn key_lane(keys: &Item) -> u64 {
    let mut attributes: Vec<_> = keys.iter().collect();
    attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (name, value) in attributes {
        name.hash(&mut hasher);
        match value {
            AttributeValue::S(s) => (0u8, s).hash(&mut hasher),
            AttributeValue::N(n) => (1u8, n).hash(&mut hasher),
            AttributeValue::B(b) => (2u8, b).hash(&mut hasher),
            other => (3u8, format!("{other:?}")).hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new item was added (`INSERT`).
    Insert,
    /// An item was updated (`MODIFY`).
    Modify,
    /// An item was deleted (`REMOVE`).
    Remove,
}

impl ChangeKind {
    fn of(record: &EventRecord) -> Result<Self, Failure> {
        match record.event_name.as_str() {
            "INSERT" => Ok(ChangeKind::Insert),
            "MODIFY" => Ok(ChangeKind::Modify),
            "REMOVE" => Ok(ChangeKind::Remove),
            other => Err(invalid(format_args!("unknown eventName {other:?}"))),
        }
    }
}

fn image<T: serde::de::DeserializeOwned>(item: &Item) -> Result<Option<T>, Failure> {
    if item.is_empty() {
        return Ok(None);
    }
    serde_dynamo::from_item(item.clone())
        .map(Some)
        .map_err(invalid)
}

/// The item after the change, as `T`. A record without a new image
/// (`REMOVE`, or a `KEYS_ONLY` / `OLD_IMAGE` stream) fails with
/// [`code::INVALID_PAYLOAD`](crate::code::INVALID_PAYLOAD): take
/// [`Change<T>`] to handle every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage<T>(pub T);

impl<T: serde::de::DeserializeOwned> Decode<EventRecord> for NewImage<T> {
    fn decode(record: &EventRecord) -> Result<Self, Failure> {
        image(&record.change.new_image)?
            .map(NewImage)
            .ok_or_else(|| invalid("the record has no new image"))
    }
}

/// The item before the change, as `T`; a record without one fails (see
/// [`NewImage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldImage<T>(pub T);

impl<T: serde::de::DeserializeOwned> Decode<EventRecord> for OldImage<T> {
    fn decode(record: &EventRecord) -> Result<Self, Failure> {
        image(&record.change.old_image)?
            .map(OldImage)
            .ok_or_else(|| invalid("the record has no old image"))
    }
}

/// The item's key attributes, as `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys<T>(pub T);

impl<T: serde::de::DeserializeOwned> Decode<EventRecord> for Keys<T> {
    fn decode(record: &EventRecord) -> Result<Self, Failure> {
        image(&record.change.keys)?
            .map(Keys)
            .ok_or_else(|| invalid("the record has no keys"))
    }
}

/// The whole change: its kind, and the images the stream's view type
/// carries, each as `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change<T> {
    /// Insert, modify or remove.
    pub kind: ChangeKind,
    /// The item before the change, if the stream carries old images.
    pub old: Option<T>,
    /// The item after the change, if the stream carries new images.
    pub new: Option<T>,
}

impl<T: serde::de::DeserializeOwned> Decode<EventRecord> for Change<T> {
    fn decode(record: &EventRecord) -> Result<Self, Failure> {
        Ok(Change {
            kind: ChangeKind::of(record)?,
            old: image(&record.change.old_image)?,
            new: image(&record.change.new_image)?,
        })
    }
}

impl Record<DynamoDbEvent> {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub fn event_name(&self) -> &str {
        &self.get().event_name
    }

    /// The item's key attributes.
    pub fn keys(&self) -> &Item {
        &self.get().change.keys
    }

    /// The sequence number (the item identifier).
    pub fn sequence_number(&self) -> &str {
        self.id()
    }
}

/// Runs a DynamoDB Streams consumer on Lambda with default [`Options`]: one
/// call of `handler` per record (see [`crate::run`] for options).
#[cfg(feature = "runtime")]
pub async fn run<P, H>(handler: H) -> Result<(), lambda_runtime::Error>
where
    P: Decode<EventRecord> + Send,
    H: crate::Handler<DynamoDbEvent, P>,
{
    crate::run(handler, Options::default()).await
}
