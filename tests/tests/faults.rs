//! Faults injected between the functions and the emulator: afterwards every
//! message is stored exactly once or is in the DLQ, and what the consumer
//! reports as failed is exactly what was not stored.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Result};
use pipeline_core::{record_id, s3_key, EnqueueResponse};
use serde_json::{json, Value};
use tests::proxy::{Fault, FaultProxy, Op, Rule};
use tests::{endpoint, reported_failures, sqs_event, wait_until, Stack};

const SETTLE: Duration = Duration::from_secs(120);

/// What the stack holds for the given message ids.
struct Census {
    stored: HashSet<String>,
    dead: HashSet<String>,
    objects: HashSet<String>,
}

async fn census(stack: &Stack, ids: &[String]) -> Result<Census> {
    let wanted: HashSet<&String> = ids.iter().collect();
    let items = stack.items().await?;
    let stored = items
        .into_iter()
        .map(|i| i.message_id)
        .filter(|m| wanted.contains(m))
        .collect();
    let dead = stack
        .dlq_message_ids()
        .await?
        .into_iter()
        .filter(|m| wanted.contains(m))
        .collect();
    let objects = stack.object_keys().await?.into_iter().collect();
    Ok(Census {
        stored,
        dead,
        objects,
    })
}

/// Waits until every id is stored or dead-lettered, then checks each is
/// exactly one of the two, with one object per stored message and no
/// record that was not sent.
async fn assert_each_stored_once_or_dead(stack: &Stack, ids: &[String]) -> Result<Census> {
    let c = wait_until("every message stored or dead-lettered", SETTLE, || async {
        let c = census(stack, ids).await?;
        Ok((c.stored.len() + c.dead.len() >= ids.len()).then_some(c))
    })
    .await?;
    for id in ids {
        let stored = c.stored.contains(id);
        ensure!(
            stored != c.dead.contains(id),
            "message {id}: stored={stored}, dead-lettered={}",
            !stored
        );
        if stored {
            ensure!(
                c.objects.contains(&s3_key("records/", &record_id(id))),
                "message {id} has an item but no object"
            );
        }
    }
    let items = stack.items().await?;
    ensure!(
        items.len() == c.stored.len(),
        "{} items for {} stored messages",
        items.len(),
        c.stored.len()
    );
    wait_until("the queue to drain", SETTLE, || async {
        Ok((stack.depth("QUEUE_URL").await? == (0, 0)).then_some(()))
    })
    .await?;
    Ok(c)
}

fn bodies(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| json!({"test": tag, "n": i}).to_string())
        .collect()
}

#[tokio::test]
async fn s3_and_dynamodb_errors_lose_and_duplicate_nothing() -> Result<()> {
    tests::needs_emulator!();
    // Visibility 6 x the 4 s timeout, as AWS asks: a message whose retries
    // all failed comes back after 24 s, so a few rounds fit in SETTLE.
    let stack = Stack::deploy(
        "fault-5xx",
        &[("QueueVisibilityTimeout", "24"), ("ConsumerTimeout", "4")],
    )
    .await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![
            Rule::new(Op::S3PutObject, Fault::S3SlowDown, 0.2),
            Rule::new(Op::S3PutObject, Fault::S3InternalError, 0.1),
            Rule::new(
                Op::DynamoBatchWriteItem,
                Fault::DynamoThroughputExceeded,
                0.2,
            ),
            Rule::new(Op::DynamoBatchWriteItem, Fault::DynamoThrottling, 0.1),
            Rule::new(Op::DynamoBatchWriteItem, Fault::DynamoInternalError, 0.1),
        ],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let ids = stack.send_raw_batch(&bodies(60, "5xx")).await?;
    let c = assert_each_stored_once_or_dead(&stack, &ids).await?;
    ensure!(
        proxy.injected(Op::S3PutObject) > 0 && proxy.injected(Op::DynamoBatchWriteItem) > 0,
        "faults were injected"
    );
    ensure!(
        c.stored.len() == ids.len(),
        "with retries every message is stored; dead: {:?}",
        c.dead
    );
    Ok(())
}

