//! HTTP API that validates messages and enqueues them to SQS.
//!
//! [`app`] builds the whole API as an axum `Router`; `main.rs` runs it on
//! Lambda (through `lambda_http`) or as a plain HTTP service.

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
mod error;
pub mod send;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use pipeline_core::{record_id, MAX_SQS_MESSAGE_BYTES};
use serde_json::value::RawValue;
use tokio::time::Instant;

pub use config::Config;
pub use error::{code, ApiError, Error, ErrorClass, SendError};
pub use store::{Entry, EntryFailure, EntryResult, Queue, Records};

#[cfg(feature = "aws")]
pub use aws::{state_from, SqsQueue};

/// Everything a request needs, built once at start-up.
#[derive(Debug)]
pub struct AppState<Q, R> {
    /// Where messages go.
    pub queue: Q,
    /// Where stored records are read.
    pub records: R,
    /// Settings.
    pub config: Config,
}

/// The producer API.
pub fn app<Q: Queue, R: Records>(state: Arc<AppState<Q, R>>) -> Router {
    Router::new()
        .route("/messages", post(post_messages::<Q, R>))
        .route("/messages/{id}", get(get_message::<Q, R>))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(request_id_layer))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see POST /messages, GET /messages/{messageId}, GET /health",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// The X-Ray trace header of the Lambda invocation serving the request
/// (none outside Lambda or without the `aws` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for TraceHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        #[cfg(feature = "aws")]
        let header = aws::trace_header(&parts.extensions);
        #[cfg(not(feature = "aws"))]
        let header = {
            let _ = parts;
            None
        };
        Ok(Self(header))
    }
}

/// The id of the request (the Lambda request id, else a random UUID), put
/// in the request's extensions by the [`app`]'s middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Name of the header every answer carries the [`RequestId`] in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request header naming the request's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Request header naming the message group of the request's messages.
pub const MESSAGE_GROUP_HEADER: &str = "message-group-id";
/// Top-level field of a message that holds its own idempotency key.
pub const IDEMPOTENCY_KEY_FIELD: &str = "idempotencyKey";
/// Top-level field of a message that holds its own message group.
pub const MESSAGE_GROUP_FIELD: &str = "messageGroupId";

