//! Reconciles what was sent with what the pipeline holds: every message the
//! producer accepted must be stored exactly once (one item, one object) or
//! sit in the dead-letter queue.
//!
//! ```text
//! cargo run -p tests --bin audit -- --ledger k6/results/soak-RUN-ledger.jsonl
//! ```
//!
//! The ledger is JSON Lines, one accepted message a line:
//! `{"messageId":"…","id":"<record id>","key":"<run>/<script>/<seq>","poison":false}`
//! (k6 writes it with `--console-output`); other lines are ignored.
//!
//! Duplicates are counted by content, not only by message id (which SQS
//! never repeats): every stored object is read, and two objects whose body
//! carries the same `idempotencyKey` (k6 puts the key in each body) are one
//! message stored twice. Exit status: 0 all
//! accounted for, 1 lost, duplicated or misplaced messages, 2 messages still
//! pending after the wait, 64 bad arguments.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use pipeline_core::record_id;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    message_id: String,
    /// The record id the producer answered (keyed messages' ids come from the key).
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    poison: bool,
}

struct Args {
    ledger: PathBuf,
    outputs: PathBuf,
    wait: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: audit --ledger FILE [--outputs .local/outputs.env] [--wait SECONDS]\n\
         Compares the accepted messages in FILE with the table, bucket, queue and DLQ."
    );
    std::process::exit(64)
}

fn args() -> Args {
    let mut ledger = None;
    let mut outputs = tests::repo_root().join(".local/outputs.env");
    let mut wait = Duration::from_secs(120);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--ledger" => ledger = it.next().map(PathBuf::from),
            "--outputs" => outputs = it.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--wait" => {
                let secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage());
                wait = Duration::from_secs(secs);
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("audit: unknown argument {other:?}");
                usage()
            }
        }
    }
    let Some(ledger) = ledger else {
        eprintln!("audit: --ledger is required");
        usage()
    };
    Args {
        ledger,
        outputs,
        wait,
    }
}

