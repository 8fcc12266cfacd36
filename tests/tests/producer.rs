//! The producer end to end, its SQS calls through the fault proxy: lost
//! responses with and without an idempotency key, a black-holed endpoint,
//! a missing queue, and FIFO order per group.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use pipeline_core::{message_record_id, s3_key, EnqueueResponse};
use serde_json::{json, Value};
use tests::proxy::{Fault, FaultProxy, Op, Rule};
use tests::{endpoint, wait_until, Stack};

const SETTLE: Duration = Duration::from_secs(60);

async fn producer_through(stack: &Stack, proxy: &FaultProxy) -> Result<()> {
    stack
        .set_function_env(
            "PRODUCER_FUNCTION_NAME",
            &[("AWS_ENDPOINT_URL_SQS", proxy.url())],
        )
        .await
}

async fn drained(stack: &Stack) -> Result<()> {
    wait_until("the queue to drain", SETTLE, || async {
        Ok((stack.depth("QUEUE_URL").await? == (0, 0)).then_some(()))
    })
    .await
}

/// Posts until every message is accepted (a client retrying what failed,
/// always with the same request and key), at most `tries` times.
async fn post_until_accepted(
    stack: &Stack,
    body: &Value,
    headers: &[(&str, &str)],
    tries: usize,
) -> Result<Vec<EnqueueResponse>> {
    let mut answers = Vec::new();
    for _ in 0..tries {
        let (status, answer) = stack.post_messages_with(body, headers).await?;
        let answer: EnqueueResponse = serde_json::from_value(answer)?;
        let done = status == 202;
        answers.push(answer);
        if done {
            break;
        }
    }
    Ok(answers)
}

