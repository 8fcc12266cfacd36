//! The emulator's own ceiling for the consumer's calls: one PutObject per
//! message and one BatchWriteItem per 25, issued straight at the stack's
//! bucket and table with the consumer's concurrency, no Lambda and no queue
//! in between. `k6/load.sh` prints it beside the pipeline's throughput, so
//! what the pipeline adds is visible.
//!
//! ```text
//! cargo run -p tools --bin ceiling -- [--outputs .local/outputs.env] [--seconds 10] [--concurrency 64]
//! ```
//! Prints `ceiling_messages_per_second=<n>` last. The objects and items it
//! writes go under `ceiling/` and use ids that no message can have.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};

/// The emulator's own ceiling for the consumer's calls.
#[derive(Debug, clap::Parser)]
#[command(name = "ceiling")]
struct Args {
    /// The stack's outputs file (default: .local/outputs.env).
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// How long to drive the calls.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Messages in flight, as the consumer's MAX_CONCURRENCY.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let outputs = args
        .outputs
        .unwrap_or_else(|| tools::repo_root().join(".local/outputs.env"));
    let (seconds, concurrency) = (args.seconds, usize::from(args.concurrency));
    let stack = tools::Stack::from_outputs_file(&outputs).await?;
    let bucket = stack.output("BUCKET_NAME")?.to_owned();
    let table = stack.output("TABLE_NAME")?.to_owned();
    let run = tools::unique("ceiling");
    let now = pipeline_core::rfc3339_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
    );
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut messages = 0u64;
    let mut batch = 0u64;
    // Rounds of `concurrency` messages: every put in flight at once, then
    // their items in chunks of 25, the chunks at once.
    while Instant::now() < until {
        let ids: Vec<String> = (0..concurrency)
            .map(|i| format!("{run}-{batch}-{i}"))
            .collect();
        batch += 1;
        let puts = stream::iter(ids.iter().map(|id| {
            stack
                .s3
                .put_object()
                .bucket(&bucket)
                .key(format!("ceiling/{id}.json"))
                .content_type("application/json")
                .body(
                    format!(r#"{{"id":"{id}","body":{{"n":1}}}}"#)
                        .into_bytes()
                        .into(),
                )
                .send()
        }))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
        for put in puts {
            put.context("PutObject")?;
        }
        let calls = ids.chunks(25).map(|chunk| {
            let writes = chunk
                .iter()
                .map(|id| {
                    // A record item, so readers of the table need no special case.
                    let record = pipeline_core::StoredRecord {
                        id: id.clone(),
                        message_id: format!("ceiling-{id}"),
                        s3_key: format!("ceiling/{id}.json"),
                        received_at: now.clone(),
                        body_bytes: 7,
                        stored_at: now.clone(),
                    };
                    let item = PutRequest::builder()
                        .set_item(Some(pipeline_aws::to_item(&record)))
                        .build()?;
                    Ok(WriteRequest::builder().put_request(item).build())
                })
                .collect::<Result<Vec<_>>>();
            let request = stack.dynamodb.batch_write_item();
            let table = &table;
            async move {
                request
                    .request_items(table, writes?)
                    .send()
                    .await
                    .context("BatchWriteItem")
            }
        });
        for call in futures::future::join_all(calls).await {
            call?;
        }
        messages += ids.len() as u64;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    println!(
        "ceiling: {messages} messages (PutObject + 1/25 BatchWriteItem) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("ceiling_messages_per_second={rate:.1}");
    Ok(())
}
