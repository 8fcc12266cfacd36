//! The whole pipeline, deployed from `infra/template.yaml` into the local
//! emulator: one stack per test, so tests run in parallel and never see
//! each other's data.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use aws_sdk_lambda::primitives::Blob;
use pipeline_core::{record_id, s3_key, EnqueueResponse};
use serde_json::{json, Value};
use tests::{wait_until, Stack};

const SETTLE: Duration = Duration::from_secs(90);

/// The body as the consumer should store it: JSON when it parses, else a string.
fn stored_body(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

async fn wait_for_items(stack: &Stack, n: usize) -> Result<()> {
    wait_until(&format!("{n} items in the table"), SETTLE, || async {
        let items = stack.items().await?;
        ensure!(
            items.len() <= n,
            "more items than messages: {}",
            items.len()
        );
        Ok((items.len() == n).then_some(()))
    })
    .await
}

#[tokio::test]
async fn producer_and_raw_messages_each_end_as_one_object_and_one_item() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("e2e-flow", &[]).await?;
    let mut sent: HashMap<String, String> = HashMap::new();

    let batch: Vec<Value> = (0..20).map(|i| json!({"n": i, "kind": "batch"})).collect();
    let (status, body) = stack.post_messages(&Value::Array(batch.clone())).await?;
    ensure!(status == 202, "POST of 20 answered {status}: {body}");
    let answer: EnqueueResponse = serde_json::from_value(body)?;
    ensure!(
        answer.accepted.len() == 20 && answer.failed.is_empty(),
        "{answer:?}"
    );
    for accepted in &answer.accepted {
        ensure!(accepted.id == record_id(&accepted.message_id).to_string());
        sent.insert(
            accepted.message_id.clone(),
            batch[accepted.index].to_string(),
        );
    }

    let single = json!({"hello": "world", "big": 12345678901234567890u64});
    let (status, body) = stack.post_messages(&single).await?;
    ensure!(status == 202, "POST of one answered {status}: {body}");
    let answer: EnqueueResponse = serde_json::from_value(body)?;
    sent.insert(answer.accepted[0].message_id.clone(), single.to_string());

    for raw in [
        "hello",
        r#"{"raw":true}"#,
        "héllo \u{1F980}",
        "123",
        "[1,2]",
    ] {
        let message_id = stack.send_raw(raw).await?;
        sent.insert(message_id, raw.to_owned());
    }

    wait_for_items(&stack, sent.len()).await?;
    let items = stack.items().await?;
    let by_message: HashMap<&str, _> = items.iter().map(|i| (i.message_id.as_str(), i)).collect();
    ensure!(by_message.len() == sent.len(), "one item per message id");
    let keys: HashSet<String> = stack.object_keys().await?.into_iter().collect();
    ensure!(
        keys.len() == sent.len(),
        "{} objects for {} messages",
        keys.len(),
        sent.len()
    );

    for (message_id, raw) in &sent {
        let id = record_id(message_id);
        let key = s3_key("records/", &id);
        let item = by_message
            .get(message_id.as_str())
            .context("item for message")?;
        ensure!(item.id == id.to_string() && item.s3_key == key, "{item:?}");
        ensure!(item.body_bytes == raw.len() as u64, "{item:?}");
        let object = stack.object(&key).await?;
        ensure!(object["id"] == id.to_string(), "{object}");
        ensure!(object["messageId"] == message_id.as_str(), "{object}");
        ensure!(
            object["body"] == stored_body(raw),
            "body of {message_id}: {object}"
        );
    }

    let (message_id, _) = sent.iter().next().context("a message")?;
    let (status, record) = stack.get_message(message_id).await?;
    ensure!(
        status == 200 && record["messageId"] == message_id.as_str(),
        "{status} {record}"
    );

    wait_until("the queue to drain", SETTLE, || async {
        Ok((stack.depth("QUEUE_URL").await? == (0, 0)).then_some(()))
    })
    .await?;
    ensure!(
        stack.dlq_bodies().await?.is_empty(),
        "nothing may be dead-lettered"
    );
    Ok(())
}

#[tokio::test]
async fn a_message_that_always_fails_is_retried_and_ends_in_the_dlq() -> Result<()> {
    tests::needs_emulator!();
    let marker = tests::unique("poison");
    let stack = Stack::deploy(
        "e2e-dlq",
        // Visibility 18 s, 6 x the 3 s timeout as AWS asks; three receives
        // (MaxReceiveCount 3, which AWS accepts) put the poison message in the
        // DLQ after about 55 s instead of the default's five.
        &[
            ("RejectMarker", &marker),
            ("QueueVisibilityTimeout", "18"),
            ("ConsumerTimeout", "3"),
            ("MaxReceiveCount", "3"),
        ],
    )
    .await?;
    let poison = format!(r#"{{"payload":"{marker}"}}"#);
    let poison_id = stack.send_raw(&poison).await?;
    for i in 0..3 {
        stack.send_raw(&format!(r#"{{"good":{i}}}"#)).await?;
    }

    wait_for_items(&stack, 3).await?;
    let dead = wait_until("the poison message in the DLQ", SETTLE, || async {
        let bodies = stack.dlq_bodies().await?;
        Ok((!bodies.is_empty()).then_some(bodies))
    })
    .await?;
    ensure!(dead == vec![poison.clone()], "DLQ holds {dead:?}");
    let items = stack.items().await?;
    ensure!(items.len() == 3, "the good messages are stored once each");
    ensure!(
        items.iter().all(|i| i.message_id != poison_id),
        "the poison message was not stored"
    );
    let key = s3_key("records/", &record_id(&poison_id));
    ensure!(
        !stack.object_keys().await?.contains(&key),
        "no object for the poison message"
    );
    Ok(())
}

#[tokio::test]
async fn the_same_message_delivered_twice_yields_one_object_and_one_item() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("e2e-twice", &[]).await?;
    let function = stack.output("CONSUMER_FUNCTION_NAME")?.to_owned();
    let message_id = uuid::Uuid::new_v4().to_string();
    let event = json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": "synthetic",
        "body": "{\"order\":42}",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1798329723000",
                       "ApproximateFirstReceiveTimestamp": "1798329723456"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:synthetic",
        "awsRegion": "us-east-1"
    }]});
    let key = s3_key("records/", &record_id(&message_id));
    let mut objects = Vec::new();
    for delivery in 1..=2 {
        let out = stack
            .lambda
            .invoke()
            .function_name(&function)
            .payload(Blob::new(serde_json::to_vec(&event)?))
            .send()
            .await?;
        ensure!(
            out.function_error.is_none(),
            "delivery {delivery} failed: {:?}",
            out.payload
        );
        let response: Value =
            serde_json::from_slice(out.payload.as_ref().map(Blob::as_ref).unwrap_or(b"null"))?;
        ensure!(
            response == json!({"batchItemFailures": []}),
            "delivery {delivery}: {response}"
        );
        objects.push(stack.object(&key).await?);
    }
    ensure!(
        objects[0] == objects[1],
        "redelivery rewrote a different object"
    );
    let items = stack.items().await?;
    ensure!(
        items.len() == 1 && items[0].message_id == message_id,
        "{items:?}"
    );
    ensure!(
        stack.object_keys().await? == vec![key],
        "exactly one object"
    );
    Ok(())
}
