//! [`Queue`] and [`Records`] on the AWS SDK clients (feature `aws`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use lambda_http::RequestExt;
use pipeline_core::{attr, StoredRecord};

use crate::store::{Entry, EntryFailure, EntryResult, Queue, Records};
use crate::{AppState, Config, Error, ErrorClass, SendError};

/// Builds the state with SDK clients derived from one shared `SdkConfig`.
pub fn state_from(
    sdk: &aws_config::SdkConfig,
    config: Config,
) -> AppState<SqsQueue, DynamoRecords> {
    AppState {
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), config.queue_url.clone())
            .with_attempt_timeout(config.call_attempt_timeout),
        records: DynamoRecords::new(aws_sdk_dynamodb::Client::new(sdk), config.table.clone()),
        config,
    }
}

/// The X-Ray trace header of the invocation whose request carries these
/// extensions: `lambda_http` puts the Lambda `Context` there, and the
/// runtime fills its `xray_trace_id` from `Lambda-Runtime-Trace-Id`. Read
/// per request rather than from `_X_AMZN_TRACE_ID`, which the runtime leaves
/// unset when it serves invocations concurrently.
pub fn trace_header(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .lambda_context_ref()
        .and_then(|ctx| ctx.xray_trace_id.clone())
        .filter(|id| !id.is_empty())
}

/// The Lambda request id of the invocation serving this request.
pub fn request_id(extensions: &axum::http::Extensions) -> Option<String> {
    extensions
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .filter(|id| !id.is_empty())
}

/// The time left before the Lambda invocation serving this request is
/// killed (its context's deadline); `None` outside Lambda.
pub fn time_left(extensions: &axum::http::Extensions) -> Option<Duration> {
    let deadline = extensions.lambda_context_ref()?.deadline;
    if deadline == 0 {
        return None;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(Duration::from_millis(deadline).saturating_sub(now))
}

/// [`Queue`] on SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    attempt_timeout: Duration,
}

impl SqsQueue {
    /// Sends to the queue at `url` through `client`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            attempt_timeout: Duration::from_secs(2),
        }
    }

    /// Limits each HTTP attempt of a call to `limit` (2 s by default).
    pub fn with_attempt_timeout(mut self, limit: Duration) -> Self {
        self.attempt_timeout = limit;
        self
    }
}

impl SqsQueue {
    fn entry(e: &Entry) -> Result<SendMessageBatchRequestEntry, SendError> {
        let invalid = |err: aws_sdk_sqs::error::BuildError| {
            SendError::new(ErrorClass::Misconfigured, "InvalidEntry", err)
        };
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(&e.id)
            .message_body(&e.body)
            .set_message_group_id(e.group_id.clone())
            .set_message_deduplication_id(e.deduplication_id.clone());
        if let Some(trace) = &e.trace_header {
            // Lambda's SQS poller links the consumer's trace to this one.
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .map_err(invalid)?;
            entry = entry.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
        if let Some(key) = &e.idempotency_key {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(key)
                .build()
                .map_err(invalid)?;
            entry = entry.message_attributes(pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE, value);
        }
        entry.build().map_err(invalid)
    }
}

impl Queue for SqsQueue {
    async fn send_batch(
        &self,
        entries: &[Entry],
        budget: Duration,
    ) -> Result<Vec<EntryResult>, SendError> {
        let request = entries
            .iter()
            .map(Self::entry)
            .collect::<Result<Vec<_>, _>>()?;
        // The SDK retries throttling, 5xx and connection failures; all its
        // attempts fit in what this call may take.
        let timeouts = pipeline_aws::CallTimeouts {
            attempt: budget.min(self.attempt_timeout),
            operation: budget,
        }
        .timeout_config();
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(request))
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(classify)?;
        let mut results: Vec<EntryResult> = output
            .successful
            .into_iter()
            .map(|ok| (ok.id, Ok(ok.message_id)))
            .collect();
        results.extend(output.failed.into_iter().map(|f| {
            let failure = EntryFailure {
                code: f.code,
                message: f.message.unwrap_or_default(),
                sender_fault: f.sender_fault,
            };
            (f.id, Err(failure))
        }));
        Ok(results)
    }
}

/// Error codes of a queue that will not work until its configuration is
/// fixed (AWS's JSON and query names).
const MISCONFIGURED: &[&str] = &[
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidAddress",
    "InvalidSecurity",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "KmsAccessDenied",
    "KmsDisabled",
    "KmsNotFound",
    "KmsInvalidState",
    "KmsInvalidKeyUsage",
    "UnsupportedOperation",
    "MissingParameter",
    "ValidationError",
];