#[tokio::test]
async fn connection_resets_lose_and_duplicate_nothing() -> Result<()> {
    tests::needs_emulator!();
    // As above: failed messages come back after 24 s (6 x the 4 s timeout).
    let stack = Stack::deploy(
        "fault-reset",
        &[("QueueVisibilityTimeout", "24"), ("ConsumerTimeout", "4")],
    )
    .await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![
            Rule::new(Op::S3PutObject, Fault::Reset, 0.2),
            Rule::new(Op::DynamoBatchWriteItem, Fault::Reset, 0.25),
        ],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let ids = stack.send_raw_batch(&bodies(40, "reset")).await?;
    let c = assert_each_stored_once_or_dead(&stack, &ids).await?;
    ensure!(proxy.injected(Op::S3PutObject) > 0 && proxy.injected(Op::DynamoBatchWriteItem) > 0);
    ensure!(c.stored.len() == ids.len(), "dead: {:?}", c.dead);
    Ok(())
}

#[tokio::test]
async fn reported_failures_are_exactly_the_unstored_messages_and_their_retry_stores_them(
) -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("fault-exact", &[]).await?;
    // Every BatchWriteItem call leaves half its items unprocessed, and the
    // first S3 puts fail outright (past the SDK's own retries).
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![
            Rule {
                op: Op::S3PutObject,
                fault: Fault::S3InternalError,
                share: 1.0,
                limit: Some(6),
                body_contains: None,
            },
            Rule::new(Op::DynamoBatchWriteItem, Fault::Unprocessed(0.5), 1.0),
        ],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let messages: Vec<(String, String)> = (0..40)
        .map(|i| {
            (
                uuid::Uuid::new_v4().to_string(),
                json!({"n": i}).to_string(),
            )
        })
        .collect();
    let response = stack.invoke_consumer(&sqs_event(&messages)).await?;
    let failed: HashSet<String> = reported_failures(&response)?.into_iter().collect();
    let ids: Vec<String> = messages.iter().map(|(id, _)| id.clone()).collect();
    let stored: HashSet<String> = census(&stack, &ids).await?.stored;
    ensure!(
        !failed.is_empty(),
        "the faults must make some messages fail"
    );
    for id in &ids {
        ensure!(
            failed.contains(id) != stored.contains(id),
            "message {id}: reported={}, stored={}",
            failed.contains(id),
            stored.contains(id)
        );
    }
    ensure!(
        failed.iter().all(|id| ids.contains(id)),
        "only ids of the batch are reported"
    );

    // Redeliver exactly the reported messages, as the event source mapping does.
    proxy.set_rules(vec![]);
    let retry: Vec<(String, String)> = messages
        .iter()
        .filter(|(id, _)| failed.contains(id))
        .cloned()
        .collect();
    let response = stack.invoke_consumer(&sqs_event(&retry)).await?;
    ensure!(
        reported_failures(&response)?.is_empty(),
        "retry failed: {response}"
    );
    let c = census(&stack, &ids).await?;
    ensure!(c.stored.len() == ids.len(), "all stored after the retry");
    ensure!(stack.items().await?.len() == ids.len(), "no duplicates");
    let ours: usize = ids
        .iter()
        .filter(|id| c.objects.contains(&s3_key("records/", &record_id(id))))
        .count();
    ensure!(
        ours == ids.len() && c.objects.len() == ids.len(),
        "one object per message"
    );
    Ok(())
}

