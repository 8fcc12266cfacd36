//! Kinesis and DynamoDB Streams event source mappings in the emulator: what
//! the emulator delivers, with the test double `tests/doubles/stream_bootstrap.py`
//! as the function, and lambda-batch's example consumers (the real binaries)
//! behind a mapping, observed through their logs in CloudWatch Logs, as on
//! AWS. The plumbing is in `tools/src/streams.rs`.
//!
//! Where the emulator does not do what AWS does (it ignores
//! `batchItemFailures` on stream mappings; see infra/EMULATOR-GAPS.md), the
//! tests say so instead of asserting it: the checkpoint a consumer reports
//! is tested at the Lambda Runtime API, in `tools/tests/lambda_batch_examples.rs`
//! (`kinesis_a_failed_middle_record_is_reported_alone_as_the_checkpoint`,
//! `kinesis_with_several_failures_the_lowest_sequence_number_is_the_checkpoint`,
//! `dynamodb_with_several_failures_the_lowest_sequence_number_is_the_checkpoint`, ...).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tests::streams::{
    compare_sequence_numbers, with_streams, DoubleLog, Invocation, KinesisStream, LoggedInvocation,
    MappingSettings, PutRecord, Streams,
};

fn payloads(n: usize, keys: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("key-{}", i % keys),
                json!({ "rec": i }).to_string().into_bytes(),
            )
        })
        .collect()
}

/// Every record delivered so far: (invocation, sequence number).
fn delivered(invocations: &[Invocation]) -> Vec<(u64, String)> {
    invocations
        .iter()
        .flat_map(|inv| {
            inv.records().iter().map(|r| {
                let seq = r["kinesis"]["sequenceNumber"]
                    .as_str()
                    .or_else(|| r["dynamodb"]["SequenceNumber"].as_str())
                    .unwrap_or_default();
                (inv.n, seq.to_owned())
            })
        })
        .collect()
}

async fn kinesis_with_double(
    streams: &Streams,
    shards: i32,
    script: &[&str],
    settings: &MappingSettings,
    records: &[(String, Vec<u8>)],
) -> Result<(KinesisStream, DoubleLog, Vec<PutRecord>)> {
    let stream = streams.create_stream("streams-test", shards).await?;
    let log = DoubleLog::new("kinesis")?;
    let function = streams.create_double(&log, script, "ok", 10).await?;
    // Records first, then a TRIM_HORIZON mapping: nothing depends on when
    // the mapping starts reading.
    let put = streams.put_records(&stream, records).await?;
    streams
        .create_mapping(&function, &stream.arn, settings)
        .await?;
    Ok((stream, log, put))
}

