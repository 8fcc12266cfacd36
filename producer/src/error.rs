//! The producer's errors: configuration and store errors, and the HTTP
//! errors every rejected request gets.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipeline_core::{BoxError, ErrorBody};

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
    /// SQS answered that it did not take the entries (throttling, a 5xx),
    /// or the connection was refused before the request went out: sending
    /// again may work, and cannot duplicate anything.
    Retryable,
    /// The call may have taken effect: no answer in time, an answer that
    /// could not be read, or the connection lost after the request was sent
    /// (on any of the SDK's attempts).
    OutcomeUnknown,
    /// The queue is missing, access is denied, or a parameter is invalid:
    /// nothing will work until an operator fixes the configuration.
    Misconfigured,
    /// SQS refused the call for its size.
    TooLarge,
}

impl ErrorClass {
    /// The code clients see in `failed[].code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Retryable => "queue_unavailable",
            Self::OutcomeUnknown => code::OUTCOME_UNKNOWN,
            Self::Misconfigured => "queue_misconfigured",
            Self::TooLarge => code::MESSAGE_TOO_LARGE,
        }
    }

    /// The message clients see: fixed text, never AWS's (which may name
    /// accounts, roles and resources).
    pub fn message(self) -> &'static str {
        match self {
            Self::Retryable => {
                "SQS did not take the message (it was not enqueued); sending it again may succeed"
            }
            Self::OutcomeUnknown => OUTCOME_UNKNOWN_MESSAGE,
            Self::Misconfigured => {
                "the service cannot reach its queue (configuration error); \
                 retrying will not help until an operator fixes it"
            }
            Self::TooLarge => TOO_LARGE_MESSAGE,
        }
    }

    /// Whether sending the entries again may succeed.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Retryable | Self::OutcomeUnknown)
    }
}

/// The codes of `failed[]` that are the producer's own (beside
/// [`ErrorClass::code`] and SQS's entry codes).
pub mod code {
    /// SQS may have taken the message: no answer in time, an unreadable
    /// answer, or the connection lost after the request was sent.
    pub const OUTCOME_UNKNOWN: &str = "queue_outcome_unknown";
    /// Not sent, to keep its FIFO message group in order: an earlier
    /// message of its group in the request was not enqueued.
    pub const HELD_BACK: &str = "held_back_for_order";
    /// SQS failed this message but took later messages of its group in the
    /// same call, so it can no longer be enqueued ahead of them.
    pub const ORDER_BROKEN: &str = "group_order_broken";
    /// Never sent: the request ran out of time before its turn.
    pub const NOT_SENT: &str = "not_sent_in_time";
    /// SQS refused the message for its size (body and message attributes).
    pub const MESSAGE_TOO_LARGE: &str = "message_too_large";
}

/// The one message of every answer whose outcome is unknown.
const OUTCOME_UNKNOWN_MESSAGE: &str =
    "SQS may have taken this message but its answer was lost (no answer in time, \
     an unreadable answer, or the connection dropped after sending): it may be in the queue; \
     resend with the same Idempotency-Key to have it stored once";

/// The message of a message SQS refused for its size.
const TOO_LARGE_MESSAGE: &str =
    "SQS refused this message for its size: its body and message attributes \
     (name, type and value) count toward SQS's 1 MiB; sending it again as is will not help";

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