fn read_ledger(path: &PathBuf) -> Result<Vec<Sent>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading ledger {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Sent>(l).ok())
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args();
    let sent = read_ledger(&args.ledger)?;
    if sent.is_empty() {
        bail!(
            "the ledger {} names no accepted message",
            args.ledger.display()
        );
    }
    let stack = tests::Stack::from_outputs_file(&args.outputs).await?;

    // Let in-flight messages settle first (bounded).
    let started = Instant::now();
    let mut depth = stack.depth("QUEUE_URL").await?;
    while depth != (0, 0) && started.elapsed() < args.wait {
        eprintln!(
            "audit: waiting for the queue to drain ({} visible, {} in flight)",
            depth.0, depth.1
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        depth = stack.depth("QUEUE_URL").await?;
    }

    eprintln!("audit: reading table, bucket and DLQ");
    let items: HashMap<String, String> = stack
        .items()
        .await?
        .into_iter()
        .map(|r| (r.id, r.message_id))
        .collect();
    let keys: HashSet<String> = stack.object_keys().await?.into_iter().collect();
    let dead: HashSet<String> = stack.dlq_message_ids().await?.into_iter().collect();
    let prefix = "records/";

    // Distinct records per key: two copies of a keyed message are one record.
    let mut by_key: HashMap<&str, HashSet<pipeline_core::uuid::Uuid>> = HashMap::new();
    let (mut stored, mut dead_lettered, mut missing, mut orphan_objects) =
        (0usize, 0usize, Vec::new(), 0usize);
    let (mut poison_stored, mut poison_not_dead, mut healthy_dead) = (0usize, 0usize, 0usize);
    let mut ids_seen = HashSet::new();
    let mut repeated_ids = 0usize;
    for s in &sent {
        if !ids_seen.insert(s.message_id.as_str()) {
            repeated_ids += 1;
            continue;
        }
        let id = match s.id.as_deref().map(str::parse) {
            Some(Ok(id)) => id,
            _ => record_id(&s.message_id),
        };
        // A keyed record may have been written by another copy of the message.
        let has_item = items
            .get(&id.to_string())
            .is_some_and(|m| s.id.is_some() || *m == s.message_id);
        let has_object = keys.contains(&pipeline_core::s3_key(prefix, &id));
        let in_dlq = dead.contains(&s.message_id);
        if has_item && has_object {
            stored += 1;
            if let Some(k) = &s.key {
                by_key.entry(k.as_str()).or_default().insert(id);
            }
        } else if in_dlq {
            dead_lettered += 1;
            orphan_objects += usize::from(has_object);
        } else {
            missing.push(s.message_id.clone());
        }
        if s.poison {
            poison_stored += usize::from(has_item);
            poison_not_dead += usize::from(!in_dlq);
        } else if in_dlq {
            healthy_dead += 1;
        }
    }
    // By content: the key each stored object's body carries.
    eprintln!(
        "audit: reading {} objects for duplicates by content",
        keys.len()
    );
    let bodies: Vec<Option<String>> = stream::iter(keys.iter().filter(|k| k.starts_with(prefix)))
        .map(|key| {
            let stack = &stack;
            async move {
                let object = stack.object(key).await?;
                anyhow::Ok(content_key(&object["body"]))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut by_content: HashMap<String, usize> = HashMap::new();
    for key in bodies.into_iter().flatten() {
        *by_content.entry(key).or_insert(0) += 1;
    }
    let content_duplicates = extra(&by_content);
    let records_per_key: HashMap<&str, usize> =
        by_key.iter().map(|(k, ids)| (*k, ids.len())).collect();
    let duplicated = extra(&records_per_key).max(content_duplicates) + repeated_ids;
    let pending = if depth == (0, 0) { 0 } else { missing.len() };
    let lost = missing.len() - pending;

    println!("| what | count |");
    println!("|---|---:|");
    println!("| accepted (ledger) | {} |", ids_seen.len());
    println!("| stored (item + object) | {stored} |");
    println!("| dead-lettered | {dead_lettered} |");
    println!("|   of which poison | {} |", dead_lettered - healthy_dead);
    println!("|   of which not poison | {healthy_dead} |");
    println!("| pending (queue not drained) | {pending} |");
    println!("| **lost** | {lost} |");
    println!("| **duplicated** | {duplicated} |");
    println!("|   of which by content (two objects, one key) | {content_duplicates} |");
    println!("| poison stored (must be 0) | {poison_stored} |");
    println!("| poison not in the DLQ | {poison_not_dead} |");
    println!("| objects left by dead-lettered messages | {orphan_objects} |");
    for id in missing.iter().take(10) {
        eprintln!("audit: not stored and not dead-lettered: {id}");
    }
    if lost > 0 || duplicated > 0 || poison_stored > 0 {
        eprintln!(
            "audit: FAILED: {lost} lost, {duplicated} duplicated, {poison_stored} poison stored"
        );
        std::process::exit(1);
    }
    if pending > 0 || poison_not_dead > 0 {
        eprintln!("audit: INCONCLUSIVE: {pending} pending, {poison_not_dead} poison messages not yet dead-lettered");
        std::process::exit(2);
    }
    eprintln!("audit: OK: nothing lost, nothing duplicated");
    Ok(())
}

/// The key a stored body carries: its `idempotencyKey`, else k6's
/// `run`/`script`/`seq`.
fn content_key(body: &serde_json::Value) -> Option<String> {
    if let Some(key) = body["idempotencyKey"].as_str() {
        return Some(key.to_owned());
    }
    let (run, seq) = (body["run"].as_str()?, body["seq"].as_u64()?);
    Some(format!(
        "{run}/{}/{seq}",
        body["script"].as_str().unwrap_or("")
    ))
}

/// Copies beyond the first, over every key.
fn extra<K>(counts: &HashMap<K, usize>) -> usize {
    counts.values().filter(|&&n| n > 1).map(|n| n - 1).sum()
}
