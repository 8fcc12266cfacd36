//! lambda-batch's example consumers (`lambda-batch/examples/{kinesis,dynamodb,sqs}.rs`),
//! the real binaries, run against a fake Lambda Runtime API
//! (`tools::runtime_api`): what each answers is checked against what AWS
//! documents for partial batch responses (`/work/shared/AWS-SEMANTICS.md`).
//!
//! This is where stream checkpoints are tested: the local emulator ignores
//! `batchItemFailures` on Kinesis and DynamoDB Streams mappings
//! (infra/EMULATOR-GAPS.md, "Kinesis and DynamoDB Streams"), so an end-to-end
//! test there cannot tell a right checkpoint from a wrong one. No emulator
//! is needed: these run under plain `cargo test`.
//!
//! Events start from aws_lambda_events' example events
//! (`lambda-batch/tests/fixtures/`), one record copied and filled in.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use aws_lambda_events::encodings::Base64Data;
use serde_json::{json, Value};
use tools::repo_root;
use tools::runtime_api::{example_binary, LocalFunction, Outcome};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The first record of one of the shared fixture events.
fn fixture_record(file: &str) -> Result<Value> {
    let path = repo_root().join("lambda-batch/tests/fixtures").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let event: Value = serde_json::from_str(&text)?;
    event["Records"]
        .get(0)
        .cloned()
        .with_context(|| format!("{} has no record", path.display()))
}

/// One invocation of an example on a process of its own: its answer and
/// what it logged.
struct Run {
    outcome: Outcome,
    output: String,
}

impl Run {
    async fn of(example: &str, event: &Value) -> Result<Self> {
        // cargo runs on a thread of its own: it takes a while when the
        // examples are stale.
        let name = example.to_owned();
        let binary =
            tokio::task::spawn_blocking(move || example_binary("lambda-batch", &name)).await??;
        let mut function = LocalFunction::start(&binary, &[]).await?;
        let outcome = function.invoke(event, TIMEOUT).await?;
        Ok(Self {
            outcome,
            output: function.stop(),
        })
    }

