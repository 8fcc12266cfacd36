//! The emulator's own ceiling for the pipeline's calls per message: its
//! share of a SendMessageBatch (the producer's, 10 a call), one PutObject
//! and its share of a BatchWriteItem (the consumer's, 25 a call), issued
//! straight at the emulator with the consumer's concurrency: no Lambda, no
//! Function URL, no event source mapping in between. `k6/load.sh` runs it
//! in the same session as the ramp and reports the highest rate the
//! pipeline held as a share of it.
//!
//! ```text
//! cargo run -p tools --bin ceiling -- [--outputs .local/outputs.env] [--seconds 10] [--concurrency 64]
//! ```
//! Prints `ceiling_messages_per_second=<n>` last. The messages go to a
//! scratch queue it creates and deletes (the stack's consumer never sees
//! them); the objects and items go to the stack's bucket and table, under
//! `ceiling/` and with ids no message can have, so the calls meet the same
//! bucket and table the pipeline writes. Their `storedAt` is the moment the
//! run began, so a report that counts items stored after it started never
//! counts them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};

/// SendMessageBatch takes at most 10 entries, BatchWriteItem 25 requests.
const SQS_BATCH: usize = 10;
const DDB_BATCH: usize = 25;

/// The emulator's own ceiling for the pipeline's calls.
#[derive(Debug, clap::Parser)]
#[command(name = "ceiling")]
struct Args {
    /// The stack's outputs file (default: .local/outputs.env).
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// How long to drive the calls.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Messages in flight, as the consumer's MAX_CONCURRENCY.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
}

/// Where the calls go.
struct Target<'a> {
    stack: &'a tools::Stack,
    queue_url: String,
    bucket: String,
    table: String,
    stored_at: String,
}

/// Calls made, for the summary line.
#[derive(Default)]
struct Counts {
    messages: u64,
    sends: u64,
    puts: u64,
    writes: u64,
    /// Time spent on the sends and puts, and on the writes.
    first: Duration,
    second: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let outputs = args
        .outputs
        .unwrap_or_else(|| tools::repo_root().join(".local/outputs.env"));
    let stack = tools::Stack::from_outputs_file(&outputs).await?;
    let run = tools::unique("ceiling");
    let queue_url = stack
        .sqs
        .create_queue()
        .queue_name(&run)
        .send()
        .await
        .context("CreateQueue (scratch queue)")?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let target = Target {
        stack: &stack,
        queue_url,
        bucket: stack.output("BUCKET_NAME")?.to_owned(),
        table: stack.output("TABLE_NAME")?.to_owned(),
        stored_at: pipeline_core::rfc3339_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64,
        ),
    };
    let started = Instant::now();
    let result = drive(
        &target,
        &run,
        Duration::from_secs(args.seconds),
        usize::from(args.concurrency),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    // The scratch queue goes whatever happened; its messages with it.
    let deleted = stack
        .sqs
        .delete_queue()
        .queue_url(&target.queue_url)
        .send()
        .await;
    let counts = result?;
    deleted.context("DeleteQueue (scratch queue)")?;
    let rate = counts.messages as f64 / elapsed;
    println!(
        "ceiling: {} messages in {elapsed:.1}s ({} SendMessageBatch + {} PutObject in {:.1}s, \
         {} BatchWriteItem in {:.1}s; {} in flight)",
        counts.messages,
        counts.sends,
        counts.puts,
        counts.first.as_secs_f64(),
        counts.writes,
        counts.second.as_secs_f64(),
        args.concurrency
    );
    println!("ceiling_messages_per_second={rate:.1}");
    Ok(())
}

/// Rounds of `concurrency` messages until `length` is over: their sends and
/// puts all in flight at once (the producer and the consumer run side by
/// side), then their items in chunks of 25, the chunks at once.
async fn drive(t: &Target<'_>, run: &str, length: Duration, concurrency: usize) -> Result<Counts> {
    let until = Instant::now() + length;
    let mut counts = Counts::default();
    let mut round = 0u64;
    while Instant::now() < until {
        let ids: Vec<String> = (0..concurrency)
            .map(|i| format!("{run}-{round}-{i}"))
            .collect();
        round += 1;
        let t0 = Instant::now();
        let sends = ids.chunks(SQS_BATCH).map(|chunk| async move {
            let bodies: Vec<String> = chunk
                .iter()
                .map(|id| format!(r#"{{"id":"{id}","n":1}}"#))
                .collect();
            tools::send_message_batch(&t.stack.sqs, &t.queue_url, &bodies)
                .await
                .map(drop)
        });
        let puts = ids.iter().map(|id| async move {
            t.stack
                .s3
                .put_object()
                .bucket(&t.bucket)
                .key(format!("ceiling/{id}.json"))
                .content_type("application/json")
                .body(
                    format!(r#"{{"id":"{id}","body":{{"n":1}}}}"#)
                        .into_bytes()
                        .into(),
                )
                .send()
                .await
                .context("PutObject")
                .map(drop)
        });
        let first: Vec<Result<()>> = stream::iter(
            sends
                .map(futures::future::Either::Left)
                .chain(puts.map(futures::future::Either::Right)),
        )
        .buffer_unordered(concurrency)
        .collect()
        .await;
        first.into_iter().collect::<Result<Vec<()>>>()?;
        let t1 = Instant::now();
        let writes = ids.chunks(DDB_BATCH).map(|chunk| async move {
            let requests = chunk
                .iter()
                .map(|id| {
                    // A record item, so readers of the table need no special case.
                    let record = pipeline_core::StoredRecord {
                        id: id.clone(),
                        message_id: format!("ceiling-{id}"),
                        s3_key: format!("ceiling/{id}.json"),
                        received_at: t.stored_at.clone(),
                        body_bytes: 7,
                        stored_at: t.stored_at.clone(),
                    };
                    let item = PutRequest::builder()
                        .set_item(Some(pipeline_aws::to_item(&record)))
                        .build()?;
                    Ok(WriteRequest::builder().put_request(item).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let out = t
                .stack
                .dynamodb
                .batch_write_item()
                .request_items(&t.table, requests)
                .send()
                .await
                .context("BatchWriteItem")?;
            // A 200 can leave work undone; that work was not done.
            if out.unprocessed_items.is_some_and(|u| !u.is_empty()) {
                bail!("BatchWriteItem left unprocessed items");
            }
            Ok(())
        });
        futures::future::join_all(writes)
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()?;
        counts.first += t1 - t0;
        counts.second += t1.elapsed();
        counts.messages += ids.len() as u64;
        counts.sends += ids.len().div_ceil(SQS_BATCH) as u64;
        counts.puts += ids.len() as u64;
        counts.writes += ids.len().div_ceil(DDB_BATCH) as u64;
    }
    Ok(counts)
}