/// Sorts a failed call into [`ErrorClass`]es: throttling, 5xx and
/// connection failures are retryable, time-outs may have landed, and a
/// missing queue, denied access or invalid parameters are misconfiguration.
fn classify(err: SdkError<SendMessageBatchError, HttpResponse>) -> SendError {
    let class = match &err {
        SdkError::TimeoutError(_) => ErrorClass::TimedOut,
        SdkError::DispatchFailure(f) if f.is_timeout() => ErrorClass::TimedOut,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorClass::Retryable,
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().meta().code().unwrap_or_default();
            let named = |c: &&str| code == *c || code.ends_with(&format!("#{c}"));
            let throttled = ["Throttl", "RequestThrottled", "OverLimit"]
                .iter()
                .any(|t| code.contains(t));
            if MISCONFIGURED.iter().any(named) || service.err().is_queue_does_not_exist() {
                ErrorClass::Misconfigured
            } else if status >= 500 || status == 429 || throttled {
                ErrorClass::Retryable
            } else {
                // Any other 4xx is a request SQS will refuse again as it is.
                ErrorClass::Misconfigured
            }
        }
        _ => ErrorClass::Retryable,
    };
    let code = err
        .as_service_error()
        .and_then(|e| e.meta().code())
        .unwrap_or(match class {
            ErrorClass::TimedOut => "Timeout",
            _ => "ConnectionFailed",
        })
        .to_owned();
    SendError::new(class, code, err)
}

/// [`Records`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRecords {
    /// Reads `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl Records for DynamoRecords {
    async fn get(&self, id: &str) -> Result<Option<StoredRecord>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|err| Error::Records(err.into()))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        pipeline_aws::from_item(&item)
            .map(Some)
            .map_err(|reason| Error::Records(format!("item {id}: {reason}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn partial_send_message_batch_failure_is_returned_per_entry() {
        let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|req| req.queue_url() == Some("q") && req.entries().len() == 2)
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(
                        SendMessageBatchResultEntry::builder()
                            .id("0")
                            .message_id("mid-0")
                            .md5_of_message_body("x")
                            .build()
                            .expect("valid"),
                    )
                    .failed(
                        BatchResultErrorEntry::builder()
                            .id("1")
                            .code("InternalError")
                            .message("try again")
                            .sender_fault(false)
                            .build()
                            .expect("valid"),
                    )
                    .build()
                    .expect("valid")
            });
        let client = mock_client!(aws_sdk_sqs, [&rule]);
        let queue = SqsQueue::new(client, "q");
        let entries = vec![
            Entry {
                id: "0".into(),
                body: "{}".into(),
                ..Entry::default()
            },
            Entry {
                id: "1".into(),
                body: "{}".into(),
                ..Entry::default()
            },
        ];
        let mut results = queue
            .send_batch(&entries, Duration::from_secs(5))
            .await
            .expect("call succeeds");
        results.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(results[0], ("0".into(), Ok("mid-0".into())));
        let failure = results[1].1.clone().expect_err("entry 1 failed");
        assert_eq!(failure.code, "InternalError");
        assert!(!failure.sender_fault);
    }

    const TRACE: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    #[tokio::test]
    async fn trace_header_is_sent_as_aws_trace_header_system_attribute() {
        let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
            .match_requests(|req| {
                let traces: Vec<Option<&str>> = req
                    .entries()
                    .iter()
                    .map(|e| {
                        e.message_system_attributes()
                            .and_then(|a| {
                                a.get(&MessageSystemAttributeNameForSends::AwsTraceHeader)
                            })
                            .filter(|v| v.data_type() == "String")
                            .and_then(|v| v.string_value())
                    })
                    .collect();
                traces == [Some(TRACE), None]
            })
            .then_output(|| {
                SendMessageBatchOutput::builder()
                    .successful(
                        SendMessageBatchResultEntry::builder()
                            .id("0")
                            .message_id("mid-0")
                            .md5_of_message_body("x")
                            .build()
                            .expect("valid"),
                    )
                    .set_failed(Some(Vec::new()))
                    .build()
                    .expect("valid")
            });
        let client = mock_client!(aws_sdk_sqs, [&rule]);
        let entries = vec![
            Entry {
                id: "0".into(),
                body: "{}".into(),
                trace_header: Some(TRACE.into()),
                ..Entry::default()
            },
            Entry {
                id: "1".into(),
                body: "{}".into(),
                ..Entry::default()
            },
        ];
        SqsQueue::new(client, "q")
            .send_batch(&entries, Duration::from_secs(5))
            .await
            .expect("the request carries the trace header on entry 0 only");
        assert_eq!(rule.num_calls(), 1);
    }

    #[test]
    fn trace_header_comes_from_the_lambda_context() {
        let mut ctx = lambda_http::Context::default();
        ctx.xray_trace_id = Some(TRACE.into());
        let mut extensions = axum::http::Extensions::new();
        assert_eq!(trace_header(&extensions), None, "outside Lambda");
        extensions.insert(ctx);
        assert_eq!(trace_header(&extensions).as_deref(), Some(TRACE));
    }

    #[tokio::test]
    async fn missing_item_is_none() {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
            aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let found = DynamoRecords::new(client, "t")
            .get("id")
            .await
            .expect("call succeeds");
        assert_eq!(found, None);
    }
}