    /// The field `field` of each JSON log line whose message is `message`
    /// (`AWS_LAMBDA_LOG_FORMAT=JSON`), in order.
    fn logged(&self, message: &str, field: &str) -> Vec<String> {
        self.output
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == message)
            .map(|l| match &l["fields"][field] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    /// Checks that exactly the records `failing` ran and failed, and that
    /// the response names `checkpoint` alone.
    fn check_checkpoint(&self, failing: &[&str], checkpoint: &str) -> Result<()> {
        let failed: HashSet<String> = self.logged("record failed", "id").into_iter().collect();
        let expected: HashSet<String> = failing.iter().map(|s| (*s).to_owned()).collect();
        ensure!(
            failed == expected,
            "failed {failed:?}, expected {expected:?} to run and fail\n{}",
            self.output
        );
        let response = self.outcome.response()?;
        ensure!(
            *response == json!({ "batchItemFailures": [{ "itemIdentifier": checkpoint }] }),
            "{response}, expected only the checkpoint {checkpoint}"
        );
        Ok(())
    }

    /// Checks that the response is an empty list: the whole batch succeeded.
    fn check_no_failures(&self) -> Result<()> {
        let response = self.outcome.response()?;
        ensure!(
            *response == json!({ "batchItemFailures": [] }),
            "{response}, expected an empty list"
        );
        Ok(())
    }

    /// Checks that the invocation failed with `error_type`, and that its
    /// message says `says`.
    fn check_error(&self, error_type: &str, says: &str) -> Result<()> {
        let error = self.outcome.error()?;
        ensure!(
            error.error_type == error_type && error.error_message.contains(says),
            "{error:?}, expected {error_type} saying {says:?}"
        );
        Ok(())
    }
}

/// `n` Kinesis sequence numbers in ascending order that cross from 55 to
/// 56 digits after the first `before`: string order is not numeric order
/// among them ("1000..." sorts before "9999..."). Kinesis's are decimal
/// strings of up to 129 digits without leading zeros.
fn kinesis_seqs(before: usize, n: usize) -> Vec<String> {
    let nines = |k: usize| format!("{}{}", "9".repeat(54), 9 - (before - 1 - k));
    let after = |k: usize| format!("1{}{k:02}", "0".repeat(53));
    (0..n)
        .map(|i| {
            if i < before {
                nines(i)
            } else {
                after(i - before)
            }
        })
        .collect()
}

/// A Kinesis event of `(sequence number, partition key, data)` records.
fn kinesis_event(records: &[(&str, &str, Value)]) -> Result<Value> {
    let template = fixture_record("example-kinesis-event.json")?;
    let records: Vec<Value> = records
        .iter()
        .map(|(seq, key, data)| {
            let mut r = template.clone();
            r["kinesis"]["sequenceNumber"] = json!(seq);
            r["kinesis"]["partitionKey"] = json!(key);
            r["kinesis"]["data"] = json!(base64(data.to_string().as_bytes()));
            r["eventID"] = json!(format!("shardId-000000000000:{seq}"));
            r
        })
        .collect();
    Ok(json!({ "Records": records }))
}

/// `bytes` as base64, as Kinesis's `data` carries them (aws_lambda_events'
/// own encoder).
fn base64(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

/// Readings for the Kinesis example: it fails a reading outside -90..=60 °C.
fn reading(celsius: f64) -> Value {
    json!({ "celsius": celsius })
}

#[tokio::test]
async fn kinesis_a_failed_middle_record_is_reported_alone_as_the_checkpoint() -> Result<()> {
    // One sensor (one partition key): five readings in order; the third is
    // out of range. Lambda resumes at the reported record and delivers it
    // and everything after it again, so the response names it alone, and
    // the readings after it are not started (they would be written twice).
    let seqs = kinesis_seqs(3, 5);
    let temps = [20.0, 21.0, 999.0, 22.0, 23.0];
    let records: Vec<(&str, &str, Value)> = seqs
        .iter()
        .zip(temps)
        .map(|(s, t)| (s.as_str(), "sensor-1", reading(t)))
        .collect();
    let run = Run::of("kinesis", &kinesis_event(&records)?).await?;
    run.check_checkpoint(&[&seqs[2]], &seqs[2])?;
    let stored = run.logged("reading stored", "sequence_number");
    ensure!(
        stored == seqs[..2],
        "stored {stored:?}: the two readings before the failure, in order, and nothing after it"
    );
    Ok(())
}

#[tokio::test]
async fn kinesis_with_several_failures_the_lowest_sequence_number_is_the_checkpoint() -> Result<()>
{
    // Six sensors, one reading each, all started at once (the example runs
    // 16 keys side by side). Records 2 and 4 fail. Record 4's sequence
    // number has one digit more than record 2's, so it is the smaller
    // string: the checkpoint must come from batch order (which is
    // sequence order on AWS), not from comparing strings.
    let seqs = kinesis_seqs(3, 6);
    ensure!(seqs[4] < seqs[2], "the test needs string order to disagree");
    let temps = [20.0, 21.0, -120.0, 22.0, 75.0, 23.0];
    let keys: Vec<String> = (0..6).map(|i| format!("sensor-{i}")).collect();
    let records: Vec<(&str, &str, Value)> = seqs
        .iter()
        .zip(&keys)
        .zip(temps)
        .map(|((s, k), t)| (s.as_str(), k.as_str(), reading(t)))
        .collect();
    let run = Run::of("kinesis", &kinesis_event(&records)?).await?;
    run.check_checkpoint(&[&seqs[2], &seqs[4]], &seqs[2])
}

#[tokio::test]
async fn kinesis_a_batch_without_failures_answers_an_empty_list() -> Result<()> {
    let seqs = kinesis_seqs(2, 4);
    let records: Vec<(&str, &str, Value)> = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), if i % 2 == 0 { "a" } else { "b" }, reading(5.0)))
        .collect();
    let run = Run::of("kinesis", &kinesis_event(&records)?).await?;
    run.check_no_failures()
}

