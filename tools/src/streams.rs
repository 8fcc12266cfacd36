//! End-to-end plumbing for stream consumers: uniquely named Kinesis streams
//! and DynamoDB tables with a stream, a `provided.al2023` function from a
//! zip, an event source mapping with `ReportBatchItemFailures` and AWS's
//! limits checked before the (lenient) emulator sees it, record puts, and
//! cleanup of all of it. The function is the test double
//! `tests/doubles/stream_bootstrap.py` (zipped on demand; a reader for the
//! log it writes) or one of lambda-batch's examples, the real binary
//! (`create_example`), observed through its log in CloudWatch Logs
//! (`function_log`), as it would be on AWS.
//!
//! What the emulator does with these mappings, and where that is not what AWS
//! does, is in `infra/EMULATOR-GAPS.md` ("Kinesis and DynamoDB Streams").

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
};
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    DestinationConfig, Environment, EventSourcePosition, FunctionCode, FunctionResponseType,
    OnFailure, Runtime, State,
};
use serde::Deserialize;

use crate::{repo_root, sdk_config, unique, wait_until};

/// How long a resource may take to become usable (ACTIVE, Enabled).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The role the functions name. The emulator does not check it; on AWS it
/// would need the stream read permissions (AWSLambdaKinesisExecutionRole).
const ROLE: &str = "arn:aws:iam::000000000000:role/stream-consumer-test";

/// A Kinesis data stream made for one test.
#[derive(Debug, Clone)]
pub struct KinesisStream {
    /// Stream name.
    pub name: String,
    /// Stream ARN (the mapping's event source).
    pub arn: String,
}

/// A DynamoDB table with a stream, made for one test. Its key is one string
/// attribute, `pk`.
#[derive(Debug, Clone)]
pub struct StreamTable {
    /// Table name.
    pub name: String,
    /// The table's `LatestStreamArn` (the mapping's event source).
    pub stream_arn: String,
}

/// One record as PutRecord placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecord {
    /// The partition key given.
    pub partition_key: String,
    /// The shard it went to.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
}

/// Where a new mapping starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record kept: the only deterministic choice for a fresh
    /// stream (a LATEST mapping misses what is put before it reads; the
    /// emulator's Kinesis poller anchors LATEST at its first pass).
    TrimHorizon,
    /// Only records put after the mapping started reading.
    Latest,
}

/// The settings of a stream event source mapping. `Default` is AWS's
/// defaults, with `BatchSize` written out (the emulator's default is 10, not
/// AWS's 100). `FunctionResponseTypes` is always `[ReportBatchItemFailures]`.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    /// `StartingPosition`.
    pub starting_position: StartingPosition,
    /// `BatchSize`, 1-10,000.
    pub batch_size: i32,
    /// `MaximumBatchingWindowInSeconds`, 0-300.
    pub maximum_batching_window_s: i32,
    /// `ParallelizationFactor`, 1-10.
    pub parallelization_factor: i32,
    /// `BisectBatchOnFunctionError`.
    pub bisect_batch_on_function_error: bool,
    /// `MaximumRetryAttempts`, -1 (until the record expires) to 10,000.
    pub maximum_retry_attempts: i32,
    /// `MaximumRecordAgeInSeconds`, -1 (no limit) or 60-604,800.
    pub maximum_record_age_s: i32,
    /// `DestinationConfig.OnFailure.Destination`: an SQS queue, SNS topic or
    /// S3 bucket ARN.
    pub on_failure: Option<String>,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            starting_position: StartingPosition::TrimHorizon,
            batch_size: 100,
            maximum_batching_window_s: 0,
            parallelization_factor: 1,
            bisect_batch_on_function_error: false,
            maximum_retry_attempts: -1,
            maximum_record_age_s: -1,
            on_failure: None,
        }
    }
}

