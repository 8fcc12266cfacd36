//! The template's ways to run, end to end: each combination of queue type
//! (standard, FIFO) and polling mode (on-demand, provisioned) that the
//! emulator can deploy is deployed and sent messages, which must each end as
//! one object and one item. Lambda Managed Instances cannot run locally (the
//! emulator does not know `AWS::Lambda::CapacityProvider`); it is checked
//! offline by infra/check.sh (see infra/EMULATOR-GAPS.md).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use pipeline_core::{record_id, s3_key};
use serde_json::json;
use tests::{wait_until, Stack};

const SETTLE: Duration = Duration::from_secs(90);

/// Sends `n` messages straight to the queue; on a FIFO queue in `groups`
/// message groups, each with its own deduplication id (the queue has no
/// content-based deduplication). Returns the message ids.
async fn send(stack: &Stack, n: usize, groups: usize, fifo: bool) -> Result<Vec<String>> {
    let queue = stack.output("QUEUE_URL")?;
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let mut entries = Vec::new();
        for &i in chunk {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(json!({"test": "modes", "n": i}).to_string());
            if fifo {
                entry = entry
                    .message_group_id(format!("group-{}", i % groups))
                    .message_deduplication_id(uuid::Uuid::new_v4().to_string());
            }
            entries.push(entry.build()?);
        }
        let out = stack
            .sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await?;
        ensure!(out.failed.is_empty(), "failed entries: {:?}", out.failed);
        let mut ok = out.successful;
        ok.sort_by_key(|e| e.id.parse::<usize>().unwrap_or(usize::MAX));
        ids.extend(ok.into_iter().map(|e| e.message_id));
    }
    Ok(ids)
}

/// Deploys the variant, checks what its queue and mapping look like, sends
/// messages and waits until each is stored once.
async fn run_variant(prefix: &str, queue_type: &str, polling: &str) -> Result<()> {
    let fifo = queue_type == "fifo";
    let stack = Stack::deploy(
        prefix,
        &[("QueueType", queue_type), ("PollingMode", polling)],
    )
    .await?;

    // The queue is what the variant asks for.
    let attrs = stack
        .sqs
        .get_queue_attributes()
        .queue_url(stack.output("QUEUE_URL")?)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let attr = |k: QueueAttributeName| attrs.get(&k).cloned().unwrap_or_default();
    ensure!(
        attr(QueueAttributeName::MaximumMessageSize) == "1048576",
        "MaximumMessageSize {:?}",
        attr(QueueAttributeName::MaximumMessageSize)
    );
    if fifo {
        ensure!(
            attr(QueueAttributeName::FifoQueue) == "true",
            "not FIFO: {attrs:?}"
        );
        ensure!(attr(QueueAttributeName::DeduplicationScope) == "messageGroup");
        ensure!(attr(QueueAttributeName::FifoThroughputLimit) == "perMessageGroupId");
        ensure!(attr(QueueAttributeName::ContentBasedDeduplication) == "false");
        ensure!(
            stack.output("DLQ_URL")?.ends_with(".fifo"),
            "a FIFO queue's DLQ is FIFO"
        );
    } else {
        ensure!(
            attr(QueueAttributeName::FifoQueue) != "true",
            "FIFO: {attrs:?}"
        );
    }

    // Provisioned mappings carry no MaximumConcurrency (AWS refuses both).
    let mappings = stack
        .lambda
        .list_event_source_mappings()
        .function_name(stack.output("CONSUMER_FUNCTION_NAME")?)
        .send()
        .await?
        .event_source_mappings
        .unwrap_or_default();
    let mapping = mappings.first().context("the consumer has a mapping")?;
    let max_concurrency = mapping
        .scaling_config
        .as_ref()
        .and_then(|s| s.maximum_concurrency);
    if polling == "provisioned" {
        ensure!(
            max_concurrency.is_none(),
            "provisioned with {max_concurrency:?}"
        );
    } else {
        ensure!(
            max_concurrency == Some(10),
            "on-demand with {max_concurrency:?}"
        );
    }

    let ids = send(&stack, 30, 3, fifo).await?;
    let wanted: HashSet<&String> = ids.iter().collect();
    wait_until("every message stored", SETTLE, || async {
        let stored = stack
            .items()
            .await?
            .into_iter()
            .filter(|i| wanted.contains(&i.message_id))
            .count();
        Ok((stored == ids.len()).then_some(()))
    })
    .await?;
    let items = stack.items().await?;
    ensure!(
        items.len() == ids.len(),
        "{} items for {} messages",
        items.len(),
        ids.len()
    );
    let keys: HashSet<String> = stack.object_keys().await?.into_iter().collect();
    for id in &ids {
        ensure!(
            keys.contains(&s3_key("records/", &record_id(id))),
            "no object for {id}"
        );
    }
    wait_until("the queue to drain", SETTLE, || async {
        Ok((stack.depth("QUEUE_URL").await? == (0, 0)).then_some(()))
    })
    .await?;
    ensure!(
        stack.dlq_bodies().await?.is_empty(),
        "nothing dead-lettered"
    );
    Ok(())
}

#[tokio::test]
async fn standard_queue_on_demand_polling_stores_every_message() -> Result<()> {
    tests::needs_emulator!();
    run_variant("mode-std-od", "standard", "on-demand").await
}

#[tokio::test]
async fn standard_queue_provisioned_polling_stores_every_message() -> Result<()> {
    tests::needs_emulator!();
    run_variant("mode-std-pr", "standard", "provisioned").await
}

#[tokio::test]
async fn fifo_queue_on_demand_polling_stores_every_message() -> Result<()> {
    tests::needs_emulator!();
    run_variant("mode-fifo-od", "fifo", "on-demand").await
}

#[tokio::test]
async fn fifo_queue_provisioned_polling_stores_every_message() -> Result<()> {
    tests::needs_emulator!();
    run_variant("mode-fifo-pr", "fifo", "provisioned").await
}
