//! [`Queue`] and [`Records`] on the AWS SDK clients (feature `aws`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    SendMessageBatchRequestEntry,
};
use lambda_http::RequestExt;
use pipeline_aws::RecordTable;
use pipeline_core::StoredRecord;

use crate::store::{Entry, EntryFailure, EntryResult, Queue, Records};
use crate::{AppState, Config, Error, ErrorClass, SendError};

/// Builds the state with SDK clients derived from one shared `SdkConfig`.
pub fn state_from(sdk: &aws_config::SdkConfig, config: Config) -> AppState<SqsQueue, RecordTable> {
    AppState {
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), config.queue_url.clone())
            .with_attempt_timeout(config.call_attempt_timeout),
        records: RecordTable::new(aws_sdk_dynamodb::Client::new(sdk), config.table.clone()),
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
                .data_type(crate::send::KEY_ATTRIBUTE_TYPE)
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
        let attempts = AttemptLog::default();
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(request))
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .interceptor(attempts.clone())
            .send()
            .await
            .map_err(|err| classify(err, attempts.maybe_took_effect()))?;
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

/// Notes whether any attempt of one call may have reached SQS without its
/// answer being read. The SDK retries timeouts and dropped connections and
/// returns only the last attempt's error, so a call whose last attempt was
/// throttled may still have been taken by an earlier one.
#[derive(Debug, Clone, Default)]
struct AttemptLog(Arc<AtomicBool>);