impl MappingSettings {
    /// Checks the settings against the limits AWS enforces on
    /// CreateEventSourceMapping for Kinesis and DynamoDB Streams (the
    /// emulator accepts any value), naming the first one out of range.
    pub fn check(&self) -> Result<()> {
        let in_range = |name: &str, v: i32, lo: i32, hi: i32| {
            ensure!(
                (lo..=hi).contains(&v),
                "{name} = {v} is out of AWS's range {lo}..={hi}"
            );
            Ok(())
        };
        in_range("BatchSize", self.batch_size, 1, 10_000)?;
        in_range(
            "MaximumBatchingWindowInSeconds",
            self.maximum_batching_window_s,
            0,
            300,
        )?;
        in_range("ParallelizationFactor", self.parallelization_factor, 1, 10)?;
        in_range(
            "MaximumRetryAttempts",
            self.maximum_retry_attempts,
            -1,
            10_000,
        )?;
        if self.maximum_record_age_s != -1 {
            in_range(
                "MaximumRecordAgeInSeconds",
                self.maximum_record_age_s,
                60,
                604_800,
            )?;
        }
        if let Some(arn) = &self.on_failure {
            ensure!(
                ["arn:aws:sqs:", "arn:aws:sns:", "arn:aws:s3:"]
                    .iter()
                    .any(|p| arn.starts_with(p)),
                "OnFailure destination {arn} is not an SQS queue, SNS topic or S3 bucket ARN"
            );
        }
        Ok(())
    }
}

/// A resource to delete at cleanup.
#[derive(Debug)]
enum Made {
    Mapping(String),
    Function(String),
    Stream(String),
    Table(String),
    Queue(String),
}

/// Clients for the stream tests, and the resources they made (deleted by
/// [`Streams::cleanup`]).
pub struct Streams {
    /// Kinesis client.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Lambda client.
    pub lambda: aws_sdk_lambda::Client,
    /// SQS client (OnFailure destinations).
    pub sqs: aws_sdk_sqs::Client,
    /// CloudWatch Logs client (the functions' logs).
    pub logs: aws_sdk_cloudwatchlogs::Client,
    made: Mutex<Vec<Made>>,
}

impl Streams {
    /// Clients pointed at the emulator (`AWS_ENDPOINT_URL` / `MINISTACK_PORT`).
    pub async fn connect() -> Self {
        let sdk = sdk_config().await;
        Self {
            kinesis: aws_sdk_kinesis::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            made: Mutex::new(Vec::new()),
        }
    }

    fn remember(&self, made: Made) {
        lock(&self.made).push(made);
    }

    /// Creates a Kinesis stream named after `prefix` with `shards` shards
    /// (provisioned mode) and waits until it is ACTIVE.
    pub async fn create_stream(&self, prefix: &str, shards: i32) -> Result<KinesisStream> {
        let name = unique(prefix);
        self.kinesis
            .create_stream()
            .stream_name(&name)
            .shard_count(shards)
            .send()
            .await
            .with_context(|| format!("CreateStream {name}"))?;
        self.remember(Made::Stream(name.clone()));
        let arn = wait_until(&format!("stream {name} ACTIVE"), READY_TIMEOUT, || async {
            let out = self
                .kinesis
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await
                .with_context(|| format!("DescribeStreamSummary {name}"))?;
            let summary = out
                .stream_description_summary
                .ok_or_else(|| anyhow!("DescribeStreamSummary {name}: no summary"))?;
            Ok((summary.stream_status == StreamStatus::Active).then_some(summary.stream_arn))
        })
        .await?;
        Ok(KinesisStream { name, arn })
    }

