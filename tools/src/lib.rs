//! The stack client (deploy a stack of `infra/template.yaml` under a unique
//! name, talk to its resources, wait for things with bounded polls), the
//! fault proxy and the audit, shared by the operator commands in `src/bin`
//! and the end-to-end tests in `tests/`.

pub mod audit;
pub mod proxy;
pub mod runtime_api;
pub mod streams;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::{Credentials, Region};
use pipeline_core::StoredRecord;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The emulator's endpoint (`AWS_ENDPOINT_URL`, else the local default).
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        let port = std::env::var("MINISTACK_PORT").unwrap_or_else(|_| "4566".to_owned());
        format!("http://127.0.0.1:{port}")
    })
}

/// SDK configuration pointed at the emulator with its test credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new().build_http();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "local-emulator",
        ))
        .load()
        .await
}

/// Whether the emulator answers its health check at [`endpoint`].
pub async fn emulator_reachable() -> bool {
    reqwest::Client::new()
        .get(format!("{}/_ministack/health", endpoint()))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// True when a test that needs the emulator should pass without running:
/// none answers and `REQUIRE_EMULATOR` is not `1` (`make test` sets it, so
/// there a dead emulator fails the test in [`Stack::deploy`] instead). Says so
/// once per `cargo test` run, on stderr past the test harness's capture: the
/// first test binary to skip leaves a marker named after the parent process
/// (cargo) in `marker_dir`, and the others stay quiet.
pub async fn skip_without_emulator(marker_dir: &std::path::Path) -> bool {
    if std::env::var("REQUIRE_EMULATOR").is_ok_and(|v| v == "1") || emulator_reachable().await {
        return false;
    }
    let marker = marker_dir.join(format!(
        "e2e-skipped-{}",
        std::os::unix::process::parent_id()
    ));
    let first = std::fs::create_dir_all(marker_dir).is_ok()
        && std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(marker)
            .is_ok();
    if first {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipping the end-to-end tests: no emulator at {}; `make test` starts one and runs them",
            endpoint()
        );
    }
    true
}

/// A short random suffix for resource names.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..10])
}

/// Polls `check` every 250 ms until it yields `Some`, for at most `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One deployed copy of the pipeline, with clients for its resources.
pub struct Stack {
    /// Stack name.
    pub name: String,
    /// Stack outputs (`PRODUCER_URL`, `QUEUE_URL`, `DLQ_URL`, `BUCKET_NAME`, ...).
    pub outputs: HashMap<String, String>,
    /// S3 client (path-style).
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// Lambda client.
    pub lambda: aws_sdk_lambda::Client,
    /// HTTP client for the producer.
    pub http: reqwest::Client,
}

