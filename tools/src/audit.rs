//! The audit: reconciles what was sent with what the pipeline holds. Every
//! message the producer accepted must be stored exactly once (one item, one
//! object) or sit in the dead-letter queue. `tools/src/bin/audit.rs` is its
//! command line.
//!
//! The ledger is JSON Lines, one accepted message a line:
//! `{"messageId":"…","id":"<record id>","key":"<run>/<script>/<seq>","poison":false}`
//! (k6 writes it with `--console-output`); other lines are ignored.
//!
//! Duplicates are counted by content, not only by message id (which SQS
//! never repeats): every stored object is read, and two objects whose body
//! carries the same `idempotencyKey` (k6 puts the key in each body) are one
//! message stored twice.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
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

/// What the audit found.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The counts, as a Markdown table.
    pub table: String,
    /// One line: OK, FAILED or INCONCLUSIVE, and why.
    pub verdict: String,
    /// 0 all accounted for, 1 lost, duplicated or misplaced messages, 2
    /// messages still pending after the wait.
    pub code: i32,
}

fn read_ledger(path: &Path) -> Result<Vec<Sent>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading ledger {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Sent>(l).ok())
        .collect())
}

/// Audits the stack whose outputs are in `outputs` against `ledger`, after
/// waiting up to `wait` for the queue to drain. Progress goes to stderr.
pub async fn run(ledger: &Path, outputs: &Path, wait: Duration) -> Result<Audit> {
    let sent = read_ledger(ledger)?;
    if sent.is_empty() {
        bail!("the ledger {} names no accepted message", ledger.display());
    }
    let mut table = String::new();
    let stack = crate::Stack::from_outputs_file(outputs).await?;

    // Let in-flight messages settle first (bounded).
    let started = Instant::now();
    let mut depth = stack.depth("QUEUE_URL").await?;
    while depth != (0, 0) && started.elapsed() < wait {
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

    let _ = writeln!(table, "| what | count |");
    let _ = writeln!(table, "|---|---:|");
    let _ = writeln!(table, "| accepted (ledger) | {} |", ids_seen.len());
    let _ = writeln!(table, "| stored (item + object) | {stored} |");
    let _ = writeln!(table, "| dead-lettered | {dead_lettered} |");
    let _ = writeln!(
        table,
        "|   of which poison | {} |",
        dead_lettered - healthy_dead
    );
    let _ = writeln!(table, "|   of which not poison | {healthy_dead} |");
    let _ = writeln!(table, "| pending (queue not drained) | {pending} |");
    let _ = writeln!(table, "| **lost** | {lost} |");
    let _ = writeln!(table, "| **duplicated** | {duplicated} |");
    let _ = writeln!(
        table,
        "|   of which by content (two objects, one key) | {content_duplicates} |"
    );
    let _ = writeln!(table, "| poison stored (must be 0) | {poison_stored} |");
    let _ = writeln!(table, "| poison not in the DLQ | {poison_not_dead} |");
    let _ = writeln!(
        table,
        "| objects left by dead-lettered messages | {orphan_objects} |"
    );
    for id in missing.iter().take(10) {
        eprintln!("audit: not stored and not dead-lettered: {id}");
    }
    let (code, verdict) = if lost > 0 || duplicated > 0 || poison_stored > 0 {
        let why = format!("{lost} lost, {duplicated} duplicated, {poison_stored} poison stored");
        (1, format!("FAILED: {why}"))
    } else if pending > 0 || poison_not_dead > 0 {
        let why =
            format!("{pending} pending, {poison_not_dead} poison messages not yet dead-lettered");
        (2, format!("INCONCLUSIVE: {why}"))
    } else {
        (0, "OK: nothing lost, nothing duplicated".to_owned())
    };
    Ok(Audit {
        table,
        verdict,
        code,
    })
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