#[tokio::test]
async fn kinesis_records_arrive_base64_one_shard_per_batch_in_sequence_order() -> Result<()> {
    tests::needs_emulator!();
    with_streams(async |streams| {
        let records = payloads(24, 6);
        let settings = MappingSettings {
            batch_size: 5,
            ..MappingSettings::default()
        };
        let (stream, log, put) = kinesis_with_double(streams, 2, &[], &settings, &records).await?;
        let invocations = log
            .wait_for("all 24 records delivered", Duration::from_secs(30), |inv| {
                (delivered(inv).len() >= put.len()).then(|| inv.to_vec())
            })
            .await?;

        let by_seq: HashMap<&str, (&PutRecord, &[u8])> = put
            .iter()
            .zip(&records)
            .map(|(p, (_, data))| (p.sequence_number.as_str(), (p, data.as_slice())))
            .collect();
        let mut per_shard: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for inv in &invocations {
            let event = inv.kinesis()?;
            ensure!(
                (1..=5).contains(&event.records.len()),
                "invocation {}: {} records with BatchSize 5",
                inv.n,
                event.records.len()
            );
            let mut shard_of_batch = None;
            for record in &event.records {
                let seq = record.kinesis.sequence_number.as_str();
                let (sent, data) = by_seq.get(seq).with_context(|| {
                    format!("invocation {}: unknown sequence number {seq}", inv.n)
                })?;
                ensure!(
                    record.kinesis.data.as_slice() == *data,
                    "record {seq}: data decodes to {:?}, put {:?}",
                    String::from_utf8_lossy(&record.kinesis.data),
                    String::from_utf8_lossy(data)
                );
                ensure!(record.kinesis.partition_key == sent.partition_key);
                ensure!(record.event_source.as_deref() == Some("aws:kinesis"));
                ensure!(record.event_source_arn.as_deref() == Some(stream.arn.as_str()));
                let event_id = record.event_id.as_deref().unwrap_or_default();
                ensure!(
                    event_id == format!("{}:{seq}", sent.shard_id),
                    "eventID {event_id} is not <shard>:<sequence number>"
                );
                ensure!(
                    *shard_of_batch.get_or_insert(&sent.shard_id) == &sent.shard_id,
                    "invocation {} mixes shards",
                    inv.n
                );
                per_shard
                    .entry(sent.shard_id.as_str())
                    .or_default()
                    .push(seq.to_owned());
            }
        }
        for (shard, seqs) in &per_shard {
            let mut expected: Vec<String> = put
                .iter()
                .filter(|p| p.shard_id == *shard)
                .map(|p| p.sequence_number.clone())
                .collect();
            expected.sort_by(|a, b| compare_sequence_numbers(a, b));
            ensure!(
                *seqs == expected,
                "{shard}: delivered {seqs:?}, expected each once in sequence order {expected:?}"
            );
        }
        ensure!(per_shard.len() == 2, "records of both shards delivered");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dynamodb_stream_records_name_the_change_with_keys_and_images() -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
    tests::needs_emulator!();
    with_streams(async |streams| {
        let table = streams
            .create_table_with_stream("streams-test", StreamViewType::NewAndOldImages)
            .await?;
        let log = DoubleLog::new("dynamodb")?;
        let function = streams.create_double(&log, &[], "ok", 10).await?;
        let item = |pk: &str, v: &str| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
                ("v".to_owned(), AttributeValue::N(v.to_owned())),
            ])
        };
        streams.put_item(&table, item("a", "1")).await?;
        streams.put_item(&table, item("b", "1")).await?;
        streams.put_item(&table, item("a", "2")).await?;
        streams
            .dynamodb
            .delete_item()
            .table_name(&table.name)
            .key("pk", AttributeValue::S("b".to_owned()))
            .send()
            .await?;
        streams
            .create_mapping(&function, &table.stream_arn, &MappingSettings::default())
            .await?;

        let invocations = log
            .wait_for("4 stream records", Duration::from_secs(30), |inv| {
                (delivered(inv).len() >= 4).then(|| inv.to_vec())
            })
            .await?;
        let mut records: Vec<Value> = Vec::new();
        for inv in &invocations {
            let typed = inv.dynamodb()?;
            ensure!(typed.records.len() == inv.records().len());
            records.extend(inv.records().iter().cloned());
        }
        let summary: Vec<(String, String, bool, bool)> = records
            .iter()
            .map(|r| {
                (
                    r["eventName"].as_str().unwrap_or_default().to_owned(),
                    r["dynamodb"]["Keys"]["pk"]["S"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    r["dynamodb"].get("OldImage").is_some(),
                    r["dynamodb"].get("NewImage").is_some(),
                )
            })
            .collect();
        let expected: Vec<(String, String, bool, bool)> = [
            ("INSERT", "a", false, true),
            ("INSERT", "b", false, true),
            ("MODIFY", "a", true, true),
            ("REMOVE", "b", true, false),
        ]
        .iter()
        .map(|(e, k, o, n)| ((*e).to_owned(), (*k).to_owned(), *o, *n))
        .collect();
        ensure!(
            summary == expected,
            "(eventName, key, OldImage?, NewImage?) {summary:?}, expected {expected:?}"
        );
        let modify = &records[2]["dynamodb"];
        ensure!(
            modify["OldImage"]["v"] == json!({"N": "1"})
                && modify["NewImage"]["v"] == json!({"N": "2"}),
            "MODIFY carries both images: {modify}"
        );
        let seqs: Vec<String> = delivered(&invocations)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        ensure!(
            seqs.windows(2)
                .all(|w| compare_sequence_numbers(&w[0], &w[1]).is_lt()),
            "sequence numbers ascend: {seqs:?}"
        );
        ensure!(records.iter().all(|r| {
            r["eventSource"] == "aws:dynamodb"
                && r["eventSourceARN"] == table.stream_arn.as_str()
                && r["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        }));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_function_error_delivers_the_same_batch_again() -> Result<()> {
    tests::needs_emulator!();
    with_streams(async |streams| {
        let settings = MappingSettings {
            maximum_retry_attempts: 2,
            ..MappingSettings::default()
        };
        let (_, log, put) =
            kinesis_with_double(streams, 1, &["error"], &settings, &payloads(6, 1)).await?;
        let invocations = log
            .wait_for("a second invocation", Duration::from_secs(30), |inv| {
                (inv.len() >= 2).then(|| inv.to_vec())
            })
            .await?;
        let batch = |n: u64| -> Vec<String> {
            delivered(&invocations)
                .into_iter()
                .filter(|(i, _)| *i == n)
                .map(|(_, s)| s)
                .collect()
        };
        ensure!(
            invocations[0].kind == "error",
            "the first answer was an error"
        );
        ensure!(
            !batch(0).is_empty() && batch(1) == batch(0),
            "after the error, batch {:?} again; got {:?}",
            batch(0),
            batch(1)
        );
        ensure!(
            batch(0).first() == put.first().map(|p| &p.sequence_number),
            "the batch starts at the first record"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn records_before_a_reported_failure_are_not_delivered_again() -> Result<()> {
    tests::needs_emulator!();
    with_streams(async |streams| {
        // The first answer reports the record {"rec":2} of five; then all is ok.
        let (_, log, put) = kinesis_with_double(
            streams,
            1,
            &["fail:\"rec\":2}"],
            &MappingSettings::default(),
            &payloads(5, 1),
        )
        .await?;
        let seqs: Vec<&str> = put.iter().map(|p| p.sequence_number.as_str()).collect();
        log.wait_for("the first batch", Duration::from_secs(30), |inv| {
            (delivered(inv).len() >= 5).then_some(())
        })
        .await?;
        // AWS redelivers from the checkpoint within about a second; give it 3 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let invocations = log.invocations()?;
        let first = &invocations[0];
        ensure!(
            first.response == json!({"batchItemFailures": [{"itemIdentifier": seqs[2]}]}),
            "the double reported the third record: {}",
            first.response
        );
        let again: Vec<String> = delivered(&invocations)
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(_, s)| s)
            .collect();
        // AWS and the emulator agree here: what precedes the checkpoint is done.
        ensure!(
            !again.iter().any(|s| s == seqs[0] || s == seqs[1]),
            "records before the reported one were delivered again: {again:?}"
        );
        if again.is_empty() {
            // AWS would deliver the third record and every later one again;
            // ministack 1.5.33 ignores batchItemFailures on stream mappings
            // (infra/EMULATOR-GAPS.md), so the checkpoint is tested at the
            // Runtime API level (tools/tests/lambda_batch_examples.rs), not here.
            eprintln!(
                "emulator gap: the reported record and those after it were not delivered again"
            );
        } else {
            ensure!(
                again.len() >= 3
                    && again
                        .iter()
                        .take(3)
                        .map(String::as_str)
                        .eq(seqs[2..].iter().copied()),
                "redelivery starts at the reported record and keeps order: {again:?}"
            );
        }
        Ok(())
    })
    .await
}

/// Polls the function's log until `check` yields `Some` for the invocations
/// so far, for at most `timeout`.
async fn wait_for_log<T>(
    streams: &Streams,
    function: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&[LoggedInvocation]) -> Option<T>,
) -> Result<T> {
    let check = &check;
    tests::wait_until(what, timeout, || async move {
        Ok(check(&streams.function_log(function).await?))
    })
    .await
}

/// The value of `field` in each `message` line of `invocations`, in order.
fn logged(invocations: &[LoggedInvocation], message: &str, field: &str) -> Vec<String> {
    invocations
        .iter()
        .flat_map(|inv| inv.events(message))
        .map(|e| e.field(field).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn kinesis_example_stores_each_sensors_readings_once_and_in_order() -> Result<()> {
    tests::needs_emulator!();
    with_streams(async |streams| {
        // 24 good readings of 6 sensors (partition keys) over 2 shards,
        // delivered 5 at a time: several batches per shard.
        let stream = streams.create_stream("streams-example", 2).await?;
        let function = streams.create_example("kinesis", 10).await?;
        let records: Vec<(String, Vec<u8>)> = (0..24)
            .map(|i| {
                let celsius = f64::from(i) - 5.0;
                (
                    format!("sensor-{}", i % 6),
                    json!({ "celsius": celsius }).to_string().into_bytes(),
                )
            })
            .collect();
        let put = streams.put_records(&stream, &records).await?;
        let settings = MappingSettings {
            batch_size: 5,
            ..MappingSettings::default()
        };
        streams
            .create_mapping(&function, &stream.arn, &settings)
            .await?;
        let invocations = wait_for_log(
            streams,
            &function,
            "24 readings stored",
            Duration::from_secs(60),
            |inv| {
                (logged(inv, "reading stored", "sequence_number").len() >= 24).then(|| inv.to_vec())
            },
        )
        .await?;

        let stored = logged(&invocations, "reading stored", "sequence_number");
        let mut once = stored.clone();
        once.sort_by(|a, b| compare_sequence_numbers(a, b));
        once.dedup();
        ensure!(
            once.len() == stored.len() && stored.len() == put.len(),
            "each of the {} readings stored once: {} stored, {} distinct",
            put.len(),
            stored.len(),
            once.len()
        );
        // Per sensor: stored in the order it was put (its sequence order).
        let sensors = logged(&invocations, "reading stored", "sensor");
        for key in 0..6 {
            let key = format!("sensor-{key}");
            let expected: Vec<&str> = put
                .iter()
                .filter(|p| p.partition_key == key)
                .map(|p| p.sequence_number.as_str())
                .collect();
            let got: Vec<&str> = stored
                .iter()
                .zip(&sensors)
                .filter(|(_, s)| **s == key)
                .map(|(seq, _)| seq.as_str())
                .collect();
            ensure!(got == expected, "{key}: stored {got:?}, put {expected:?}");
        }
        ensure!(
            invocations.len() >= 6,
            "{} invocations for 24 records, BatchSize 5",
            invocations.len()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kinesis_example_a_batch_whose_first_record_fails_is_delivered_again() -> Result<()> {
    tests::needs_emulator!();
    with_streams(async |streams| {
        // One sensor: its first reading is out of range, so nothing of the
        // batch succeeds and the example fails the invocation
        // (BatchAllFailed): Lambda retries the whole batch, as it does for
        // any function error. (What it does with a checkpoint further in,
        // the emulator ignores: see the module's doc.)
        let stream = streams.create_stream("streams-example", 1).await?;
        let function = streams.create_example("kinesis", 10).await?;
        let records: Vec<(String, Vec<u8>)> = [500.0, 20.0, 21.0]
            .iter()
            .map(|c| {
                (
                    "sensor-0".to_owned(),
                    json!({ "celsius": c }).to_string().into_bytes(),
                )
            })
            .collect();
        let put = streams.put_records(&stream, &records).await?;
        let settings = MappingSettings {
            maximum_retry_attempts: 2,
            ..MappingSettings::default()
        };
        let mapping = streams
            .create_mapping(&function, &stream.arn, &settings)
            .await?;
        let first = put[0].sequence_number.as_str();
        let result = wait_for_log(
            streams,
            &function,
            "the first reading failed twice",
            Duration::from_secs(30),
            |inv| {
                let failed = inv
                    .iter()
                    .filter(|i| {
                        i.events("record failed")
                            .any(|e| e.field("id") == Some(first))
                    })
                    .count();
                (failed >= 2).then(|| inv.to_vec())
            },
        )
        .await;
        // The emulator retries it forever (AWS: MaximumRetryAttempts); stop
        // it before anything else.
        streams.delete_mapping(&mapping).await?;
        let invocations = result?;
        for inv in &invocations {
            let failed: Vec<_> = inv
                .events("record failed")
                .filter_map(|e| e.field("id"))
                .collect();
            ensure!(
                failed == [first],
                "invocation {}: failed {failed:?}, expected the first reading alone",
                inv.request_id
            );
            ensure!(
                inv.lines.iter().any(|l| l.contains("AllFailed")),
                "invocation {} ended in BatchAllFailed: {:#?}",
                inv.request_id,
                inv.lines
            );
        }
        let stored = logged(&invocations, "reading stored", "sequence_number");
        ensure!(
            stored.is_empty(),
            "nothing after the failed reading of its sensor ran: {stored:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dynamodb_example_handles_each_accounts_changes_in_order() -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType};
    tests::needs_emulator!();
    with_streams(async |streams| {
        let table = streams
            .create_table_with_stream("streams-example", StreamViewType::NewAndOldImages)
            .await?;
        let function = streams.create_example("dynamodb", 10).await?;
        let account = |id: &str, balance: i64| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(id.to_owned())),
                ("id".to_owned(), AttributeValue::S(id.to_owned())),
                ("balance".to_owned(), AttributeValue::N(balance.to_string())),
            ])
        };
        // Three accounts, their changes interleaved.
        for (id, balance) in [
            ("a", 10),
            ("b", 1),
            ("a", 15),
            ("c", 7),
            ("b", 4),
            ("a", 12),
        ] {
            streams.put_item(&table, account(id, balance)).await?;
        }
        for id in ["c", "a"] {
            streams
                .dynamodb
                .delete_item()
                .table_name(&table.name)
                .key("pk", AttributeValue::S(id.to_owned()))
                .send()
                .await?;
        }
        let settings = MappingSettings {
            batch_size: 3,
            ..MappingSettings::default()
        };
        streams
            .create_mapping(&function, &table.stream_arn, &settings)
            .await?;
        // Per account: what the example logged, in order.
        let expected: HashMap<&str, Vec<(&str, &str)>> = HashMap::from([
            (
                "a",
                vec![
                    ("opened", ""),
                    ("moved", "5"),
                    ("moved", "-3"),
                    ("closed", ""),
                ],
            ),
            ("b", vec![("opened", ""), ("moved", "3")]),
            ("c", vec![("opened", ""), ("closed", "")]),
        ]);
        let changes = expected.values().map(Vec::len).sum::<usize>();
        let kinds = ["opened", "moved", "closed"];
        let invocations = wait_for_log(
            streams,
            &function,
            "every change handled",
            Duration::from_secs(60),
            |inv| {
                let n: usize = inv.iter().map(|i| i.events_of(&kinds).count()).sum();
                (n >= changes).then(|| inv.to_vec())
            },
        )
        .await?;
        let mut got: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (kind, event) in invocations.iter().flat_map(|i| i.events_of(&kinds)) {
            got.entry(event.field("id").unwrap_or_default().to_owned())
                .or_default()
                .push((
                    kind.to_owned(),
                    event.field("delta").unwrap_or_default().to_owned(),
                ));
        }
        for (id, changes) in &expected {
            let want: Vec<(String, String)> = changes
                .iter()
                .map(|(k, d)| ((*k).to_owned(), (*d).to_owned()))
                .collect();
            let have = got.remove(*id).unwrap_or_default();
            ensure!(have == want, "account {id}: {have:?}, expected {want:?}");
        }
        ensure!(got.is_empty(), "changes of other accounts: {got:?}");
        Ok(())
    })
    .await
}