async fn request_id_layer(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    #[cfg(feature = "aws")]
    let lambda_id = aws::request_id(request.extensions());
    #[cfg(not(feature = "aws"))]
    let lambda_id: Option<String> = None;
    let id = lambda_id.unwrap_or_else(|| pipeline_core::uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    if let Ok(value) = id.parse() {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// When the request must be answered by: the Lambda invocation's deadline
/// (from its context), else `REQUEST_TIMEOUT_MS` from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDeadline(pub Instant);

impl<Q: Queue, R: Records> FromRequestParts<Arc<AppState<Q, R>>> for RequestDeadline {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState<Q, R>>,
    ) -> Result<Self, Self::Rejection> {
        #[cfg(feature = "aws")]
        let lambda = aws::time_left(&parts.extensions);
        #[cfg(not(feature = "aws"))]
        let lambda: Option<Duration> = {
            let _ = parts;
            None
        };
        let left = lambda.unwrap_or(state.config.request_timeout);
        Ok(Self(Instant::now() + left))
    }
}

/// The time kept back from a request's deadline to answer it: 10% of what
/// it has, at least 200 ms, at most 1 s (half of it for very short ones).
pub fn answer_margin(left: Duration) -> Duration {
    (left / 10)
        .clamp(Duration::from_millis(200), Duration::from_secs(1))
        .min(left / 2)
}

async fn post_messages<Q: Queue, R: Records>(
    State(state): State<Arc<AppState<Q, R>>>,
    TraceHeader(trace_header): TraceHeader,
    RequestDeadline(deadline): RequestDeadline,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let config = &state.config;
    check_content_type(&headers)?;
    let header_key = header_value(&headers, IDEMPOTENCY_KEY_HEADER, "invalid_idempotency_key")?;
    let header_group = header_value(&headers, MESSAGE_GROUP_HEADER, "invalid_message_group")?;
    let bytes = read_body(&headers, body, config.max_request_bytes).await?;
    let (bodies, is_array) = parse_request(&bytes, config.max_messages)?;
    let messages = outgoing(
        bodies,
        is_array,
        header_key.as_deref(),
        header_group.as_deref(),
        config,
    )?;
    let left = deadline.saturating_duration_since(Instant::now());
    let options = send::SendOptions {
        concurrency: config.send_concurrency,
        max_attempts: config.send_max_attempts,
        call_timeout: config.call_timeout,
        deadline: deadline - answer_margin(left),
        trace_header: trace_header.as_deref(),
        ordered: config.fifo,
    };
    let mut result = send::send_all(&state.queue, &messages, options).await;
    let status = answer_status(&result);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        result.error = Some(ErrorClass::Misconfigured.code().to_owned());
    }
    if !result.failed.is_empty() {
        tracing::warn!(
            accepted = result.accepted.len(),
            failed = result.failed.len(),
            status = status.as_u16(),
            "messages not enqueued"
        );
    }
    result.request_id = Some(request_id);
    Ok((status, Json(result)).into_response())
}

/// The status of an answer: 202 all enqueued, 207 some; when none was, what
/// the messages that failed on their own say (those held back only follow
/// an earlier failure of their group): 500 the queue is misconfigured, 413
/// SQS refused them for their size, 503 sending again may succeed, 422 it
/// will not.
fn answer_status(result: &pipeline_core::EnqueueResponse) -> StatusCode {
    if result.failed.is_empty() {
        return StatusCode::ACCEPTED;
    }
    if !result.accepted.is_empty() {
        return StatusCode::MULTI_STATUS;
    }
    let causes: Vec<&pipeline_core::Rejected> = result
        .failed
        .iter()
        .filter(|f| f.code != error::code::HELD_BACK)
        .collect();
    if causes
        .iter()
        .any(|f| f.code == ErrorClass::Misconfigured.code())
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if causes
        .iter()
        .all(|f| f.code == error::code::MESSAGE_TOO_LARGE)
    {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if causes.iter().any(|f| f.retryable) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// A header's value, checked as a key (1-128 ASCII letters, digits or
/// punctuation); `None` when absent.
fn header_value(
    headers: &HeaderMap,
    name: &str,
    code: &'static str,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text) if pipeline_core::valid_key(text) => Ok(Some(text.to_owned())),
        _ => Err(ApiError::bad_request(
            code,
            format!(
                "the {name} header must be 1 to {} ASCII letters, digits or punctuation",
                pipeline_core::MAX_IDEMPOTENCY_KEY_LEN
            ),
        )),
    }
}

/// The top-level fields of a message the producer reads: absent, or a
/// string (`null` is not a string).
#[derive(serde::Deserialize)]
struct Fields {
    #[serde(rename = "idempotencyKey", default, deserialize_with = "present")]
    key: Option<String>,
    #[serde(rename = "messageGroupId", default, deserialize_with = "present")]
    group: Option<String>,
}

/// A field that is there must be a string; only a missing one is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <String as serde::Deserialize>::deserialize(d).map(Some)
}

/// Each message with its key and group: a message's own fields first, then
/// what the headers say (message `i` of an array gets the key `<key>/<i>`);
/// on FIFO queues a group always (the default one if none is given) and a
/// deduplication id (the key, else a random one kept across our retries).
fn outgoing(
    bodies: Vec<String>,
    is_array: bool,
    header_key: Option<&str>,
    header_group: Option<&str>,
    config: &Config,
) -> Result<Vec<send::Outgoing>, ApiError> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let fields: Fields = serde_json::from_str(&body).map_err(|e| {
                ApiError::bad_request(
                    "invalid_field",
                    format!(
                        "message {i}: {IDEMPOTENCY_KEY_FIELD} and {MESSAGE_GROUP_FIELD} must be strings ({e})"
                    ),
                )
            })?;
            let checked = |value: Option<String>, field: &str, code| {
                match value {
                    Some(v) if pipeline_core::valid_key(&v) => Ok(Some(v)),
                    Some(_) => Err(ApiError::bad_request(
                        code,
                        format!(
                            "message {i}: {field} must be 1 to {} ASCII letters, digits or punctuation",
                            pipeline_core::MAX_IDEMPOTENCY_KEY_LEN
                        ),
                    )),
                    None => Ok(None),
                }
            };
            let own_key = checked(fields.key, IDEMPOTENCY_KEY_FIELD, "invalid_idempotency_key")?;
            let own_group = checked(fields.group, MESSAGE_GROUP_FIELD, "invalid_message_group")?;
            let key = match (own_key, header_key) {
                (Some(k), _) => Some(k),
                (None, Some(k)) if is_array => {
                    let derived = format!("{k}/{i}");
                    if !pipeline_core::valid_key(&derived) {
                        return Err(ApiError::bad_request(
                            "invalid_idempotency_key",
                            format!(
                                "the key of message {i}, {IDEMPOTENCY_KEY_HEADER} + \"/{i}\", is longer than {} characters",
                                pipeline_core::MAX_IDEMPOTENCY_KEY_LEN
                            ),
                        ));
                    }
                    Some(derived)
                }
                (None, Some(k)) => Some(k.to_owned()),
                (None, None) => None,
            };
            let size = send::sqs_size(&body, key.as_deref());
            if size > MAX_SQS_MESSAGE_BYTES {
                return Err(ApiError::too_large(
                    error::code::MESSAGE_TOO_LARGE,
                    format!(
                        "message {i} is {size} bytes as SQS counts it ({} of body, the rest its \
                         {} attribute's name, type and value); SQS takes at most {MAX_SQS_MESSAGE_BYTES}",
                        body.len(),
                        pipeline_core::IDEMPOTENCY_KEY_ATTRIBUTE
                    ),
                ));
            }
            let mut group = own_group.or_else(|| header_group.map(str::to_owned));
            let mut deduplication_id = None;
            if config.fifo {
                group.get_or_insert_with(|| config.default_group.clone());
                deduplication_id = Some(key.clone().unwrap_or_else(|| {
                    pipeline_core::uuid::Uuid::new_v4().simple().to_string()
                }));
            }
            Ok(send::Outgoing {
                body,
                key,
                group,
                deduplication_id,
            })
        })
        .collect()
}

