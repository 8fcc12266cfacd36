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
//!
//! Order is checked per FIFO message group, on the stored records: a body
//! that carries `messageGroupId` and `groupSeq` (its place in the order the
//! client sent its group) is checked against the `sequenceNumber` SQS gave
//! it (kept in the stored object: the queue's order) and against the item's
//! `storedAt` (the order the consumer stored them). Two consecutive
//! messages of a group in the opposite order are one violation.

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
    let records: HashMap<String, (String, String)> = stack
        .items()
        .await?
        .into_iter()
        .map(|r| (r.id, (r.message_id, r.stored_at)))
        .collect();
    let items: HashMap<&String, &String> = records.iter().map(|(id, (m, _))| (id, m)).collect();
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
            .is_some_and(|m| s.id.is_some() || **m == s.message_id);
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
    // By content: the key each stored object's body carries; and where
    // each message of a group stands.
    eprintln!(
        "audit: reading {} objects for duplicates by content and order per group",
        keys.len()
    );
    let objects: Vec<(Option<String>, Option<Placed>)> =
        stream::iter(keys.iter().filter(|k| k.starts_with(prefix)))
            .map(|key| {
                let stack = &stack;
                let records = &records;
                async move {
                    let object = stack.object(key).await?;
                    let id = key
                        .strip_prefix(prefix)
                        .and_then(|k| k.strip_suffix(".json"))
                        .unwrap_or_default();
                    let stored_at = records.get(id).map(|(_, at)| at.clone());
                    anyhow::Ok((content_key(&object["body"]), placed(&object, stored_at)))
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
    let mut by_content: HashMap<String, usize> = HashMap::new();
    let mut placements = Vec::new();
    for (key, place) in objects {
        if let Some(key) = key {
            *by_content.entry(key).or_insert(0) += 1;
        }
        placements.extend(place);
    }
    let order = check_order(&placements);
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
    table.push_str(&order.rows());
    for id in missing.iter().take(10) {
        eprintln!("audit: not stored and not dead-lettered: {id}");
    }
    for example in &order.examples {
        eprintln!("audit: out of order: {example}");
    }
    let violations = order.violations();
    let (code, verdict) = if lost > 0 || duplicated > 0 || poison_stored > 0 || violations > 0 {
        let why = format!(
            "{lost} lost, {duplicated} duplicated, {poison_stored} poison stored, \
             {violations} order violations"
        );
        (1, format!("FAILED: {why}"))
    } else if pending > 0 || poison_not_dead > 0 || order.without_sequence_number > 0 {
        let why = format!(
            "{pending} pending, {poison_not_dead} poison messages not yet dead-lettered, \
             {} grouped records without a SequenceNumber",
            order.without_sequence_number
        );
        (2, format!("INCONCLUSIVE: {why}"))
    } else if order.groups > 0 {
        let verdict = format!(
            "OK: nothing lost, nothing duplicated, {} groups in order",
            order.groups
        );
        (0, verdict)
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

/// Where one stored message of an ordered group stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Its `MessageGroupId`.
    pub group: String,
    /// Its place in the order the client sent the group (0, 1, ...).
    pub group_seq: u64,
    /// SQS's `SequenceNumber` (the queue's order), if the object kept it.
    pub sequence_number: Option<u128>,
    /// When the consumer stored it (RFC 3339, fixed width), if there is an item.
    pub stored_at: Option<String>,
}

/// Where a stored object stands in its group, when its body says which
/// group and place (`messageGroupId`, `groupSeq`); `stored_at` is its item's.
pub fn placed(object: &serde_json::Value, stored_at: Option<String>) -> Option<Placed> {
    let body = &object["body"];
    Some(Placed {
        group: body["messageGroupId"].as_str()?.to_owned(),
        group_seq: body["groupSeq"].as_u64()?,
        sequence_number: object["sequenceNumber"]
            .as_str()
            .and_then(|n| n.parse().ok()),
        stored_at,
    })
}

/// What the order check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderCheck {
    /// Groups checked.
    pub groups: usize,
    /// Records in them (each place counted once).
    pub records: usize,
    /// Consecutive pairs SQS holds in the opposite order (`SequenceNumber`).
    pub queue_violations: usize,
    /// Consecutive pairs the consumer stored in the opposite order (`storedAt`).
    pub store_violations: usize,
    /// Records of a group whose object has no `SequenceNumber`.
    pub without_sequence_number: usize,
    /// A few violations, described.
    pub examples: Vec<String>,
}

impl OrderCheck {
    /// Every violation.
    pub fn violations(&self) -> usize {
        self.queue_violations + self.store_violations
    }

    /// Its rows of the audit's table (none when no group was checked).
    fn rows(&self) -> String {
        if self.groups == 0 {
            return String::new();
        }
        format!(
            "| groups checked for order (records) | {} ({}) |\n\
             | **order violations**: queue order (SequenceNumber) | {} |\n\
             | **order violations**: stored order (storedAt) | {} |\n\
             | grouped records without a SequenceNumber | {} |\n",
            self.groups,
            self.records,
            self.queue_violations,
            self.store_violations,
            self.without_sequence_number
        )
    }
}

/// Checks each group's records in the order the client sent them: SQS's
/// `SequenceNumber` must rise and the `storedAt` of the items must not
/// fall. Copies of one place (duplicates, counted elsewhere) count once.
pub fn check_order(placements: &[Placed]) -> OrderCheck {
    let mut groups: HashMap<&str, Vec<&Placed>> = HashMap::new();
    for p in placements {
        groups.entry(p.group.as_str()).or_default().push(p);
    }
    let mut check = OrderCheck {
        groups: groups.len(),
        ..OrderCheck::default()
    };
    let mut names: Vec<&str> = groups.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let mut records = groups.remove(name).unwrap_or_default();
        records.sort_by_key(|p| p.group_seq);
        records.dedup_by_key(|p| p.group_seq);
        check.records += records.len();
        check.without_sequence_number += records
            .iter()
            .filter(|p| p.sequence_number.is_none())
            .count();
        for pair in records.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let mut note = |what: &str| {
                if check.examples.len() < 10 {
                    check.examples.push(format!(
                        "group {name}: message {} sent before {}, but {what}",
                        a.group_seq, b.group_seq
                    ));
                }
            };
            if let (Some(x), Some(y)) = (a.sequence_number, b.sequence_number) {
                if x > y {
                    check.queue_violations += 1;
                    note("queued after it (SequenceNumber)");
                }
            }
            if let (Some(x), Some(y)) = (&a.stored_at, &b.stored_at) {
                if x > y {
                    check.store_violations += 1;
                    note("stored after it (storedAt)");
                }
            }
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(group: &str, seq: u64, sequence_number: u128, stored_ms: u64) -> Placed {
        Placed {
            group: group.to_owned(),
            group_seq: seq,
            sequence_number: Some(sequence_number),
            stored_at: Some(pipeline_core::rfc3339_millis(stored_ms)),
        }
    }

    #[test]
    fn groups_in_order_pass_and_one_planted_out_of_order_record_is_caught() {
        let mut records: Vec<Placed> = (0..12)
            .map(|i| at("a", i, 100 + u128::from(i), 1_000 + i))
            .collect();
        records.extend((0..12).map(|i| at("b", i, 200 + u128::from(i), 1_000 + i)));
        // A copy of a-3 (a duplicate) does not count twice.
        records.push(at("a", 3, 103, 1_003));
        let ok = check_order(&records);
        assert_eq!(
            (ok.groups, ok.records, ok.violations()),
            (2, 24, 0),
            "{ok:?}"
        );
        // b-7 was queued and stored after b-8.
        records.retain(|p| !(p.group == "b" && p.group_seq == 7));
        records.push(at("b", 7, 250, 1_050));
        let bad = check_order(&records);
        assert_eq!(bad.queue_violations, 1, "{bad:?}");
        assert_eq!(bad.store_violations, 1, "{bad:?}");
        assert!(
            bad.examples[0].contains("group b: message 7 sent before 8"),
            "{bad:?}"
        );
    }

    #[test]
    fn records_without_a_sequence_number_are_counted() {
        let mut records = vec![at("a", 0, 1, 1), at("a", 1, 2, 2)];
        records[1].sequence_number = None;
        let check = check_order(&records);
        assert_eq!((check.without_sequence_number, check.violations()), (1, 0));
    }

    #[test]
    fn a_body_says_where_it_stands_only_with_a_group_and_a_place() {
        let object = serde_json::json!({
            "sequenceNumber": "18849496460467696128",
            "body": {"messageGroupId": "g", "groupSeq": 4}
        });
        let p = placed(&object, None).expect("placed");
        assert_eq!(
            (p.group_seq, p.sequence_number),
            (4, Some(18_849_496_460_467_696_128))
        );
        assert!(placed(&serde_json::json!({"body": {"groupSeq": 4}}), None).is_none());
    }
}