impl Stack {
    /// Deploys `infra/template.yaml` as a new stack named after `prefix`,
    /// with `overrides` as extra parameter values, through the same script
    /// `make up` uses.
    pub async fn deploy(prefix: &str, overrides: &[(&str, &str)]) -> Result<Self> {
        let root = repo_root();
        if !emulator_reachable().await {
            bail!(
                "the emulator is not reachable at {}; run the tests with `make test`, which starts it",
                endpoint()
            );
        }
        for zip in ["consumer", "producer"] {
            let path = root.join(format!(".local/dist/{zip}.zip"));
            if !path.exists() {
                bail!(
                    "{} is missing; run `make test` (it builds the Lambda zips)",
                    path.display()
                );
            }
        }
        let name = unique(prefix);
        let overrides: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let script = root.join("infra/local/deploy.sh");
        let (stack, joined) = (name.clone(), overrides.join(" "));
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .arg(script)
                .env("STACK_NAME", &stack)
                .env("PARAMETER_OVERRIDES", joined)
                .output()
        })
        .await
        .context("deploy task")?
        .context("running infra/local/deploy.sh")?;
        if !output.status.success() {
            bail!(
                "deploying stack {name} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut stack =
            Self::from_outputs_file(&root.join(format!(".local/outputs-{name}.env"))).await?;
        stack.name = name;
        Ok(stack)
    }

    /// Connects to a stack already deployed, from the `KEY=VALUE` outputs
    /// file `infra/local/deploy.sh` wrote (e.g. `.local/outputs.env`).
    pub async fn from_outputs_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (is the stack deployed? `make up`)",
                path.display()
            )
        })?;
        let outputs: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let sdk = sdk_config().await;
        Ok(Self {
            name: outputs.get("STACK_NAME").cloned().unwrap_or_default(),
            outputs,
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// One stack output.
    pub fn output(&self, key: &str) -> Result<&str> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("stack {} has no output {key}", self.name))
    }

    /// POSTs `body` to the producer's `/messages`; returns status and JSON.
    pub async fn post_messages(
        &self,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        self.post_messages_with(body, &[]).await
    }

    /// POSTs `body` to the producer's `/messages` with extra headers (e.g.
    /// `Idempotency-Key`); returns status and JSON.
    pub async fn post_messages_with(
        &self,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Value)> {
        let url = format!("{}/messages", self.output("PRODUCER_URL")?);
        let mut request = self.http.post(&url).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let json = response
            .json()
            .await
            .context("producer answer is not JSON")?;
        Ok((status, json))
    }

    /// GETs the producer's `/messages/{message_id}`.
    pub async fn get_message(&self, message_id: &str) -> Result<(u16, serde_json::Value)> {
        let url = format!("{}/messages/{message_id}", self.output("PRODUCER_URL")?);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    /// Sends one raw message straight to the queue; returns its message id.
    pub async fn send_raw(&self, body: &str) -> Result<String> {
        let out = self
            .sqs
            .send_message()
            .queue_url(self.output("QUEUE_URL")?)
            .message_body(body)
            .send()
            .await?;
        out.message_id
            .ok_or_else(|| anyhow!("SendMessage returned no message id"))
    }

    /// Sends raw messages straight to the queue in batches of 10; returns
    /// their message ids in order. Fails if SQS rejects any entry.
    pub async fn send_raw_batch(&self, bodies: &[String]) -> Result<Vec<String>> {
        let queue_url = self.output("QUEUE_URL")?;
        let mut ids = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(10) {
            ids.extend(send_message_batch(&self.sqs, queue_url, chunk).await?);
        }
        Ok(ids)
    }

    /// Adds environment variables to a function (`CONSUMER_FUNCTION_NAME` or
    /// `PRODUCER_FUNCTION_NAME`), e.g. `AWS_ENDPOINT_URL_S3` to send its S3
    /// calls through a proxy; the emulator restarts its workers.
    pub async fn set_function_env(&self, function: &str, vars: &[(&str, String)]) -> Result<()> {
        use aws_sdk_lambda::types::Environment;
        let name = self.output(function)?;
        let current = self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await?;
        let mut variables = current
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_default();
        for (k, v) in vars {
            variables.insert((*k).to_owned(), v.clone());
        }
        self.lambda
            .update_function_configuration()
            .function_name(name)
            .environment(
                Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// Sends the consumer's S3 and DynamoDB calls to `url` (a fault proxy).
    pub async fn consumer_through(&self, url: &str) -> Result<()> {
        self.set_function_env(
            "CONSUMER_FUNCTION_NAME",
            &[
                ("AWS_ENDPOINT_URL_S3", url.to_owned()),
                ("AWS_ENDPOINT_URL_DYNAMODB", url.to_owned()),
            ],
        )
        .await
    }

    /// Invokes the consumer directly with an SQS event; returns its answer
    /// (a partial batch response) or fails on a function error.
    pub async fn invoke_consumer(&self, event: &serde_json::Value) -> Result<serde_json::Value> {
        let out = self
            .lambda
            .invoke()
            .function_name(self.output("CONSUMER_FUNCTION_NAME")?)
            .payload(aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(
                event,
            )?))
            .send()
            .await?;
        let payload = out.payload.map(|b| b.into_inner()).unwrap_or_default();
        if let Some(error) = out.function_error {
            bail!(
                "consumer failed ({error}): {}",
                String::from_utf8_lossy(&payload)
            );
        }
        Ok(serde_json::from_slice(&payload)?)
    }

    /// Process ids of this stack's running consumer (found by the function
    /// name in each process's environment).
    pub fn consumer_pids(&self) -> Result<Vec<u32>> {
        let needle = format!(
            "AWS_LAMBDA_FUNCTION_NAME={}",
            self.output("CONSUMER_FUNCTION_NAME")?
        );
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
            {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// Every record item in the table.
    pub async fn items(&self) -> Result<Vec<StoredRecord>> {
        let items: Vec<_> = self
            .dynamodb
            .scan()
            .table_name(self.output("TABLE_NAME")?)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await?;
        items.iter().map(record_from).collect()
    }

    /// Every object key in the bucket.
    pub async fn object_keys(&self) -> Result<Vec<String>> {
        let pages: Vec<_> = self
            .s3
            .list_objects_v2()
            .bucket(self.output("BUCKET_NAME")?)
            .into_paginator()
            .send()
            .collect::<Result<_, _>>()
            .await?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.contents.unwrap_or_default())
            .filter_map(|o| o.key)
            .collect())
    }

    /// One object, parsed as JSON.
    pub async fn object(&self, key: &str) -> Result<serde_json::Value> {
        let out = self
            .s3
            .get_object()
            .bucket(self.output("BUCKET_NAME")?)
            .key(key)
            .send()
            .await?;
        let bytes = out.body.collect().await?.into_bytes();
        serde_json::from_slice(&bytes).with_context(|| format!("object {key} is not JSON"))
    }

    /// Approximate (visible, in flight) message counts of a queue output
    /// (`QUEUE_URL` or `DLQ_URL`).
    pub async fn depth(&self, queue: &str) -> Result<(u64, u64)> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.output(queue)?)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let attrs = out.attributes.unwrap_or_default();
        let get = |a: &A| attrs.get(a).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok((
            get(&A::ApproximateNumberOfMessages),
            get(&A::ApproximateNumberOfMessagesNotVisible),
        ))
    }

    /// Bodies of the messages in the dead-letter queue.
    pub async fn dlq_bodies(&self) -> Result<Vec<String>> {
        Ok(self
            .dlq_messages()
            .await?
            .into_iter()
            .map(|(_, body)| body)
            .collect())
    }

    /// Message ids of the messages in the dead-letter queue.
    pub async fn dlq_message_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .dlq_messages()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// (message id, body) of every message in the dead-letter queue. They are
    /// received (hidden while the listing runs, so none is counted twice),
    /// then made visible again.
    pub async fn dlq_messages(&self) -> Result<Vec<(String, String)>> {
        let url = self.output("DLQ_URL")?;
        let mut messages = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..10_000 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(120)
                .send()
                .await?;
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            for m in batch {
                messages.push((m.message_id.unwrap_or_default(), m.body.unwrap_or_default()));
                handles.extend(m.receipt_handle);
            }
        }
        for handle in handles {
            self.sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await?;
        }
        Ok(messages)
    }
}