#[tokio::test]
async fn kinesis_a_failed_first_record_fails_the_invocation_with_batch_all_failed() -> Result<()> {
    // Nothing before the checkpoint: the whole batch comes again either
    // way, and an invocation error is what Lambda's retry settings
    // (MaximumRetryAttempts, BisectBatchOnFunctionError) act on.
    let seqs = kinesis_seqs(1, 3);
    let records: Vec<(&str, &str, Value)> = seqs
        .iter()
        .zip([100.0, 20.0, 21.0])
        .map(|(s, t)| (s.as_str(), "sensor-1", reading(t)))
        .collect();
    let run = Run::of("kinesis", &kinesis_event(&records)?).await?;
    run.check_error("BatchAllFailed", "out_of_range")
}

/// DynamoDB Streams sequence numbers in ascending order crossing from 27 to
/// 28 digits after the first `before` (AWS's are 21-40 characters).
fn dynamodb_seqs(before: usize, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i < before {
                format!("{}{}", "9".repeat(26), 9 - (before - 1 - i))
            } else {
                format!("1{}{:02}", "0".repeat(25), i - before)
            }
        })
        .collect()
}

/// One change to the example's `accounts` table: (kind, id, old balance,
/// new balance), a missing balance meaning no such image.
type AccountChange<'a> = (&'a str, &'a str, Option<i64>, Option<i64>);

fn dynamodb_event(seqs: &[String], changes: &[AccountChange]) -> Result<Value> {
    let template = fixture_record("example-dynamodb-event.json")?;
    let image = |id: &str, balance: Option<i64>| {
        balance.map(|b| json!({ "id": { "S": id }, "balance": { "N": b.to_string() } }))
    };
    let records: Vec<Value> = seqs
        .iter()
        .zip(changes)
        .map(|(seq, (kind, id, old, new))| {
            let mut r = template.clone();
            r["eventName"] = json!(kind);
            let change = r["dynamodb"]
                .as_object_mut()
                .expect("the fixture's record has a dynamodb object");
            change.remove("OldImage");
            change.remove("NewImage");
            change.insert("Keys".into(), json!({ "id": { "S": id } }));
            change.insert("SequenceNumber".into(), json!(seq));
            if let Some(old) = image(id, *old) {
                change.insert("OldImage".into(), old);
            }
            if let Some(new) = image(id, *new) {
                change.insert("NewImage".into(), new);
            }
            r
        })
        .collect();
    Ok(json!({ "Records": records }))
}

#[tokio::test]
async fn dynamodb_with_several_failures_the_lowest_sequence_number_is_the_checkpoint() -> Result<()>
{
    // The example fails a MODIFY that leaves a balance below zero. Two
    // accounts go negative: records 2 and 4; record 4's sequence number is
    // the shorter-looking, smaller string.
    let seqs = dynamodb_seqs(3, 6);
    ensure!(seqs[4] < seqs[2], "the test needs string order to disagree");
    let changes: [AccountChange; 6] = [
        ("INSERT", "acc-1", None, Some(10)),
        ("MODIFY", "acc-2", Some(10), Some(5)),
        ("MODIFY", "acc-3", Some(10), Some(-1)),
        ("REMOVE", "acc-4", Some(0), None),
        ("MODIFY", "acc-5", Some(3), Some(-7)),
        ("MODIFY", "acc-6", Some(3), Some(4)),
    ];
    let run = Run::of("dynamodb", &dynamodb_event(&seqs, &changes)?).await?;
    run.check_checkpoint(&[&seqs[2], &seqs[4]], &seqs[2])
}

#[tokio::test]
async fn dynamodb_changes_of_one_item_stop_at_its_failure_and_only_the_checkpoint_is_reported(
) -> Result<()> {
    // One account: opened, moved, overdrawn (fails), moved again. The last
    // change is not started; the response names the overdraft alone.
    let seqs = dynamodb_seqs(2, 4);
    let changes: [AccountChange; 4] = [
        ("INSERT", "acc-1", None, Some(10)),
        ("MODIFY", "acc-1", Some(10), Some(4)),
        ("MODIFY", "acc-1", Some(4), Some(-2)),
        ("MODIFY", "acc-1", Some(-2), Some(8)),
    ];
    let run = Run::of("dynamodb", &dynamodb_event(&seqs, &changes)?).await?;
    run.check_checkpoint(&[&seqs[2]], &seqs[2])?;
    let (opened, moved) = (run.logged("opened", "id"), run.logged("moved", "delta"));
    ensure!(
        opened == ["acc-1"] && moved == ["-6"],
        "opened {opened:?} and moved {moved:?}: once each (-6), nothing after the overdraft"
    );
    Ok(())
}