impl AttemptLog {
    fn maybe_took_effect(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for AttemptLog {
    fn name(&self) -> &'static str {
        "AttemptLog"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        let Some(Err(err)) = context.output_or_error() else {
            return Ok(());
        };
        // SQS answered with an error: it did not take the call, unless the
        // answer was a success it could not parse.
        let answered = context.response().is_some_and(|r| !r.status().is_success());
        let unknown = if err.is_operation_error() {
            !answered
        } else if let Some(connector) = err.as_connector_error() {
            !refused_before_sending(connector)
        } else {
            // A time-out, an unreadable answer, or a failure we cannot place.
            true
        };
        if unknown {
            self.0.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether a connection failure happened before anything was sent: the
/// connection was refused (an `io::Error` of kind `ConnectionRefused`
/// somewhere in its chain). Anything else may have come after sending.
fn refused_before_sending(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sorts a failed call into [`ErrorClass`]es. Whatever may have taken
/// effect, on any attempt (`maybe_took_effect`, a time-out, an unreadable
/// answer, a connection lost after sending), has an unknown outcome; SQS's
/// own refusals are retryable (throttling, 5xx), too large, or
/// misconfiguration (a missing queue, denied access, invalid parameters);
/// a connection refused before sending is retryable.
fn classify(
    err: SdkError<SendMessageBatchError, HttpResponse>,
    maybe_took_effect: bool,
) -> SendError {
    let class = match &err {
        _ if maybe_took_effect => ErrorClass::OutcomeUnknown,
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => ErrorClass::OutcomeUnknown,
        SdkError::DispatchFailure(f) => match f.as_connector_error() {
            Some(c) if refused_before_sending(c) => ErrorClass::Retryable,
            _ => ErrorClass::OutcomeUnknown,
        },
        // Nothing was sent: the request could not be built or signed.
        SdkError::ConstructionFailure(_) => ErrorClass::Retryable,
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            let code = service.err().meta().code().unwrap_or_default();
            let named = |c: &&str| code == *c || code.ends_with(&format!("#{c}"));
            let throttled = ["Throttl", "RequestThrottled", "OverLimit"]
                .iter()
                .any(|t| code.contains(t));
            if status.is_success() {
                // A success whose body could not be read: it took effect, or not.
                ErrorClass::OutcomeUnknown
            } else if service.err().is_batch_request_too_long() || code.contains("TooLong") {
                ErrorClass::TooLarge
            } else if MISCONFIGURED.iter().any(named) || service.err().is_queue_does_not_exist() {
                ErrorClass::Misconfigured
            } else if status.is_server_error() || status.as_u16() == 429 || throttled {
                ErrorClass::Retryable
            } else {
                // Any other 4xx is a request SQS will refuse again as it is.
                ErrorClass::Misconfigured
            }
        }
        // A kind of error this SDK version does not name: assume the worst.
        _ => ErrorClass::OutcomeUnknown,
    };
    let code = err
        .as_service_error()
        .and_then(|e| e.meta().code())
        .unwrap_or(match &err {
            SdkError::TimeoutError(_) => "Timeout",
            SdkError::ResponseError(_) => "UnreadableResponse",
            SdkError::ServiceError(_) => "UnreadableResponse",
            SdkError::ConstructionFailure(_) => "RequestNotBuilt",
            _ => "ConnectionFailed",
        })
        .to_owned();
    SendError::new(class, code, err)
}

/// [`Records`] on the records table.
impl Records for RecordTable {
    async fn get(&self, id: &str) -> Result<Option<StoredRecord>, Error> {
        RecordTable::get(self, id).await.map_err(Error::Records)
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

    // ---- how each kind of failed call is answered -------------------------

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use aws_sdk_sqs::error::SdkError as SqsSdkError;
    use aws_smithy_mocks::RuleMode;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;

    fn one_entry() -> Vec<Entry> {
        vec![Entry {
            id: "0".into(),
            body: "{}".into(),
            ..Entry::default()
        }]
    }

    /// An SQS error answer in the JSON protocol, as SQS sends it.
    fn sqs_error(status: u16, kind: &str, query_code: &str) -> HttpResponse {
        let body = format!(
            r#"{{"__type":"{kind}","message":"User: arn:aws:sts::123456789012:assumed-role/p is not authorized"}}"#
        );
        let mut response =
            HttpResponse::new(status.try_into().expect("status"), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        response
            .headers_mut()
            .insert("x-amzn-query-error", format!("{query_code};Sender"));
        response
    }

    /// Sends one entry through a mocked client answering `response` to
    /// every attempt; returns the error and the calls made.
    async fn failed_with(
        response: impl Fn() -> HttpResponse + Send + Sync + 'static,
    ) -> (SendError, usize) {
        let rule = mock!(aws_sdk_sqs::Client::send_message_batch)
            .sequence()
            .http_response(response)
            .times(5)
            .build();
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&rule]);
        let err = SqsQueue::new(client, "q")
            .send_batch(&one_entry(), Duration::from_secs(5))
            .await
            .expect_err("the call fails");
        (err, rule.num_calls())
    }

    /// [`failed_with`] SQS's 400 error answer of this kind.
    async fn refused_with(kind: &'static str, query_code: &'static str) -> (SendError, usize) {
        failed_with(move || sqs_error(400, kind, query_code)).await
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retryable_after_the_sdks_own_retries() {
        let (err, calls) = refused_with(
            "com.amazonaws.sqs#ThrottlingException",
            "ThrottlingException",
        )
        .await;
        assert_eq!(err.class, ErrorClass::Retryable, "{err:?}");
        assert_eq!(err.class.code(), "queue_unavailable");
        assert_eq!(calls, 3, "the SDK's three attempts, none of ours");
    }

    #[tokio::test]
    async fn access_denied_is_misconfigured_and_not_retried() {
        let (err, calls) = refused_with(
            "com.amazon.coral.service#AccessDeniedException",
            "AccessDenied",
        )
        .await;
        assert_eq!(err.class, ErrorClass::Misconfigured, "{err:?}");
        assert!(!err.class.retryable());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_missing_queue_is_misconfigured_and_not_retried() {
        let (err, calls) = refused_with(
            "com.amazonaws.sqs#QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
        )
        .await;
        assert_eq!(err.class, ErrorClass::Misconfigured, "{err:?}");
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_call_too_long_for_sqs_is_too_large_not_misconfigured() {
        let (err, _) = refused_with(
            "com.amazonaws.sqs#BatchRequestTooLong",
            "AWS.SimpleQueueService.BatchRequestTooLong",
        )
        .await;
        assert_eq!(err.class, ErrorClass::TooLarge, "{err:?}");
        assert_eq!(err.class.code(), "message_too_large");
    }

    #[tokio::test]
    async fn an_unreadable_success_may_have_taken_effect() {
        let (err, calls) = failed_with(|| {
            HttpResponse::new(
                200.try_into().expect("status"),
                SdkBody::from("<html>proxy error</html>"),
            )
        })
        .await;
        assert_eq!(err.class, ErrorClass::OutcomeUnknown, "{err:?}");
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_response_that_could_not_be_read_may_have_taken_effect() {
        let raw = HttpResponse::new(200.try_into().expect("status"), SdkBody::empty());
        let err = SqsSdkError::response_error("connection closed mid-body", raw);
        assert_eq!(classify(err, false).class, ErrorClass::OutcomeUnknown);
        // The final error alone says so too, whatever the attempt log saw.
        let io = |kind: std::io::ErrorKind| {
            SqsSdkError::dispatch_failure(ConnectorError::io(std::io::Error::from(kind).into()))
        };
        let reset = classify(io(std::io::ErrorKind::ConnectionReset), false);
        assert_eq!(reset.class, ErrorClass::OutcomeUnknown);
        let refused = classify(io(std::io::ErrorKind::ConnectionRefused), false);
        assert_eq!(refused.class, ErrorClass::Retryable);
        let timeout = classify(SqsSdkError::timeout_error("operation timeout"), false);
        assert_eq!(timeout.class, ErrorClass::OutcomeUnknown);
    }

    #[test]
    fn every_unknown_outcome_says_it_may_be_in_the_queue() {
        let message = ErrorClass::OutcomeUnknown.message();
        assert!(
            message.contains("may be in the queue; resend with the same Idempotency-Key"),
            "{message}"
        );
        assert!(ErrorClass::OutcomeUnknown.retryable());
        assert!(!ErrorClass::Retryable
            .message()
            .contains("may be in the queue"));
    }

    #[test]
    fn sqs_size_refusals_of_an_entry_are_recognised() {
        let refusal = EntryFailure {
            code: "InvalidParameterValue".into(),
            message: "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.".into(),
            sender_fault: true,
        };
        assert!(refusal.is_size_refusal());
        let other = EntryFailure {
            message: "Value for parameter MessageGroupId is invalid.".into(),
            ..refusal
        };
        assert!(!other.is_size_refusal());
    }

    /// What a scripted connection does on each attempt.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// The connection is refused: nothing was sent.
        Refused,
        /// The connection is reset after the request went out.
        Reset,
        /// No answer, ever.
        Stall,
        /// SQS throttles the call.
        Throttled,
    }

    /// An HTTP client that plays `Step`s, one per attempt (the last repeats).
    #[derive(Debug, Clone)]
    struct Scripted(Arc<Mutex<VecDeque<Step>>>);

    impl Scripted {
        fn client(steps: &[Step]) -> aws_sdk_sqs::Client {
            let http = Self(Arc::new(Mutex::new(steps.iter().copied().collect())));
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::Config::builder()
                    .with_test_defaults_v2()
                    .http_client(http)
                    .build(),
            )
        }
    }

    impl HttpConnector for Scripted {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            let step = {
                let mut steps = self.0.lock().expect("lock");
                if steps.len() > 1 {
                    steps.pop_front()
                } else {
                    steps.front().copied()
                }
            };
            let io = |kind: std::io::ErrorKind| {
                HttpConnectorFuture::ready(Err(ConnectorError::io(
                    std::io::Error::from(kind).into(),
                )))
            };
            match step.unwrap_or(Step::Stall) {
                Step::Refused => io(std::io::ErrorKind::ConnectionRefused),
                Step::Reset => io(std::io::ErrorKind::ConnectionReset),
                Step::Stall => HttpConnectorFuture::new(std::future::pending()),
                Step::Throttled => HttpConnectorFuture::ready(Ok(sqs_error(
                    400,
                    "com.amazonaws.sqs#ThrottlingException",
                    "ThrottlingException",
                ))),
            }
        }
    }

    impl HttpClient for Scripted {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    async fn scripted(steps: &[Step]) -> SendError {
        SqsQueue::new(Scripted::client(steps), "q")
            .send_batch(&one_entry(), Duration::from_secs(5))
            .await
            .expect_err("the call fails")
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_may_have_taken_effect() {
        let err = scripted(&[Step::Stall]).await;
        assert_eq!(err.code, "Timeout");
        assert_eq!(err.class, ErrorClass::OutcomeUnknown, "{err:?}");
        assert_eq!(err.class.code(), "queue_outcome_unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_refused_before_sending_is_safely_retryable() {
        let err = scripted(&[Step::Refused]).await;
        assert_eq!(err.code, "ConnectionFailed");
        assert_eq!(err.class, ErrorClass::Retryable, "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_lost_after_sending_may_have_taken_effect() {
        let err = scripted(&[Step::Reset]).await;
        assert_eq!(err.class, ErrorClass::OutcomeUnknown, "{err:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_last_attempt_after_a_lost_one_may_still_have_taken_effect() {
        let err = scripted(&[Step::Reset, Step::Throttled]).await;
        assert_eq!(
            err.code, "ThrottlingException",
            "the last attempt was throttled"
        );
        assert_eq!(
            err.class,
            ErrorClass::OutcomeUnknown,
            "but the first may have reached SQS: {err:?}"
        );
        let err = scripted(&[Step::Refused, Step::Throttled]).await;
        assert_eq!(
            err.class,
            ErrorClass::Retryable,
            "a refused connection sent nothing: {err:?}"
        );
    }

    #[tokio::test]
    async fn missing_item_is_none() {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
            aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let found = RecordTable::new(client, "t")
            .get("id")
            .await
            .expect("call succeeds");
        assert_eq!(found, None);
    }
}