/// An SQS event as Lambda delivers it, for direct invocations.
pub fn sqs_event(messages: &[(String, String)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("synthetic-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1798329723000",
                               "ApproximateFirstReceiveTimestamp": "1798329723456"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:synthetic",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The message ids listed in a partial batch response.
pub fn reported_failures(response: &serde_json::Value) -> Result<Vec<String>> {
    let Some(list) = response.get("batchItemFailures").and_then(|v| v.as_array()) else {
        bail!("not a partial batch response: {response}");
    };
    list.iter()
        .map(|f| match f.get("itemIdentifier").and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => bail!("empty or missing itemIdentifier in {response}"),
        })
        .collect()
}

/// Reads a record item back.
pub fn record_from(item: &HashMap<String, AttributeValue>) -> Result<StoredRecord> {
    pipeline_aws::from_item(item).map_err(anyhow::Error::msg)
}

/// One SendMessageBatch of up to 10 `bodies` to `queue_url`; returns their
/// message ids in the order given. Fails if SQS rejects any entry.
pub async fn send_message_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: &[String],
) -> Result<Vec<String>> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let entries = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("SendMessageBatch")?;
    if !out.failed.is_empty() {
        bail!("SendMessageBatch failed entries: {:?}", out.failed);
    }
    let mut ok = out.successful;
    ok.sort_by_key(|e| e.id.parse::<usize>().unwrap_or(usize::MAX));
    Ok(ok.into_iter().map(|e| e.message_id).collect())
}
