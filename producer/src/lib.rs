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

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipeline_core::{record_id, MAX_SQS_MESSAGE_BYTES};
use serde_json::value::RawValue;

pub use config::Config;
pub use error::{ApiError, BoxError, Error};
pub use store::{Entry, EntryFailure, EntryResult, Queue, Records};

#[cfg(feature = "aws")]
pub use aws::{state_from, DynamoRecords, SqsQueue};

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
        .route("/messages/{message_id}", get(get_message::<Q, R>))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

async fn post_messages<Q: Queue, R: Records>(
    State(state): State<Arc<AppState<Q, R>>>,
    TraceHeader(trace_header): TraceHeader,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let config = &state.config;
    check_content_type(&headers)?;
    let bytes = read_body(&headers, body, config.max_request_bytes).await?;
    let bodies = parse_messages(&bytes, config.max_messages)?;
    let result = send::send_all(
        &state.queue,
        &bodies,
        config.send_concurrency,
        config.send_max_attempts,
        trace_header.as_deref(),
    )
    .await;
    let status = if result.failed.is_empty() {
        StatusCode::ACCEPTED
    } else if !result.accepted.is_empty() {
        StatusCode::MULTI_STATUS
    } else if result.failed.iter().any(|f| f.retryable) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    if !result.failed.is_empty() {
        tracing::warn!(
            accepted = result.accepted.len(),
            failed = result.failed.len(),
            "messages not enqueued"
        );
    }
    Ok((status, Json(result)).into_response())
}

async fn get_message<Q: Queue, R: Records>(
    State(state): State<Arc<AppState<Q, R>>>,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    if message_id.is_empty() || message_id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_message_id",
            "messageId must be 1 to 128 characters",
        ));
    }
    let id = record_id(&message_id).to_string();
    match state.records.get(&id).await {
        Ok(Some(record)) => Ok(Json(record).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no record for message {message_id} yet (record id {id})"),
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "reading the record failed: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
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
    if let Some(at) = pipeline_core::nests_deeper_than(raw.get(), MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!("JSON nests deeper than {MAX_JSON_DEPTH} levels (at byte {at})"),
        ));
    }
    let raw = raw.get();
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
        if message.len() > MAX_SQS_MESSAGE_BYTES {
            return Err(ApiError::too_large(
                "message_too_large",
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
    Ok(messages.into_iter().map(str::to_owned).collect())
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
        async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
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
