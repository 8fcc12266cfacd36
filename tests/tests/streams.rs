//! Kinesis and DynamoDB Streams event source mappings in the emulator, with
//! the test double `tests/doubles/stream_bootstrap.py` as the function: the
//! plumbing in `tools/src/streams.rs`, and what the emulator delivers where
//! it does what AWS does. Where it does not (it ignores `batchItemFailures`
//! on stream mappings; see infra/EMULATOR-GAPS.md), the tests say so instead
//! of asserting it.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tests::endpoint;
use tests::streams::{
    compare_sequence_numbers, with_streams, DoubleLog, Invocation, KinesisStream, MappingSettings,
    PutRecord, Streams,
};

/// Whether the emulator listens. Without it the test is skipped with one
/// line, unless REQUIRE_EMULATOR=1. (A local check: the shared helper for
/// this is not in tools yet.)
fn emulator_or_skip(test: &str) -> Result<bool> {
    let url = endpoint();
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(&url)
        .trim_end_matches('/');
    let up = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if up {
        return Ok(true);
    }
    if std::env::var("REQUIRE_EMULATOR").as_deref() == Ok("1") {
        bail!("no emulator at {url} and REQUIRE_EMULATOR=1");
    }
    eprintln!("skipped {test}: no emulator at {url} (REQUIRE_EMULATOR=1 makes this a failure)");
    Ok(false)
}

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
    if !emulator_or_skip("kinesis_records_arrive_base64_one_shard_per_batch_in_sequence_order")? {
        return Ok(());
    }
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
    if !emulator_or_skip("dynamodb_stream_records_name_the_change_with_keys_and_images")? {
        return Ok(());
    }
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
    if !emulator_or_skip("a_function_error_delivers_the_same_batch_again")? {
        return Ok(());
    }
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
    if !emulator_or_skip("records_before_a_reported_failure_are_not_delivered_again")? {
        return Ok(());
    }
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
            // Runtime API level, not here.
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