#[tokio::test]
async fn a_lost_response_resent_with_a_key_is_one_record_and_without_a_key_a_duplicate(
) -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("prod-lost", &[]).await?;
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule::new(Op::SqsSendMessageBatch, Fault::DropResponse, 1.0).limit(1)],
    )
    .await?;
    producer_through(&stack, &proxy).await?;

    // Keyed: SQS took the batch, the answer was lost, the send was repeated
    // (by the SDK or by the client): the queue held each message twice.
    let keyed: Vec<Value> = (0..5).map(|i| json!({"n": i, "test": "keyed"})).collect();
    let headers = [("Idempotency-Key", "lost-1")];
    let answers = post_until_accepted(&stack, &Value::Array(keyed.clone()), &headers, 3).await?;
    ensure!(
        proxy.injected(Op::SqsSendMessageBatch) == 1,
        "the response was dropped"
    );
    ensure!(
        proxy.seen(Op::SqsSendMessageBatch) >= 2,
        "the batch reached SQS again after the lost response"
    );
    // The client's own answer is lost too: it sends the same request again.
    let (status, again) = stack
        .post_messages_with(&Value::Array(keyed), &headers)
        .await?;
    ensure!(status == 202, "resend: {status} {again}");
    let again: EnqueueResponse = serde_json::from_value(again)?;
    let last = answers.last().cloned().unwrap_or_default();
    let want: Vec<String> = (0..5)
        .map(|i| message_record_id("", Some(&format!("lost-1/{i}"))).to_string())
        .collect();
    let ids = |r: &EnqueueResponse| r.accepted.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    ensure!(
        ids(&last) == want && ids(&again) == want,
        "record ids come from the key"
    );
    drained(&stack).await?;
    let items = wait_until("five keyed items", SETTLE, || async {
        let items = stack.items().await?;
        Ok((items.len() >= 5).then_some(items))
    })
    .await?;
    let stored: HashSet<String> = items.iter().map(|r| r.id.clone()).collect();
    ensure!(
        items.len() == 5 && stored == want.iter().cloned().collect(),
        "with a key, one item per message: {} items",
        items.len()
    );
    let keys = stack.object_keys().await?;
    ensure!(keys.len() == 5, "one object per message: {keys:?}");
    for id in &want {
        let key = format!("records/{id}.json");
        ensure!(keys.contains(&key), "object {key}");
    }

    // Unkeyed: the same lost response leaves a duplicate, as the README says.
    proxy.set_rules(vec![Rule::new(
        Op::SqsSendMessageBatch,
        Fault::DropResponse,
        1.0,
    )
    .limit(1)]);
    let unkeyed: Vec<Value> = (0..5).map(|i| json!({"n": i, "test": "unkeyed"})).collect();
    post_until_accepted(&stack, &Value::Array(unkeyed), &[], 3).await?;
    drained(&stack).await?;
    let items = wait_until("the unkeyed items", SETTLE, || async {
        let items = stack.items().await?;
        Ok((items.len() >= 10).then_some(items))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let items = stack.items().await.unwrap_or(items);
    ensure!(
        items.len() == 15,
        "without a key each of the 5 messages is stored twice: {} items in all (5 keyed)",
        items.len()
    );
    Ok(())
}

#[tokio::test]
async fn a_black_holed_sqs_is_answered_before_the_deadline_with_exact_accounting() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("prod-stall", &[]).await?;
    let proxy =
        FaultProxy::start(
            &endpoint(),
            vec![Rule::new(Op::SqsSendMessageBatch, Fault::Stall, 1.0)
                .when_body_contains("black-hole")],
        )
        .await?;
    producer_through(&stack, &proxy).await?;
    // Chunk 0-9 goes through, chunks 10-19 and 20-24 never answer.
    let batch: Vec<Value> = (0..25)
        .map(|i| {
            if i < 10 {
                json!({"n": i})
            } else {
                json!({"n": i, "x": "black-hole"})
            }
        })
        .collect();
    let started = Instant::now();
    let (status, body) = stack.post_messages(&Value::Array(batch)).await?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(15),
        "answered after {took:?}, past the function timeout"
    );
    ensure!(status == 207, "status {status}: {body}");
    let answer: EnqueueResponse = serde_json::from_value(body.clone())?;
    let accepted: Vec<usize> = answer.accepted.iter().map(|a| a.index).collect();
    let failed: Vec<usize> = answer.failed.iter().map(|f| f.index).collect();
    ensure!(
        accepted == (0..10).collect::<Vec<_>>(),
        "accepted {accepted:?}"
    );
    ensure!(failed == (10..25).collect::<Vec<_>>(), "failed {failed:?}");
    ensure!(answer.failed.iter().all(|f| f.retryable), "{body}");
    drained(&stack).await?;
    let want: HashSet<String> = answer.accepted.iter().map(|a| a.id.clone()).collect();
    let items = wait_until("the accepted items", SETTLE, || async {
        let items = stack.items().await?;
        Ok((items.len() >= 10).then_some(items))
    })
    .await?;
    let stored: HashSet<String> = items.iter().map(|r| r.id.clone()).collect();
    ensure!(
        stored == want,
        "the queue held exactly the accepted messages"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_queue_is_not_retried_not_retryable_and_names_no_account() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("prod-noq", &[]).await?;
    let proxy = FaultProxy::start(&endpoint(), vec![]).await?;
    let queue = stack.output("QUEUE_URL")?;
    let missing = format!("{}-missing", queue.trim_end_matches('/'));
    stack
        .set_function_env(
            "PRODUCER_FUNCTION_NAME",
            &[
                ("AWS_ENDPOINT_URL_SQS", proxy.url()),
                ("QUEUE_URL", missing),
            ],
        )
        .await?;
    let (status, body) = stack.post_messages(&json!([{"n": 1}, {"n": 2}])).await?;
    ensure!(status == 500, "status {status}: {body}");
    ensure!(body["error"] == "queue_misconfigured", "{body}");
    let answer: EnqueueResponse = serde_json::from_value(body.clone())?;
    ensure!(
        answer.failed.len() == 2 && answer.failed.iter().all(|f| !f.retryable),
        "{body}"
    );
    ensure!(
        proxy.seen(Op::SqsSendMessageBatch) == 1,
        "one call, not retried: {}",
        proxy.seen(Op::SqsSendMessageBatch)
    );
    let text = body.to_string();
    ensure!(
        !text.contains("arn:") && !text.contains("000000000000"),
        "{text}"
    );
    ensure!(answer.request_id.is_some(), "a request id to quote: {text}");
    Ok(())
}

