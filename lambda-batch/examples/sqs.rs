//! An SQS consumer on Lambda: one async function per message. A message
//! whose body is not an `Order` fails on its own (`invalid_payload`); a free
//! order fails with a code of its own; only the failed messages come back.
//!
//! Build it for Lambda with `cargo lambda build --release --example sqs`,
//! or run it under `cargo lambda watch`.

use lambda_batch::{sqs, Failure, Json};

#[derive(serde::Deserialize)]
struct Order {
    id: String,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    sqs::run(|Json(order): Json<Order>, _message| async move {
        if order.cents == 0 {
            return Err(Failure::new("free_order", format_args!("order {}", order.id)));
        }
        tracing::info!(order = %order.id, cents = order.cents, "order accepted");
        Ok(())
    })
    .await
}
