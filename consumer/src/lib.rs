//! SQS batch -> S3 object + DynamoDB item per message, with partial batch
//! failures: the [`Pipeline`] batch handler plugged into the `lambda-batch`
//! engine.
//!
//! `main.rs` only wires clients to [`handle_invocation`].

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
mod error;
mod invoke;
pub mod metrics;
pub mod processor;
pub mod store;

pub use config::Config;
pub use error::StoreError;
pub use invoke::handle_invocation;
pub use processor::{code, Pipeline, DYNAMODB_BATCH_LIMIT};
pub use store::{ObjectStore, RecordStore};

#[cfg(feature = "aws")]
pub use aws::{pipeline_from, S3Objects};