#[tokio::test]
async fn fifo_groups_keep_their_order_across_a_failure() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy(
        "prod-fifo",
        &[
            ("QueueType", "fifo"),
            ("BatchSize", "10"),
            ("MaximumBatchingWindowInSeconds", "0"),
            ("ConsumerTimeout", "3"),
            ("QueueVisibilityTimeout", "18"),
        ],
    )
    .await?;
    ensure!(stack.output("QUEUE_URL")?.ends_with(".fifo"));
    // The consumer's S3 put of group a's message 1 fails all three SDK
    // attempts once: the message fails and is redelivered.
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![Rule::new(Op::S3PutObject, Fault::S3InternalError, 1.0)
            .when_body_contains("\"a-1\"")
            .limit(3)],
    )
    .await?;
    stack
        .set_function_env(
            "CONSUMER_FUNCTION_NAME",
            &[("AWS_ENDPOINT_URL_S3", proxy.url())],
        )
        .await?;
    let mut want = Vec::new();
    for group in ["a", "b"] {
        let batch: Vec<Value> = (0..4)
            .map(|i| json!({"seq": format!("{group}-{i}"), "idempotencyKey": format!("fifo-{group}-{i}")}))
            .collect();
        let (status, body) = stack
            .post_messages_with(&Value::Array(batch), &[("Message-Group-Id", group)])
            .await?;
        ensure!(status == 202, "{status} {body}");
        let answer: EnqueueResponse = serde_json::from_value(body)?;
        want.extend(answer.accepted.into_iter().map(|a| (group, a.index, a.id)));
    }
    let items = wait_until(
        "every FIFO message stored",
        Duration::from_secs(90),
        || async {
            let items = stack.items().await?;
            Ok((items.len() >= want.len()).then_some(items))
        },
    )
    .await?;
    ensure!(proxy.injected(Op::S3PutObject) == 3, "the failure happened");
    let stored_at: BTreeMap<String, String> =
        items.into_iter().map(|r| (r.id, r.stored_at)).collect();
    for group in ["a", "b"] {
        let times: Vec<&String> = want
            .iter()
            .filter(|(g, _, _)| *g == group)
            .map(|(_, _, id)| &stored_at[id])
            .collect();
        ensure!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "group {group} stored out of order: {times:?}"
        );
    }
    let keys = stack.object_keys().await?;
    for (_, _, id) in &want {
        ensure!(
            keys.contains(&s3_key("records/", &id.parse()?)),
            "object of {id}"
        );
    }
    Ok(())
}

/// Sends `body` straight to the queue, with the idempotency-key attribute
/// when `key` is given (as `aws sqs send-message --message-attributes` can).
async fn send_raw_keyed(stack: &Stack, body: &str, key: Option<&str>) -> Result<String> {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let mut send = stack
        .sqs
        .send_message()
        .queue_url(stack.output("QUEUE_URL")?)
        .message_body(body);
    if let Some(key) = key {
        send = send.message_attributes(
            pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(key)
                .build()?,
        );
    }
    Ok(send.send().await?.message_id.unwrap_or_default())
}

async fn audit(
    stack: &Stack,
    ledger: &[(String, Option<String>, String)],
) -> Result<(i32, String)> {
    let dir = tests::repo_root().join(".local");
    let path = dir.join(format!("ledger-{}.jsonl", stack.name));
    let lines: Vec<String> = ledger
        .iter()
        .map(|(message_id, id, key)| {
            json!({"messageId": message_id, "id": id, "key": key}).to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n"))?;
    let outputs = dir.join(format!("outputs-{}.env", stack.name));
    let audit = tests::audit::run(&path, &outputs, Duration::from_secs(60)).await?;
    Ok((audit.code, format!("{}{}", audit.table, audit.verdict)))
}

#[tokio::test]
async fn the_audit_counts_duplicates_by_content_and_fails_on_a_planted_one() -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("prod-audit", &[]).await?;
    // Keyed copies sent straight to the queue are one record: the audit passes.
    let body = |k: &str| json!({"idempotencyKey": k, "n": 1}).to_string();
    let mut ledger = Vec::new();
    for key in ["audit-1", "audit-1", "audit-2"] {
        let message_id = send_raw_keyed(&stack, &body(key), Some(key)).await?;
        let id = message_record_id(&message_id, Some(key)).to_string();
        ledger.push((message_id, Some(id), key.to_owned()));
    }
    drained(&stack).await?;
    let (code, text) = audit(&stack, &ledger).await?;
    ensure!(
        code == 0,
        "keyed copies are one record, the audit passes:\n{text}"
    );
    // The same body twice without the attribute: two records, one key.
    for _ in 0..2 {
        let message_id = send_raw_keyed(&stack, &body("audit-3"), None).await?;
        ledger.push((message_id, None, "audit-3".to_owned()));
    }
    drained(&stack).await?;
    let (code, text) = audit(&stack, &ledger).await?;
    ensure!(
        code == 1,
        "a planted duplicate fails the audit (exit {code}):\n{text}"
    );
    ensure!(
        text.contains("| **duplicated** | 1 |")
            && text.contains("by content (two objects, one key) | 1 |"),
        "{text}"
    );
    Ok(())
}
