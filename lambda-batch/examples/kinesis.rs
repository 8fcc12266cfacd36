//! A Kinesis consumer on Lambda: sensor readings, in order per sensor (the
//! partition key), sensors side by side. At the first bad reading the
//! engine starts no later record and reports that record's sequence number:
//! Lambda resumes there, so nothing after it is written twice.
//!
//! Build it for Lambda with `cargo lambda build --release --example kinesis`.

use lambda_batch::kinesis::KinesisEvent;
use lambda_batch::{Failure, Json, Options, Record};

#[derive(serde::Deserialize)]
struct Reading {
    celsius: f64,
}

async fn record(Json(reading): Json<Reading>, record: Record<KinesisEvent>) -> Result<(), Failure> {
    if !(-90.0..=60.0).contains(&reading.celsius) {
        return Err(Failure::new("out_of_range", format_args!("{} °C", reading.celsius)));
    }
    tracing::info!(
        sensor = record.partition_key(),
        sequence_number = record.sequence_number(),
        celsius = reading.celsius,
        "reading stored"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Sixteen sensors at a time; each sensor's readings one by one, in order.
    let options = Options::builder().concurrency(16).build()?;
    lambda_batch::run(record, options).await
}
