//! SQS batch -> S3 object + DynamoDB item per message, with partial batch
//! failures.
//!
//! [`handle`] is the whole logic; `main.rs` only wires clients to it.

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
mod error;
pub mod handler;
pub mod metrics;
pub mod store;

pub use config::Config;
pub use error::{BoxError, Error};
pub use handler::{handle, handle_invocation, Failure, Report, State};
pub use store::{ObjectStore, RecordStore};

#[cfg(feature = "aws")]
pub use aws::{state_from, DynamoRecords, S3Objects};
