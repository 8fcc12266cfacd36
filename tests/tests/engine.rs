//! The engine's promises through the real consumer binary, run by the
//! emulator, with the consumer's S3 and DynamoDB calls going through the
//! fault proxy.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::json;
use tests::proxy::{Fault, FaultProxy, Op, Rule};
use tests::{endpoint, reported_failures, sqs_event, unique, Stack};

fn messages(n: usize, tag: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (unique(tag), json!({"test": tag, "n": i}).to_string()))
        .collect()
}

async fn stored_message_ids(stack: &Stack) -> Result<HashSet<String>> {
    Ok(stack
        .items()
        .await?
        .into_iter()
        .map(|r| r.message_id)
        .collect())
}

#[tokio::test]
async fn a_stalled_put_fails_only_its_message_and_the_others_are_stored() -> Result<()> {
    tests::needs_emulator!();
    // Timeout 5 s: the margin is 500 ms, so the engine stops waiting 250 ms
    // before the deadline. One PutObject never answers; the SDK's attempt
    // timeout (2 s) retries it into the same stall, and the engine cuts it off.
    // The emulator enforces the timeout as Lambda does (the process is
    // killed and the invoke fails with Sandbox.Timedout, which
    // `invoke_consumer` returns as an error), so a partial batch response
    // is the proof that the answer came in time. A clock around the Invoke
    // call would also count the emulator starting the process.
    let stack = Stack::deploy(
        "engine-stall",
        &[("QueueVisibilityTimeout", "30"), ("ConsumerTimeout", "5")],
    )
    .await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule::new(Op::S3PutObject, Fault::Stall, 1.0).when_body_contains("stall-me")],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let mut batch = messages(10, "stall");
    batch[3].1 = json!({"test": "stall", "note": "stall-me"}).to_string();
    let stalled = batch[3].0.clone();

    let response = stack.invoke_consumer(&sqs_event(&batch)).await?;

    let failed = reported_failures(&response)?;
    ensure!(
        failed == vec![stalled.clone()],
        "reported {failed:?}, expected only {stalled}"
    );
    ensure!(
        proxy.injected(Op::S3PutObject) >= 1,
        "the stall was injected"
    );
    let stored = stored_message_ids(&stack).await?;
    for (id, _) in &batch {
        ensure!(
            stored.contains(id) == (*id != stalled),
            "message {id}: stored={}",
            stored.contains(id)
        );
    }
    Ok(())
}

#[tokio::test]
async fn fair_queue_group_ids_on_a_standard_queue_are_processed_concurrently() -> Result<()> {
    tests::needs_emulator!();
    // Twenty messages of one tenant (MessageGroupId) from a standard queue:
    // every PutObject waits 1 s in the proxy, so a serialised run would
    // never have more than one in flight.
    let stack = Stack::deploy(
        "engine-fair",
        &[("QueueVisibilityTimeout", "60"), ("ConsumerTimeout", "10")],
    )
    .await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule::new(
            Op::S3PutObject,
            Fault::Delay(Duration::from_secs(1)),
            1.0,
        )],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let batch = messages(20, "fair");
    let mut event = sqs_event(&batch);
    for record in event["Records"].as_array_mut().into_iter().flatten() {
        record["attributes"]["MessageGroupId"] = json!("tenant-a");
    }
    let response = stack.invoke_consumer(&event).await?;
    ensure!(reported_failures(&response)?.is_empty(), "{response}");
    let most = proxy.max_in_flight(Op::S3PutObject);
    ensure!(
        most == 20,
        "{most} PutObject calls at once, expected all 20"
    );
    let stored = stored_message_ids(&stack).await?;
    ensure!(
        batch.iter().all(|(id, _)| stored.contains(id)),
        "all stored"
    );
    Ok(())
}
