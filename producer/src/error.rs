//! The producer's errors: configuration and store errors, and the HTTP
//! errors every rejected request gets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeline_core::ErrorBody;

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the producer library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration variable is missing or unusable.
    #[error(transparent)]
    Config(#[from] pipeline_core::env::EnvError),
    /// A SendMessageBatch request could not be built.
    #[error("SQS SendMessageBatch request is invalid")]
    Queue(#[source] BoxError),
    /// Reading a record failed.
    #[error("DynamoDB GetItem failed")]
    Records(#[source] BoxError),
}

/// What a failed SendMessageBatch call means for its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, a 5xx or a connection failure: sending again may work.
    Retryable,
    /// The call ran out of time: the entries may or may not be in the queue.
    TimedOut,
    /// The queue is missing, access is denied, or a parameter is invalid:
    /// nothing will work until an operator fixes the configuration.
    Misconfigured,
}

impl ErrorClass {
    /// The code clients see in `failed[].code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Retryable => "queue_unavailable",
            Self::TimedOut => "queue_timeout",
            Self::Misconfigured => "queue_misconfigured",
        }
    }

    /// The message clients see: fixed text, never AWS's (which may name
    /// accounts, roles and resources).
    pub fn message(self) -> &'static str {
        match self {
            Self::Retryable => "SQS did not take the message; sending it again may succeed",
            Self::TimedOut => {
                "SQS did not answer in time; the message may or may not be in the queue: \
                 resend it with the same Idempotency-Key to have it stored exactly once"
            }
            Self::Misconfigured => {
                "the service cannot reach its queue (configuration error); \
                 retrying will not help until an operator fixes it"
            }
        }
    }
}

/// A SendMessageBatch call that failed as a whole, classified.
#[derive(Debug, thiserror::Error)]
#[error("SQS SendMessageBatch failed ({code})")]
pub struct SendError {
    /// What it means for the entries.
    pub class: ErrorClass,
    /// The AWS error code, or a code of ours (for the log).
    pub code: String,
    /// The error (for the log).
    #[source]
    pub source: BoxError,
}

impl SendError {
    /// An error of this class and code.
    pub fn new(class: ErrorClass, code: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            class,
            code: code.into(),
            source: source.into(),
        }
    }
}

/// An HTTP error answered with a JSON [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 413 Payload Too Large.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The one place request errors are logged.
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code, message = %self.message, "request rejected");
        }
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            request_id: None,
        };
        (self.status, Json(body)).into_response()
    }
}