#[tokio::test]
async fn dynamodb_a_batch_without_failures_answers_an_empty_list() -> Result<()> {
    let seqs = dynamodb_seqs(1, 3);
    let changes: [AccountChange; 3] = [
        ("INSERT", "acc-1", None, Some(10)),
        ("MODIFY", "acc-1", Some(10), Some(0)),
        ("REMOVE", "acc-1", Some(0), None),
    ];
    let run = Run::of("dynamodb", &dynamodb_event(&seqs, &changes)?).await?;
    run.check_no_failures()
}

#[tokio::test]
async fn dynamodb_a_failed_first_record_fails_the_invocation_with_batch_all_failed() -> Result<()> {
    let seqs = dynamodb_seqs(1, 2);
    let changes: [AccountChange; 2] = [
        ("MODIFY", "acc-1", Some(1), Some(-1)),
        ("MODIFY", "acc-2", Some(1), Some(2)),
    ];
    let run = Run::of("dynamodb", &dynamodb_event(&seqs, &changes)?).await?;
    run.check_error("BatchAllFailed", "overdrawn")
}

/// An SQS event of `(messageId, body)` messages.
fn sqs_event(messages: &[(&str, &str)]) -> Result<Value> {
    let template = fixture_record("example-sqs-event.json")?;
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["body"] = json!(body);
            r
        })
        .collect();
    Ok(json!({ "Records": records }))
}

#[tokio::test]
async fn sqs_every_failed_message_is_reported_and_no_other() -> Result<()> {
    // The example fails a free order and a body that is not an order; SQS
    // deletes what is not reported, so every failure must be listed.
    let messages = [
        ("m-1", r#"{"id":"o-1","cents":250}"#),
        ("m-2", r#"{"id":"o-2","cents":0}"#),
        ("m-3", "not json"),
        ("m-4", r#"{"id":"o-4","cents":999}"#),
        ("m-5", r#"{"id":"o-5","cents":0}"#),
    ];
    let run = Run::of("sqs", &sqs_event(&messages)?).await?;
    let expected = json!({ "batchItemFailures": [
        { "itemIdentifier": "m-2" },
        { "itemIdentifier": "m-3" },
        { "itemIdentifier": "m-5" },
    ]});
    let response = run.outcome.response()?;
    ensure!(*response == expected, "{response}, expected {expected}");
    Ok(())
}

#[tokio::test]
async fn a_record_without_an_item_identifier_fails_the_invocation_with_batch_invalid_event(
) -> Result<()> {
    // Its failure could not be reported (AWS fails the whole batch on an
    // empty or null itemIdentifier), so the invocation fails before any
    // record runs. aws_lambda_events defaults a missing field to empty/None.
    let mut kinesis = kinesis_event(&[
        (&kinesis_seqs(1, 1)[0], "s", reading(1.0)),
        ("", "s", reading(2.0)),
    ])?;
    if let Some(k) = kinesis["Records"][1]["kinesis"].as_object_mut() {
        k.remove("sequenceNumber");
    }
    let seqs = dynamodb_seqs(1, 2);
    let mut dynamodb = dynamodb_event(
        &seqs,
        &[
            ("INSERT", "acc-1", None, Some(1)),
            ("INSERT", "acc-2", None, Some(1)),
        ],
    )?;
    if let Some(d) = dynamodb["Records"][1]["dynamodb"].as_object_mut() {
        d.remove("SequenceNumber");
    }
    let mut sqs = sqs_event(&[("m-1", r#"{"id":"o-1","cents":1}"#), ("", "{}")])?;
    if let Some(m) = sqs["Records"][1].as_object_mut() {
        m.remove("messageId");
    }
    for (name, event) in [("kinesis", kinesis), ("dynamodb", dynamodb), ("sqs", sqs)] {
        Run::of(name, &event)
            .await?
            .check_error("BatchInvalidEvent", "record 1 ")
            .with_context(|| format!("the {name} example"))?;
    }
    Ok(())
}
