//! Configuration read once at start-up from the environment.

use std::time::Duration;

use pipeline_core::env::Env;

use crate::Error;

/// Settings of the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `QUEUE_URL`: the queue messages are sent to.
    pub queue_url: String,
    /// `TABLE_NAME`: the table `GET /messages/{id}` reads.
    pub table: String,
    /// `MAX_MESSAGES_PER_REQUEST`: most messages one request may carry.
    pub max_messages: usize,
    /// `MAX_REQUEST_BYTES`: largest request body accepted.
    pub max_request_bytes: usize,
    /// `SEND_CONCURRENCY`: SendMessageBatch calls in flight per request.
    pub send_concurrency: usize,
    /// `SEND_MAX_ATTEMPTS`: tries per entry that SQS failed with a retryable error.
    pub send_max_attempts: u32,
    /// `BIND_ADDR`: where to listen when not running on Lambda.
    pub bind_addr: String,
    /// `REQUEST_TIMEOUT_MS`: the time a request has when there is no Lambda
    /// deadline (a plain server); on Lambda the invocation's deadline rules.
    pub request_timeout: Duration,
    /// `CALL_ATTEMPT_TIMEOUT_MS`: one HTTP attempt of an SQS or DynamoDB call.
    pub call_attempt_timeout: Duration,
    /// `CALL_TIMEOUT_MS`: one whole call, SDK retries included (never more
    /// than the request has left).
    pub call_timeout: Duration,
    /// `DEFAULT_MESSAGE_GROUP`: the `MessageGroupId` of messages sent to a
    /// FIFO queue without one.
    pub default_group: String,
    /// Whether the queue is FIFO (its URL ends in `.fifo`).
    pub fifo: bool,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env = Env(lookup);
        let number = |name, default: usize, min: usize, max: usize| {
            env.number(name, default as u64, min as u64, max as u64)
                .map(|v| v as usize)
        };
        let millis = |name, default: u64, min: u64, max: u64| {
            env.number(name, default, min, max)
                .map(Duration::from_millis)
        };
        let queue_url = env.required("QUEUE_URL")?;
        let default_group = env
            .text("DEFAULT_MESSAGE_GROUP")
            .unwrap_or_else(|| "default".to_owned());
        if !pipeline_core::valid_key(&default_group) {
            return Err(pipeline_core::env::EnvError::Invalid {
                name: "DEFAULT_MESSAGE_GROUP",
                reason: format!(
                    "expected 1-128 ASCII letters, digits or punctuation, got {default_group:?}"
                ),
            }
            .into());
        }
        Ok(Self {
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
            table: env.required("TABLE_NAME")?,
            max_messages: number("MAX_MESSAGES_PER_REQUEST", 500, 1, 10_000)?,
            // Lambda's own request payload limit is 6 MB.
            max_request_bytes: number(
                "MAX_REQUEST_BYTES",
                6 * 1024 * 1024,
                1024,
                64 * 1024 * 1024,
            )?,
            send_concurrency: number("SEND_CONCURRENCY", 16, 1, 256)?,
            send_max_attempts: number("SEND_MAX_ATTEMPTS", 3, 1, 10)? as u32,
            bind_addr: env
                .text("BIND_ADDR")
                .unwrap_or_else(|| "127.0.0.1:3000".to_owned()),
            request_timeout: millis("REQUEST_TIMEOUT_MS", 10_000, 100, 900_000)?,
            call_attempt_timeout: millis("CALL_ATTEMPT_TIMEOUT_MS", 2_000, 50, 60_000)?,
            call_timeout: millis("CALL_TIMEOUT_MS", 5_000, 50, 900_000)?,
            default_group,
        })
    }

    /// A configuration for tests, with defaults everywhere but the names.
    pub fn for_tests() -> Self {
        Self::from_lookup(|name| match name {
            "QUEUE_URL" => Some("http://queue".to_owned()),
            "TABLE_NAME" => Some("table".to_owned()),
            _ => None,
        })
        .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_queue_url_is_named() {
        let err = Config::from_lookup(|_| None).expect_err("must be rejected");
        assert_eq!(err.to_string(), "missing environment variable QUEUE_URL");
    }

    #[test]
    fn invalid_limit_is_named() {
        let err = Config::from_lookup(|n| match n {
            "QUEUE_URL" | "TABLE_NAME" => Some("x".into()),
            "MAX_MESSAGES_PER_REQUEST" => Some("lots".into()),
            _ => None,
        })
        .expect_err("must be rejected")
        .to_string();
        assert!(
            err.contains("MAX_MESSAGES_PER_REQUEST") && err.contains("lots"),
            "{err}"
        );
    }
}
