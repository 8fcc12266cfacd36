//! A DynamoDB Streams consumer on Lambda: every change to an `accounts`
//! table, typed. Changes to one item run in order, other items side by
//! side; at the first failure Lambda resumes from that record.
//!
//! The stream's view type must carry the images you read (here
//! NEW_AND_OLD_IMAGES). Build it with
//! `cargo lambda build --release --example dynamodb`.

use lambda_batch::dynamodb::{self, Change, ChangeKind, DynamoDbEvent};
use lambda_batch::{Failure, Record};

#[derive(serde::Deserialize, Debug)]
struct Account {
    id: String,
    balance: i64,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    dynamodb::run(|change: Change<Account>, record: Record<DynamoDbEvent>| async move {
        match (change.kind, change.old, change.new) {
            (ChangeKind::Insert, _, Some(new)) => tracing::info!(id = new.id, "opened"),
            (ChangeKind::Modify, Some(old), Some(new)) => {
                if new.balance < 0 {
                    return Err(Failure::new("overdrawn", format_args!("{}", new.id)));
                }
                tracing::info!(id = new.id, delta = new.balance - old.balance, "moved");
            }
            (ChangeKind::Remove, Some(old), _) => tracing::info!(id = old.id, "closed"),
            (kind, ..) => {
                return Err(Failure::new(
                    "missing_image",
                    format_args!("{kind:?} {} without the images it needs", record.sequence_number()),
                ))
            }
        }
        Ok(())
    })
    .await
}