    /// Creates an on-demand DynamoDB table named after `prefix`, key `pk`
    /// (string), with a stream of `view`, and waits until it is ACTIVE.
    pub async fn create_table_with_stream(
        &self,
        prefix: &str,
        view: StreamViewType,
    ) -> Result<StreamTable> {
        let name = unique(prefix);
        self.dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(view)
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("CreateTable {name}"))?;
        self.remember(Made::Table(name.clone()));
        let stream_arn = wait_until(&format!("table {name} ACTIVE"), READY_TIMEOUT, || async {
            let table = self
                .dynamodb
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .with_context(|| format!("DescribeTable {name}"))?
                .table
                .ok_or_else(|| anyhow!("DescribeTable {name}: no table"))?;
            Ok(match (table.table_status, table.latest_stream_arn) {
                (Some(TableStatus::Active), Some(arn)) => Some(arn),
                _ => None,
            })
        })
        .await?;
        Ok(StreamTable { name, stream_arn })
    }

    /// Creates a `provided.al2023` function named after `prefix` from the zip
    /// at `zip` (an executable `bootstrap`), with `env` as its environment and
    /// `timeout_s` as its timeout, and waits until it is Active; its name.
    pub async fn create_function(
        &self,
        prefix: &str,
        zip: &Path,
        env: &[(String, String)],
        timeout_s: i32,
    ) -> Result<String> {
        let name = unique(prefix);
        let bytes = std::fs::read(zip).with_context(|| format!("reading {}", zip.display()))?;
        self.lambda
            .create_function()
            .function_name(&name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(ROLE)
            .timeout(timeout_s)
            .code(FunctionCode::builder().zip_file(Blob::new(bytes)).build())
            .environment(
                Environment::builder()
                    .set_variables(Some(env.iter().cloned().collect()))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("CreateFunction {name}"))?;
        self.remember(Made::Function(name.clone()));
        wait_until(
            &format!("function {name} Active"),
            READY_TIMEOUT,
            || async {
                let out = self
                    .lambda
                    .get_function_configuration()
                    .function_name(&name)
                    .send()
                    .await
                    .with_context(|| format!("GetFunctionConfiguration {name}"))?;
                match out.state {
                    Some(State::Failed) => {
                        bail!("function {name} failed to create: {:?}", out.state_reason)
                    }
                    Some(State::Active) => Ok(Some(())),
                    _ => Ok(None),
                }
            },
        )
        .await?;
        Ok(name)
    }

    /// Creates a function running the stream test double, logging to `log`
    /// and answering as `script` says, then `then` (see [`DoubleLog::env`]).
    pub async fn create_double(
        &self,
        log: &DoubleLog,
        script: &[&str],
        then: &str,
        timeout_s: i32,
    ) -> Result<String> {
        self.create_function(
            "stream-double",
            &double_zip()?,
            &log.env(script, then),
            timeout_s,
        )
        .await
    }

    /// Creates a function running lambda-batch's example `example` (the real
    /// binary, built by [`example_binary`](crate::runtime_api::example_binary)),
    /// with `timeout_s` as its timeout.
    pub async fn create_example(&self, example: &str, timeout_s: i32) -> Result<String> {
        let name = example.to_owned();
        let zip = tokio::task::spawn_blocking(move || example_zip(&name)).await??;
        self.create_function(example, &zip, &[], timeout_s).await
    }

    /// The log of `function` so far, from CloudWatch Logs (`/aws/lambda/<name>`),
    /// one [`LoggedInvocation`] per request, in the order they started.
    pub async fn function_log(&self, function: &str) -> Result<Vec<LoggedInvocation>> {
        use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;
        let group = format!("/aws/lambda/{function}");
        let mut pages = self
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .into_paginator()
            .send();
        // (stream, timestamp, message) in the order each stream holds them.
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // No invocation has written anything yet.
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(FilterLogEventsError::ResourceNotFoundException(_))
                    ) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e).with_context(|| format!("FilterLogEvents {group}")),
            };
            for event in page.events.unwrap_or_default() {
                events.push((
                    event.log_stream_name.unwrap_or_default(),
                    event.timestamp.unwrap_or_default(),
                    event.message.unwrap_or_default(),
                ));
            }
        }
        Ok(LoggedInvocation::split(events))
    }

    /// Deletes the mapping `uuid` now (a failing one is retried until then).
    pub async fn delete_mapping(&self, uuid: &str) -> Result<()> {
        self.lambda
            .delete_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .with_context(|| format!("DeleteEventSourceMapping {uuid}"))?;
        lock(&self.made).retain(|m| !matches!(m, Made::Mapping(u) if u == uuid));
        Ok(())
    }

    /// Creates an SQS queue named after `prefix` (an OnFailure destination);
    /// (queue URL, queue ARN).
    pub async fn create_queue(&self, prefix: &str) -> Result<(String, String)> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let name = unique(prefix);
        let url = self
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .with_context(|| format!("CreateQueue {name}"))?
            .queue_url
            .ok_or_else(|| anyhow!("CreateQueue {name}: no URL"))?;
        self.remember(Made::Queue(url.clone()));
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .with_context(|| format!("GetQueueAttributes {url}"))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| anyhow!("queue {url} has no QueueArn"))?;
        Ok((url, arn))
    }

    /// Maps the stream `source_arn` (Kinesis stream or DynamoDB stream) to
    /// `function` with `settings` and `ReportBatchItemFailures`, after
    /// checking the settings against AWS's limits; waits until the mapping
    /// is Enabled and returns its UUID.
    pub async fn create_mapping(
        &self,
        function: &str,
        source_arn: &str,
        settings: &MappingSettings,
    ) -> Result<String> {
        settings.check()?;
        let position = match settings.starting_position {
            StartingPosition::TrimHorizon => EventSourcePosition::TrimHorizon,
            StartingPosition::Latest => EventSourcePosition::Latest,
        };
        let destination = settings.on_failure.as_ref().map(|arn| {
            DestinationConfig::builder()
                .on_failure(OnFailure::builder().destination(arn).build())
                .build()
        });
        let out = self
            .lambda
            .create_event_source_mapping()
            .function_name(function)
            .event_source_arn(source_arn)
            .starting_position(position)
            .batch_size(settings.batch_size)
            .maximum_batching_window_in_seconds(settings.maximum_batching_window_s)
            .parallelization_factor(settings.parallelization_factor)
            .bisect_batch_on_function_error(settings.bisect_batch_on_function_error)
            .maximum_retry_attempts(settings.maximum_retry_attempts)
            .maximum_record_age_in_seconds(settings.maximum_record_age_s)
            .function_response_types(FunctionResponseType::ReportBatchItemFailures)
            .set_destination_config(destination)
            .send()
            .await
            .with_context(|| format!("CreateEventSourceMapping {source_arn} -> {function}"))?;
        let uuid = out
            .uuid
            .ok_or_else(|| anyhow!("CreateEventSourceMapping returned no UUID"))?;
        self.remember(Made::Mapping(uuid.clone()));
        self.wait_mapping_enabled(&uuid).await?;
        Ok(uuid)
    }

    /// Waits until the mapping `uuid` is `Enabled` (AWS: Creating, then
    /// Enabled, within about a minute).
    pub async fn wait_mapping_enabled(&self, uuid: &str) -> Result<()> {
        wait_until(
            &format!("mapping {uuid} Enabled"),
            READY_TIMEOUT,
            || async {
                let out = self
                    .lambda
                    .get_event_source_mapping()
                    .uuid(uuid)
                    .send()
                    .await
                    .with_context(|| format!("GetEventSourceMapping {uuid}"))?;
                Ok((out.state.as_deref() == Some("Enabled")).then_some(()))
            },
        )
        .await
    }

    /// Puts `records` (partition key, data) one PutRecord at a time, each
    /// call naming the previous sequence number (`SequenceNumberForOrdering`):
    /// PutRecords does not promise order, and this does within a shard.
    pub async fn put_records(
        &self,
        stream: &KinesisStream,
        records: &[(String, Vec<u8>)],
    ) -> Result<Vec<PutRecord>> {
        let mut out = Vec::with_capacity(records.len());
        let mut previous: Option<String> = None;
        for (key, data) in records {
            let put = self
                .kinesis
                .put_record()
                .stream_name(&stream.name)
                .partition_key(key)
                .data(aws_sdk_kinesis::primitives::Blob::new(data.clone()))
                .set_sequence_number_for_ordering(previous.take())
                .send()
                .await
                .with_context(|| format!("PutRecord to {}", stream.name))?;
            previous = Some(put.sequence_number.clone());
            out.push(PutRecord {
                partition_key: key.clone(),
                shard_id: put.shard_id,
                sequence_number: put.sequence_number,
            });
        }
        Ok(out)
    }

    /// Puts one item into `table` (it must carry the string key `pk`).
    pub async fn put_item(
        &self,
        table: &StreamTable,
        item: HashMap<String, AttributeValue>,
    ) -> Result<()> {
        ensure!(item.contains_key("pk"), "the item has no key attribute pk");
        self.dynamodb
            .put_item()
            .table_name(&table.name)
            .set_item(Some(item))
            .send()
            .await
            .with_context(|| format!("PutItem to {}", table.name))?;
        Ok(())
    }

    /// Deletes everything made through this value, mappings first (so no
    /// poller keeps invoking a function that is going away). Tries all, then
    /// reports the first failure.
    pub async fn cleanup(&self) -> Result<()> {
        let mut made = std::mem::take(&mut *lock(&self.made));
        made.sort_by_key(|m| match m {
            Made::Mapping(_) => 0,
            Made::Function(_) => 1,
            _ => 2,
        });
        let mut first_error = None;
        for m in made {
            let result: Result<()> = async {
                match &m {
                    Made::Mapping(uuid) => {
                        self.lambda
                            .delete_event_source_mapping()
                            .uuid(uuid)
                            .send()
                            .await?;
                    }
                    Made::Function(name) => {
                        self.lambda
                            .delete_function()
                            .function_name(name)
                            .send()
                            .await?;
                    }
                    Made::Stream(name) => {
                        self.kinesis
                            .delete_stream()
                            .stream_name(name)
                            .enforce_consumer_deletion(true)
                            .send()
                            .await?;
                    }
                    Made::Table(name) => {
                        self.dynamodb.delete_table().table_name(name).send().await?;
                    }
                    Made::Queue(url) => {
                        self.sqs.delete_queue().queue_url(url).send().await?;
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                first_error.get_or_insert(e.context(format!("deleting {m:?}")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs `body` with fresh clients, then deletes what it made (also when it
/// failed); the body's error comes first, else the cleanup's.
pub async fn with_streams(body: impl AsyncFnOnce(&Streams) -> Result<()>) -> Result<()> {
    let streams = Streams::connect().await;
    let result = body(&streams).await;
    let cleaned = streams.cleanup().await;
    result.and(cleaned)
}

/// Orders two sequence numbers (Kinesis or DynamoDB Streams) as the decimal
/// integers they are: they do not fit in a u128 (Kinesis's have up to 129
/// digits) and need not have the same length, so neither a parse nor a string
/// comparison orders them.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The Lambda zip of the stream test double (`tests/doubles/stream_bootstrap.py`
/// as `bootstrap`), written once per process under `.local/stream-doubles/`.
pub fn double_zip() -> Result<PathBuf> {
    static ZIP: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    ZIP.get_or_init(|| {
        pack_bootstrap(
            &repo_root().join("tests/doubles/stream_bootstrap.py"),
            "stream-double",
        )
        .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The Lambda zip of lambda-batch's example `name`, built fresh (cargo
/// decides what is stale) and packed once per process.
pub fn example_zip(name: &str) -> Result<PathBuf> {
    static ZIPS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut zips = lock(ZIPS.get_or_init(Mutex::default));
    if let Some(zip) = zips.get(name) {
        return Ok(zip.clone());
    }
    let binary = crate::runtime_api::example_binary("lambda-batch", name)?;
    let zip = pack_bootstrap(&binary, &format!("example-{name}"))?;
    zips.insert(name.to_owned(), zip.clone());
    Ok(zip)
}

/// Packs `source` as the `bootstrap` (mode 0755) of a Lambda zip named after
/// `prefix` under `.local/stream-doubles/`, with Python's `zipfile` command
/// line, as `infra/local/build.sh` packs the stack's functions.
fn pack_bootstrap(source: &Path, prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let stage = doubles_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;
    let bootstrap = stage.join("bootstrap");
    std::fs::copy(source, &bootstrap)
        .with_context(|| format!("copying {} to {}", source.display(), bootstrap.display()))?;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))?;
    let zip = doubles_dir().join(format!("{prefix}-{}.zip", std::process::id()));
    let _ = std::fs::remove_file(&zip);
    let status = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg("bootstrap")
        .current_dir(&stage)
        .status()
        .context("running python3 -m zipfile")?;
    ensure!(
        status.success(),
        "zipping {} failed: {status}",
        source.display()
    );
    Ok(zip)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn doubles_dir() -> PathBuf {
    repo_root().join(".local/stream-doubles")
}

/// The log of one test-double function: one [`Invocation`] per line.
#[derive(Debug, Clone)]
pub struct DoubleLog {
    path: PathBuf,
}

/// One invocation of the test double, as it logged it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// 0 for the function's first invocation, counted across its processes.
    pub n: u64,
    /// The scripted action it took (`ok`, `fail:TEXT`, `error`, ...).
    pub action: String,
    /// `response`, `error` or `exit`.
    pub kind: String,
    /// What it answered (JSON, or a string for `garbage`).
    pub response: serde_json::Value,
    /// When it received the event (Unix ms).
    #[serde(rename = "t_ms")]
    pub t_ms: u64,
    /// The process that handled it.
    pub pid: u32,
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event as received.
    pub event: serde_json::Value,
}

impl Invocation {
    /// The event as the typed Kinesis event the Rust runtime would see.
    pub fn kinesis(&self) -> Result<aws_lambda_events::event::kinesis::KinesisEvent> {
        serde_json::from_value(self.event.clone())
            .with_context(|| format!("invocation {} is not a Kinesis event", self.n))
    }

    /// The event as the typed DynamoDB Streams event the Rust runtime would see.
    pub fn dynamodb(&self) -> Result<aws_lambda_events::event::dynamodb::Event> {
        serde_json::from_value(self.event.clone())
            .with_context(|| format!("invocation {} is not a DynamoDB Streams event", self.n))
    }

    /// The event's records, raw.
    pub fn records(&self) -> &[serde_json::Value] {
        self.event
            .get("Records")
            .and_then(|r| r.as_array())
            .map_or(&[], Vec::as_slice)
    }
}

impl DoubleLog {
    /// A new, empty log path for one function.
    pub fn new(prefix: &str) -> Result<Self> {
        let dir = doubles_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            path: dir.join(format!("{}.jsonl", unique(prefix))),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The function's environment: this log, the script (one action per
    /// invocation, in order) and the action after it (see the double's doc).
    pub fn env(&self, script: &[&str], then: &str) -> Vec<(String, String)> {
        vec![
            ("DOUBLE_LOG".to_owned(), self.path.display().to_string()),
            ("DOUBLE_SCRIPT".to_owned(), script.join(",")),
            ("DOUBLE_DEFAULT".to_owned(), then.to_owned()),
        ]
    }

    /// Every invocation logged so far, in order.
    pub fn invocations(&self) -> Result<Vec<Invocation>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        text.lines()
            .map(|line| {
                serde_json::from_str(line).with_context(|| {
                    format!("a line of {} is not an invocation", self.path.display())
                })
            })
            .collect()
    }

    /// Polls the log until `check` yields `Some` for the invocations so far,
    /// for at most `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Invocation]) -> Option<T>,
    ) -> Result<T> {
        let check = &check;
        wait_until(
            what,
            timeout,
            || async move { Ok(check(&self.invocations()?)) },
        )
        .await
        .with_context(|| format!("log {}", self.path.display()))
    }
}

/// One invocation of a function as its log shows it: the lines between
/// `START RequestId: <id>` and `END RequestId: <id>`.
#[derive(Debug, Clone)]
pub struct LoggedInvocation {
    /// The request id.
    pub request_id: String,
    /// When its first line was logged (Unix ms).
    pub t_ms: i64,
    /// Its lines, START, END and REPORT left out, in order.
    pub lines: Vec<String>,
}

impl LoggedInvocation {
    /// Splits log events (stream, timestamp, message) into invocations,
    /// ordered by when each started. A stream holds one environment's
    /// invocations one after another (in the emulator, one each).
    fn split(events: Vec<(String, i64, String)>) -> Vec<Self> {
        let mut by_stream: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for (stream, t, message) in events {
            by_stream.entry(stream).or_default().push((t, message));
        }
        let mut out: Vec<Self> = Vec::new();
        for (_, events) in by_stream {
            let mut current: Option<Self> = None;
            for (t, message) in events {
                for line in message.lines() {
                    if let Some(rest) = line.strip_prefix("START RequestId: ") {
                        out.extend(current.take());
                        current = Some(Self {
                            request_id: rest.split_whitespace().next().unwrap_or("").to_owned(),
                            t_ms: t,
                            lines: Vec::new(),
                        });
                    } else if line.starts_with("END RequestId: ") {
                        out.extend(current.take());
                    } else if !line.starts_with("REPORT RequestId: ") {
                        if let Some(inv) = current.as_mut() {
                            inv.lines.push(line.to_owned());
                        }
                    }
                }
            }
            out.extend(current);
        }
        out.sort_by_key(|inv| inv.t_ms);
        out
    }

    /// The lines whose tracing message is `message` (the runtime's default
    /// text format: `LEVEL spans: message field=value ...`).
    pub fn events<'a>(&'a self, message: &'a str) -> impl Iterator<Item = LogEvent<'a>> + 'a {
        self.lines
            .iter()
            .filter_map(move |line| LogEvent::parse(line, message))
    }

    /// The lines whose message is one of `messages`, in order, each with
    /// its message.
    pub fn events_of<'a>(
        &'a self,
        messages: &'a [&'a str],
    ) -> impl Iterator<Item = (&'a str, LogEvent<'a>)> + 'a {
        self.lines.iter().filter_map(move |line| {
            messages
                .iter()
                .find_map(|m| Some((*m, LogEvent::parse(line, m)?)))
        })
    }
}

/// The fields of one tracing text log line.
#[derive(Debug, Clone, Copy)]
pub struct LogEvent<'a> {
    fields: &'a str,
}

impl<'a> LogEvent<'a> {
    fn parse(line: &'a str, message: &str) -> Option<Self> {
        let (_, rest) = line.split_once(&format!(": {message}"))?;
        (rest.is_empty() || rest.starts_with(' ')).then_some(Self { fields: rest })
    }

    /// The value of `name=value` or `name="value"` (quotes removed); values
    /// with spaces are cut at the first one.
    pub fn field(&self, name: &str) -> Option<&'a str> {
        let key = format!(" {name}=");
        let (_, rest) = self.fields.split_once(&key)?;
        Some(match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or(""),
            None => rest.split(' ').next().unwrap_or(""),
        })
    }
}
