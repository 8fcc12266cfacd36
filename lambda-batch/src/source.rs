//! Where records come from: the [`Source`] trait each event type implements,
//! and the [`Record`] handle a handler receives. The engine sees only what
//! this trait tells it: identifiers, lanes, the failure rule and the
//! response shape.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use crate::Options;

/// How records of a batch depend on each other, and so what one failure
/// means for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ordering {
    /// Every record stands alone; a failure concerns that record only, and
    /// every failed record is reported (SQS standard queues).
    Independent,
    /// Records of one lane run one at a time, in batch order; after a
    /// failure the rest of the lane is not started and is reported with
    /// the code `skipped` (SQS FIFO).
    Lanes {
        /// The reason code of the records a failure skipped.
        skipped: &'static str,
    },
    /// Lambda resumes at the lowest reported record and delivers every
    /// record after it again (Kinesis, DynamoDB Streams). Records of one
    /// lane run in order; once a record fails, no later record of the batch
    /// starts, and only the first record that did not succeed is reported.
    Checkpoint,
}

/// An event type that Lambda delivers in batches with partial batch
/// responses. Implemented for [`SqsEvent`](crate::sqs::SqsEvent),
/// [`KinesisEvent`](crate::kinesis::KinesisEvent) and
/// [`DynamoDbEvent`](crate::dynamodb::DynamoDbEvent); a new source is one
/// more implementation, with no change to the engine.
pub trait Source: Send + Sync + Sized + 'static {
    /// One record of the event.
    type Record: Send + Sync + 'static;
    /// The partial batch response Lambda reads.
    type Response: Send + 'static;

    /// The records, in the order Lambda delivered them.
    fn records(&self) -> &[Self::Record];

    /// The identifier Lambda knows the record by in a partial batch
    /// response. `None` or empty makes the event invalid
    /// ([`Error::MissingItemIdentifier`](crate::Error::MissingItemIdentifier)).
    fn item_identifier(record: &Self::Record) -> Option<&str>;

    /// How the records of this event depend on each other.
    fn ordering(&self, options: &Options) -> Ordering;

    /// The lane of a record: records with the same lane run one at a time,
    /// in batch order; `None` is a lane of its own. Only read when
    /// [`ordering`](Source::ordering) is not [`Ordering::Independent`].
    fn lane(record: &Self::Record, options: &Options) -> Option<u64>;

    /// The response that reports these item identifiers as failed (none: the
    /// whole batch succeeded).
    fn response<'a>(failed: impl Iterator<Item = &'a str>) -> Self::Response;
}

/// A lane number for a key: equal keys share a lane. Two keys that collide
/// share one too, which costs concurrency, never order.
pub fn lane_of(key: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// One record of the batch as a handler receives it: a cheap, owned handle
/// on the event ([`Deref`]s to the source's record type), with the record's
/// position and the time the engine stops waiting for it.
pub struct Record<S: Source> {
    event: Arc<S>,
    index: usize,
    deadline: Instant,
}

impl<S: Source> Record<S> {
    pub(crate) fn new(event: Arc<S>, index: usize, deadline: Instant) -> Self {
        Self {
            event,
            index,
            deadline,
        }
    }

    /// The record as the event holds it.
    pub fn get(&self) -> &S::Record {
        &self.event.records()[self.index]
    }

    /// The identifier Lambda knows this record by (never empty: the engine
    /// checks it before anything starts).
    pub fn id(&self) -> &str {
        S::item_identifier(self.get()).unwrap_or_default()
    }

    /// The record's position in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// When the engine stops waiting for this record (the hard deadline):
    /// calls made for it should give up by then. A call already sent may
    /// still take effect.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The whole event.
    pub fn event(&self) -> &S {
        &self.event
    }
}

impl<S: Source> Deref for Record<S> {
    type Target = S::Record;

    fn deref(&self) -> &S::Record {
        self.get()
    }
}

impl<S: Source> Clone for Record<S> {
    fn clone(&self) -> Self {
        Self {
            event: Arc::clone(&self.event),
            index: self.index,
            deadline: self.deadline,
        }
    }
}

impl<S: Source> fmt::Debug for Record<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