#[tokio::test]
async fn a_call_slower_than_the_function_timeout_is_retried_not_lost() -> Result<()> {
    tests::needs_emulator!();
    // Timeout 3 s, each delayed call 8 s: the consumer stops waiting at its
    // deadline margin (300 ms before the timeout) and reports the unfinished
    // messages; the first invocation has ended long before the queue
    // redelivers them, 18 s later (6 x the timeout, as AWS asks, so no batch
    // is redelivered while it still runs). The test waits about 25 s.
    let stack = Stack::deploy(
        "fault-slow",
        &[("QueueVisibilityTimeout", "18"), ("ConsumerTimeout", "3")],
    )
    .await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule {
            op: Op::DynamoBatchWriteItem,
            fault: Fault::Delay(Duration::from_secs(8)),
            share: 1.0,
            limit: Some(2),
            body_contains: None,
        }],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let ids = stack.send_raw_batch(&bodies(20, "slow")).await?;
    let c = assert_each_stored_once_or_dead(&stack, &ids).await?;
    ensure!(
        proxy.injected(Op::DynamoBatchWriteItem) == 2,
        "the delays were injected"
    );
    ensure!(c.stored.len() == ids.len(), "dead: {:?}", c.dead);
    Ok(())
}

#[tokio::test]
async fn a_consumer_killed_mid_batch_has_its_batch_redelivered_and_stored_once() -> Result<()> {
    tests::needs_emulator!();
    // The killed batch stays in flight until its visibility timeout: 30 s
    // (6 x the 5 s timeout), then it is redelivered and stored.
    let stack = Stack::deploy(
        "fault-kill",
        &[("QueueVisibilityTimeout", "30"), ("ConsumerTimeout", "5")],
    )
    .await?;
    // Hold the first S3 puts long enough to kill the process while they wait.
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule {
            op: Op::S3PutObject,
            fault: Fault::Delay(Duration::from_secs(4)),
            share: 1.0,
            limit: Some(10),
            body_contains: None,
        }],
    )
    .await?;
    stack.consumer_through(&proxy.url()).await?;
    let ids = stack.send_raw_batch(&bodies(10, "kill")).await?;
    let pids = wait_until(
        "a consumer process mid-batch",
        Duration::from_secs(30),
        || async {
            let busy = proxy.seen(Op::S3PutObject) > 0;
            let pids = stack.consumer_pids()?;
            Ok((busy && !pids.is_empty()).then_some(pids))
        },
    )
    .await?;
    for pid in &pids {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()?;
    }
    let c = assert_each_stored_once_or_dead(&stack, &ids).await?;
    ensure!(c.stored.len() == ids.len(), "dead: {:?}", c.dead);
    Ok(())
}

#[tokio::test]
async fn producer_never_acknowledges_a_message_that_was_not_enqueued() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("fault-sqs", &[]).await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![
            Rule::new(Op::SqsSendMessageBatch, Fault::SqsPartialFailed(0.3), 0.5),
            Rule::new(Op::SqsSendMessageBatch, Fault::SqsInternalError, 0.2),
        ],
    )
    .await?;
    stack
        .set_function_env(
            "PRODUCER_FUNCTION_NAME",
            &[("AWS_ENDPOINT_URL_SQS", proxy.url())],
        )
        .await?;
    let batch: Vec<Value> = (0..200).map(|i| json!({"n": i, "test": "sqs"})).collect();
    let (status, body) = stack.post_messages(&Value::Array(batch)).await?;
    let answer: EnqueueResponse = serde_json::from_value(body.clone())?;
    ensure!(
        proxy.injected(Op::SqsSendMessageBatch) > 0,
        "faults were injected"
    );
    ensure!(
        answer.accepted.len() + answer.failed.len() == 200,
        "every message is accounted for: {body}"
    );
    ensure!(
        (answer.failed.is_empty() && status == 202) || (!answer.failed.is_empty() && status == 207),
        "status {status} for {} failed",
        answer.failed.len()
    );
    let accepted: HashMap<String, usize> = answer
        .accepted
        .iter()
        .map(|a| (a.message_id.clone(), a.index))
        .collect();
    let ids: Vec<String> = accepted.keys().cloned().collect();
    let c = assert_each_stored_once_or_dead(&stack, &ids).await?;
    ensure!(c.dead.is_empty());
    let items = stack.items().await?;
    ensure!(
        items.len() == accepted.len(),
        "{} stored, {} acknowledged: a failed entry was enqueued",
        items.len(),
        accepted.len()
    );
    Ok(())
}