async fn get_message<Q: Queue, R: Records>(
    State(state): State<Arc<AppState<Q, R>>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_message_id",
            "the id must be 1 to 128 characters",
        ));
    }
    let upstream = |err: Error| {
        tracing::error!(error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "GetItem failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "reading the record failed; try again",
        )
    };
    // A record id (what the 202 answered as `id`, keyed or not) first, then
    // the record of the SQS message with this id (unkeyed messages).
    if pipeline_core::uuid::Uuid::try_parse(&id).is_ok() {
        if let Some(record) = state.records.get(&id).await.map_err(upstream)? {
            return Ok(Json(record).into_response());
        }
    }
    let derived = record_id(&id).to_string();
    match state.records.get(&derived).await.map_err(upstream)? {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no record {id} (nor of message {id}, record id {derived}) yet"),
        )),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |got: &str| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be application/json, got {got}"),
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("none"));
    };
    let text = value
        .to_str()
        .map_err(|_| unsupported("a header that is not text"))?;
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(unsupported(&format!("{text:?}")))
    }
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(
            "request_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let over = std::error::Error::source(&err)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over {
            too_large()
        } else {
            ApiError::bad_request(
                "unreadable_body",
                format!("could not read the request body: {err}"),
            )
        }
    })
}

/// Parses a request body into message bodies: one JSON object, or a
/// non-empty array of at most `max_messages` objects, each within the SQS
/// size limit and made only of characters SQS accepts. Each message is kept
/// byte for byte as sent.
pub fn parse_messages(bytes: &[u8], max_messages: usize) -> Result<Vec<String>, ApiError> {
    parse_request(bytes, max_messages).map(|(messages, _)| messages)
}

