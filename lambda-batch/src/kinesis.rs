//! Amazon Kinesis Data Streams.
//!
//! - The item identifier is the record's `kinesis.sequenceNumber`. Lambda
//!   takes the lowest one reported as the checkpoint and delivers every
//!   record from it on again, so once a record fails the engine starts no
//!   later record, and reports only the first record that did not succeed.
//! - Records with the same partition key run in order; different keys run
//!   concurrently ([`StreamOrder::PerKey`]), as
//!   with `ParallelizationFactor`.
//! - `data` arrives base64-encoded; the event type decodes it to bytes.
//!   [`Json<T>`](crate::Json), `String` and `Vec<u8>` take it from there.
//!   KPL-aggregated or compressed data is yours to unpack (take `Vec<u8>`).

pub use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord, KinesisRecord};
pub use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};

use crate::decode::{invalid, Decode, Json};
use crate::failure::Failure;
use crate::options::{Options, StreamOrder};
use crate::source::{lane_of, Ordering, Record, Source};

impl Source for KinesisEvent {
    type Record = KinesisEventRecord;
    type Response = KinesisEventResponse;

    fn records(&self) -> &[KinesisEventRecord] {
        &self.records
    }

    fn item_identifier(record: &KinesisEventRecord) -> Option<&str> {
        Some(record.kinesis.sequence_number.as_str())
    }

    fn ordering(&self, _: &Options) -> Ordering {
        Ordering::Checkpoint
    }

    fn lane(record: &KinesisEventRecord, options: &Options) -> Option<u64> {
        Some(match options.stream_order() {
            StreamOrder::PerKey => lane_of(&record.kinesis.partition_key),
            StreamOrder::InOrder => 0,
        })
    }

    fn response<'a>(failed: impl Iterator<Item = &'a str>) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        response.set_failures(failed);
        response
    }
}

/// The data as JSON.
impl<T: serde::de::DeserializeOwned> Decode<KinesisEventRecord> for Json<T> {
    fn decode(record: &KinesisEventRecord) -> Result<Self, Failure> {
        Json::from_slice(&record.kinesis.data.0)
    }
}

/// The data as UTF-8 text.
impl Decode<KinesisEventRecord> for String {
    fn decode(record: &KinesisEventRecord) -> Result<Self, Failure> {
        String::from_utf8(record.kinesis.data.0.clone()).map_err(invalid)
    }
}

/// The data's bytes.
impl Decode<KinesisEventRecord> for Vec<u8> {
    fn decode(record: &KinesisEventRecord) -> Result<Self, Failure> {
        Ok(record.kinesis.data.0.clone())
    }
}

impl Record<KinesisEvent> {
    /// The record's data, decoded from base64.
    pub fn data(&self) -> &[u8] {
        &self.get().kinesis.data.0
    }

    /// The partition key.
    pub fn partition_key(&self) -> &str {
        &self.get().kinesis.partition_key
    }

    /// The sequence number (the item identifier).
    pub fn sequence_number(&self) -> &str {
        self.id()
    }
}

/// Runs a Kinesis consumer on Lambda with default [`Options`]: one call of
/// `handler` per record (see [`crate::run`] for options).
#[cfg(feature = "runtime")]
pub async fn run<P, H>(handler: H) -> Result<(), lambda_runtime::Error>
where
    P: Decode<KinesisEventRecord> + Send,
    H: crate::Handler<KinesisEvent, P>,
{
    crate::run(handler, Options::default()).await
}
