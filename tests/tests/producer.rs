//! The producer end to end, its SQS calls through the fault proxy: lost
//! responses with and without an idempotency key, a black-holed endpoint,
//! a missing queue, FIFO order per group from the request to the stored
//! record, and the audit of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use pipeline_core::{message_record_id, s3_key, EnqueueResponse};
use serde_json::{json, Value};
use tests::proxy::{Fault, FaultProxy, Op, Rule};
use tests::{endpoint, wait_until, Stack};

const SETTLE: Duration = Duration::from_secs(60);

/// A FIFO stack whose redeliveries come quickly: at most 10 messages a
/// batch and no batching window (AWS's rules for FIFO), the shortest
/// visibility timeout AWS accepts for a 3 s function (6 x).
const FIFO_STACK: &[(&str, &str)] = &[
    ("QueueType", "fifo"),
    ("BatchSize", "10"),
    ("MaximumBatchingWindowInSeconds", "0"),
    ("ConsumerTimeout", "3"),
    ("QueueVisibilityTimeout", "18"),
];

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
    let stack = Stack::deploy("prod-fifo", FIFO_STACK).await?;
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

/// What the order check makes of every stored record of the stack.
async fn stored_order(stack: &Stack) -> Result<tests::audit::OrderCheck> {
    let stored_at: HashMap<String, String> = stack
        .items()
        .await?
        .into_iter()
        .map(|r| (r.id, r.stored_at))
        .collect();
    let mut placements = Vec::new();
    for key in stack.object_keys().await? {
        let object = stack.object(&key).await?;
        let id = key.trim_start_matches("records/").trim_end_matches(".json");
        placements.extend(tests::audit::placed(&object, stored_at.get(id).cloned()));
    }
    Ok(tests::audit::check_order(&placements))
}

#[tokio::test]
async fn fifo_order_holds_from_request_to_stored_record_and_the_audit_catches_a_planted_swap(
) -> Result<()> {
    tests::needs_emulator!();
    let stack = Stack::deploy("prod-order", FIFO_STACK).await?;
    // In the middle of the request: group a's first call is slow (sent
    // concurrently, its next calls would land first); group b's second call
    // fails all three SDK attempts (the rest of b must wait for the client);
    // SQS fails the tail of group c's second call once (sent again before
    // c's next call, or it would land behind it).
    let proxy = FaultProxy::start(
        &endpoint(),
        vec![
            Rule::new(
                Op::SqsSendMessageBatch,
                Fault::Delay(Duration::from_millis(500)),
                1.0,
            )
            .when_body_contains("slow-call")
            .limit(1),
            Rule::new(Op::SqsSendMessageBatch, Fault::SqsInternalError, 1.0)
                .when_body_contains("failing-call")
                .limit(3),
            Rule::new(Op::SqsSendMessageBatch, Fault::SqsPartialFailed(0.3), 1.0)
                .when_body_contains("failing-tail")
                .limit(1),
        ],
    )
    .await?;
    producer_through(&stack, &proxy).await?;
    let run = tests::unique("order");
    let groups = ["a", "b", "c"];
    let per_group = 25;
    let mut messages = Vec::new();
    for seq in 0..per_group {
        for group in groups {
            let mark = match (group, seq) {
                ("a", 3) => "slow-call",
                ("b", 12) => "failing-call",
                ("c", 15) => "failing-tail",
                _ => "",
            };
            messages.push(json!({
                "messageGroupId": format!("{run}-{group}"),
                "groupSeq": seq,
                "idempotencyKey": format!("{run}-{group}-{seq}"),
                "mark": mark,
            }));
        }
    }
    // A client that resends what failed, in order, with the same keys.
    let mut pending: Vec<Value> = messages.clone();
    let mut ledger = Vec::new();
    let mut first_answer = None;
    for _ in 0..5 {
        if pending.is_empty() {
            break;
        }
        let (status, body) = stack.post_messages(&Value::Array(pending.clone())).await?;
        let answer: EnqueueResponse = serde_json::from_value(body.clone())
            .map_err(|e| anyhow::anyhow!("{status} {body}: {e}"))?;
        for a in &answer.accepted {
            let key = pending[a.index]["idempotencyKey"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            ledger.push((a.message_id.clone(), Some(a.id.clone()), key));
        }
        pending = answer
            .failed
            .iter()
            .map(|f| pending[f.index].clone())
            .collect();
        first_answer.get_or_insert(answer);
    }
    ensure!(pending.is_empty(), "still not accepted: {pending:?}");
    let total = groups.len() * per_group as usize;
    wait_until("every message stored", Duration::from_secs(120), || async {
        Ok((stack.items().await?.len() >= total).then_some(()))
    })
    .await?;
    let order = stored_order(&stack).await?;
    ensure!(
        (order.groups, order.records) == (3, total),
        "three groups of {per_group} stored once each: {order:?}"
    );
    ensure!(
        order.without_sequence_number == 0,
        "every object keeps its SequenceNumber: {order:?}"
    );
    ensure!(
        order.violations() == 0,
        "stored in the order sent: {order:?}"
    );
    // What the producer answered the first time.
    let first = first_answer.unwrap_or_default();
    let code_of = |group: &str, seq: u64| {
        first
            .failed
            .iter()
            .find(|f| {
                messages[f.index]["messageGroupId"] == format!("{run}-{group}")
                    && messages[f.index]["groupSeq"] == seq
            })
            .map(|f| f.code.clone())
    };
    ensure!(
        code_of("b", 10).as_deref() == Some("queue_unavailable")
            && code_of("b", 20).as_deref() == Some("held_back_for_order"),
        "group b's failed call held back the rest of b: {:?}",
        first.failed
    );
    ensure!(
        code_of("a", 10).is_none() && code_of("c", 17).is_none(),
        "groups a and c went through whole: {:?}",
        first.failed
    );
    ensure!(
        proxy.injected(Op::SqsSendMessageBatch) == 5,
        "every fault fired"
    );

    let (code, text) = audit(&stack, &ledger).await?;
    ensure!(code == 0, "the audit passes:\n{text}");
    ensure!(
        text.contains("| **order violations**: queue order (SequenceNumber) | 0 |"),
        "{text}"
    );

    // Straight to the queue, one message sent out of its group's order: the
    // audit fails.
    let group = format!("{run}-planted");
    for seq in [0, 1, 3, 2] {
        let body = json!({"messageGroupId": group, "groupSeq": seq, "idempotencyKey": format!("{group}-{seq}")});
        let out = stack
            .sqs
            .send_message()
            .queue_url(stack.output("QUEUE_URL")?)
            .message_body(body.to_string())
            .message_group_id(&group)
            .message_deduplication_id(format!("{group}-{seq}"))
            .send()
            .await?;
        ledger.push((
            out.message_id.unwrap_or_default(),
            None,
            format!("{group}-{seq}"),
        ));
    }
    wait_until("the planted messages stored", SETTLE, || async {
        Ok((stack.items().await?.len() >= total + 4).then_some(()))
    })
    .await?;
    let (code, text) = audit(&stack, &ledger).await?;
    ensure!(
        code == 1,
        "a planted swap fails the audit (exit {code}):\n{text}"
    );
    ensure!(
        text.contains("| **order violations**: queue order (SequenceNumber) | 1 |")
            && text.contains("| groups checked for order (records) | 4 (79) |"),
        "{text}"
    );
    Ok(())
}