/// [`parse_messages`], and whether the body was an array.
fn parse_request(bytes: &[u8], max_messages: usize) -> Result<(Vec<String>, bool), ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_utf8",
            format!("body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "body is empty; send a JSON object or an array of objects",
        ));
    }
    let malformed = |e: serde_json::Error| {
        ApiError::bad_request("malformed_json", format!("body is not valid JSON: {e}"))
    };
    let raw: &RawValue = serde_json::from_str(text).map_err(malformed)?;
    let raw = raw.get();
    let is_array = raw.starts_with('[');
    let messages: Vec<&str> = match raw.as_bytes().first() {
        Some(b'{') => vec![raw],
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).map_err(malformed)?;
            items.into_iter().map(RawValue::get).collect()
        }
        _ => {
            return Err(ApiError::bad_request(
                "not_an_object",
                format!(
                    "body is JSON {}; send a JSON object or an array of objects",
                    kind(raw)
                ),
            ))
        }
    };
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "empty_array",
            "the array holds no messages",
        ));
    }
    if messages.len() > max_messages {
        return Err(ApiError::too_large(
            "too_many_messages",
            format!(
                "{} messages in one request; the limit is {max_messages}",
                messages.len()
            ),
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        if !message.starts_with('{') {
            return Err(ApiError::bad_request(
                "not_an_object",
                format!(
                    "message {i} is JSON {}; each message must be a JSON object",
                    kind(message)
                ),
            ));
        }
        // The limit is each message's: the array around them is not stored.
        if let Some(at) = pipeline_core::nests_deeper_than(message, MAX_JSON_DEPTH) {
            return Err(ApiError::bad_request(
                "malformed_json",
                format!(
                    "message {i} nests deeper than {MAX_JSON_DEPTH} levels (at byte {at} of it)"
                ),
            ));
        }
        if message.len() > MAX_SQS_MESSAGE_BYTES {
            return Err(ApiError::too_large(
                error::code::MESSAGE_TOO_LARGE,
                format!(
                    "message {i} is {} bytes; SQS takes at most {MAX_SQS_MESSAGE_BYTES}",
                    message.len()
                ),
            ));
        }
        // SQS rejects characters outside #x9 | #xA | #xD | #x20-#xD7FF |
        // #xE000-#xFFFD | #x10000-#x10FFFF; JSON allows U+FFFE and U+FFFF raw.
        if let Some(c) = message
            .chars()
            .find(|c| matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        {
            return Err(ApiError::bad_request(
                "invalid_character",
                format!(
                    "message {i} holds U+{:04X}, which SQS does not accept; escape it as \\u{:04x}",
                    c as u32, c as u32
                ),
            ));
        }
    }
    Ok((messages.into_iter().map(str::to_owned).collect(), is_array))
}

/// Deepest nesting of arrays and objects accepted: what the consumer can
/// embed in a stored object that serde_json still reads back (skipping over
/// raw JSON does not enforce any limit, so we do).
pub const MAX_JSON_DEPTH: usize = pipeline_core::MAX_BODY_DEPTH;

fn kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use std::sync::Mutex;

    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Keeps the trace header of every entry it is asked to send.
    #[derive(Default)]
    struct TraceQueue(Mutex<Vec<Option<String>>>);

    impl Queue for TraceQueue {
        async fn send_batch(
            &self,
            entries: &[Entry],
            _: Duration,
        ) -> Result<Vec<EntryResult>, SendError> {
            let mut seen = self.0.lock().expect("lock");
            seen.extend(entries.iter().map(|e| e.trace_header.clone()));
            Ok(entries
                .iter()
                .map(|e| (e.id.clone(), Ok(format!("mid-{}", e.id))))
                .collect())
        }
    }

    struct NoRecords;

    impl Records for NoRecords {
        async fn get(&self, _: &str) -> Result<Option<pipeline_core::StoredRecord>, Error> {
            Ok(None)
        }
    }

    async fn traces_sent(ctx: Option<lambda_http::Context>) -> Vec<Option<String>> {
        let state = Arc::new(AppState {
            queue: TraceQueue::default(),
            records: NoRecords,
            config: Config::for_tests(),
        });
        let mut request = Request::post("/messages")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!("[{}]", ["{}"; 12].join(","))))
            .expect("valid request");
        if let Some(ctx) = ctx {
            request.extensions_mut().insert(ctx);
        }
        let response = app(state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let seen = state.queue.0.lock().expect("lock").clone();
        seen
    }

    #[tokio::test]
    async fn every_message_carries_the_invocations_xray_trace_header() {
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let mut ctx = lambda_http::Context::default();
        ctx.xray_trace_id = Some(trace.to_owned());
        let seen = traces_sent(Some(ctx)).await;
        assert_eq!(seen, vec![Some(trace.to_owned()); 12]);
    }

    #[tokio::test]
    async fn messages_carry_no_trace_header_outside_lambda() {
        assert_eq!(traces_sent(None).await, vec![None; 12]);
    }
}
