//! SQS batch -> S3 object + DynamoDB item per message, with partial batch
//! failures.
//!
//! [`handle`] is the whole logic; `main.rs` only wires clients to it.

pub mod config;
mod error;
pub mod handler;
pub mod metrics;
pub mod store;

pub use config::Config;
pub use error::{BoxError, Error};
pub use handler::{handle, handle_invocation, Failure, Report, State};
pub use store::{DynamoRecords, ObjectStore, RecordStore, S3Objects};

/// Builds the state with SDK clients derived from one shared `SdkConfig`.
pub fn state_from(sdk: &aws_config::SdkConfig, config: Config) -> State<S3Objects, DynamoRecords> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(config.s3_force_path_style)
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    State {
        objects: S3Objects::new(s3, config.bucket.clone()),
        records: DynamoRecords::new(dynamodb, config.table.clone()),
        config,
    }
}
