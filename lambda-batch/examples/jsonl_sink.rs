//! A processor for a destination other than AWS: sensor readings, checked
//! one by one, appended to a JSON-lines file up to `CHUNK` lines per write.
//!
//! `cargo run -p lambda-batch --example jsonl_sink [-- OUT.jsonl]`
//!
//! The event is `examples/fixtures/readings.json`: five good readings, one
//! out of range, one without a sensor, one body that is not JSON, and one
//! good message delivered twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::num::NonZeroUsize;

use lambda_batch::sqs::SqsEvent;
use lambda_batch::{BatchHandler, Failure, Json, Options, Record};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// Lines per write.
const CHUNK: NonZeroUsize = match NonZeroUsize::new(3) {
    Some(n) => n,
    None => panic!("zero"),
};
/// Bytes per write; the lines that do not fit fail and SQS redelivers them.
const WRITE_BUDGET: usize = 64 * 1024;

/// The body of one message.
#[derive(Deserialize)]
struct Reading {
    sensor: String,
    celsius: f64,
    at_ms: u64,
}

/// Appends validated readings to one JSON-lines file.
struct JsonLines {
    path: PathBuf,
    writes: AtomicUsize,
}

impl BatchHandler<SqsEvent> for JsonLines {
    type Payload = Json<Reading>;
    /// The line to append, newline included.
    type Output = String;

    fn batch_limit(&self) -> NonZeroUsize {
        CHUNK
    }

    async fn prepare(&self, Json(r): Json<Reading>, m: Record<SqsEvent>) -> Result<String, Failure> {
        if r.sensor.is_empty() {
            return Err(Failure::new("no_sensor", "the reading names no sensor"));
        }
        if !(-90.0..=60.0).contains(&r.celsius) {
            return Err(Failure::new(
                "out_of_range",
                format_args!("{} °C", r.celsius),
            ));
        }
        // The message id makes a redelivered line easy to spot downstream.
        let line = json!({ "message_id": m.message_id(), "sensor": r.sensor, "celsius": r.celsius, "at_ms": r.at_ms });
        Ok(format!("{line}\n"))
    }

    async fn flush(&self, lines: Vec<String>, _deadline: Instant) -> Vec<Result<(), Failure>> {
        // One result per line, in order: the lines that fit the budget share
        // one write and its outcome; the rest fail on their own.
        let mut bytes = 0;
        let fits = lines
            .iter()
            .take_while(|l| {
                bytes += l.len();
                bytes <= WRITE_BUDGET
            })
            .count();
        self.writes.fetch_add(1, Ordering::Relaxed);
        let written = append(&self.path, lines[..fits].concat().as_bytes()).await;
        (0..lines.len())
            .map(|i| match &written {
                _ if i >= fits => Err(Failure::new("write_budget", "left for the next delivery")),
                Ok(()) => Ok(()),
                Err(e) => Err(Failure::new("write_failed", e)),
            })
            .collect()
    }
}

/// One `write_all` of the whole chunk, then a flush to the OS.
async fn append(path: &Path, buf: &[u8]) -> Result<(), String> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| e.to_string())?;
    file.write_all(buf).await.map_err(|e| e.to_string())?;
    file.flush().await.map_err(|e| e.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("lambda-batch-readings.jsonl"),
        PathBuf::from,
    );
    let event: SqsEvent = serde_json::from_str(include_str!("fixtures/readings.json"))?;
    let sink = JsonLines {
        path,
        writes: AtomicUsize::new(0),
    };
    // One write in flight: concurrent appends to one file could interleave.
    let options = Options::builder().flush_concurrency(1).build()?;
    // In a Lambda: lambda_batch::deadline(&event.context).
    let deadline = Instant::now() + Duration::from_secs(10);

    let report = lambda_batch::process_batched(event, deadline, &sink, &options).await?;
    println!(
        "received {}, succeeded {}, duplicates {}, failed {}",
        report.received(),
        report.succeeded(),
        report.duplicates(),
        report.failures().len()
    );
    for failed in report.failures() {
        println!("  {}: {}", failed.id, failed.failure);
    }
    println!("by code: {:?}", report.failures_by_code());
    let writes = sink.writes.load(Ordering::Relaxed);
    println!("{writes} writes to {}", sink.path.display());
    println!("{}", serde_json::to_string_pretty(&report.response())?);
    Ok(())
}
