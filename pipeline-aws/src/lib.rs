//! The AWS glue the producer, the consumer and the tools share, written
//! once: the SDK configuration, the DynamoDB item of a record, and backoff.

use std::time::Duration;

#[cfg(feature = "sdk")]
pub mod item;
#[cfg(feature = "sdk")]
pub use item::{from_item, to_item, RecordTable};

/// Time limits for every call of an SDK client. The SDK's default config
/// sets a connect timeout only, so without these a call that never answers
/// waits until the function is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    /// One HTTP attempt; the SDK retries a timed-out attempt.
    pub attempt: Duration,
    /// The whole operation, retries included.
    pub operation: Duration,
}

/// The shared SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL*`), with one HTTPS client (rustls on ring) and the
/// given time limits, for every service client.
#[cfg(feature = "sdk")]
pub async fn sdk_config(timeouts: CallTimeouts) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts.timeout_config())
        .load()
        .await
}

#[cfg(feature = "sdk")]
impl CallTimeouts {
    /// The SDK's timeout settings for these limits, for a client or for one
    /// call (`customize().config_override(..)`). The connect timeout is the
    /// SDK's default (3.1 s), or the attempt's limit if that is shorter.
    pub fn timeout_config(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(3_100).min(self.attempt))
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// Full-jitter exponential backoff: a random delay between zero and
/// `min(cap, base * 2^(attempt-1))`, for attempt 1, 2, ...
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_never_past_it() {
        let (base, cap) = (Duration::from_millis(10), Duration::from_millis(100));
        for _ in 0..200 {
            assert!(backoff(1, base, cap) <= base);
            assert!(backoff(3, base, cap) <= Duration::from_millis(40));
            assert!(backoff(30, base, cap) <= cap);
        }
        let most = (0..500).map(|_| backoff(30, base, cap)).max();
        assert!(
            most > Some(Duration::from_millis(50)),
            "{most:?}: jitter spans the range"
        );
    }
}
