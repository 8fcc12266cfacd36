//! [`ObjectStore`] and [`RecordStore`] on the AWS SDK clients (feature `aws`).

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use pipeline_aws::RecordTable;
use pipeline_core::StoredRecord;

use crate::store::{ObjectStore, RecordStore};
use crate::{Config, Pipeline, StoreError};

const BATCH_WRITE: &str = "DynamoDB BatchWriteItem";

/// Builds the pipeline with SDK clients derived from one shared `SdkConfig`.
pub fn pipeline_from(
    sdk: &aws_config::SdkConfig,
    config: Config,
) -> Pipeline<S3Objects, RecordTable> {
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(sdk, config.s3_force_path_style));
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk));
    Pipeline {
        objects: S3Objects::new(s3, config.bucket.clone()),
        records: RecordTable::new(dynamodb, config.table.clone()),
        config,
    }
}

/// The S3 client's settings, each measured (instructions per message,
/// bench/results/2026-12-01-cpu-per-message.md) and safe against AWS:
/// - checksums only where an operation requires one: PutObject does not
///   (no Object Lock here), TLS guards the bytes in transit and S3 adds
///   its own checksum at rest;
/// - no stalled-stream protection: every attempt has a time limit
///   (`CallTimeouts`), which bounds a stalled body as well.
///
/// The SDK's own retries stay on for S3: they are PutObject's one retry layer.
pub fn s3_config(sdk: &aws_config::SdkConfig, force_path_style: bool) -> aws_sdk_s3::Config {
    use aws_sdk_s3::config::{
        RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
    };
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

/// The DynamoDB client's settings: no stalled-stream protection, as for S3,
/// and no SDK retries: [`Pipeline`]'s flush is BatchWriteItem's one retry
/// layer (unprocessed items, throttling, 5xx and timeouts alike), so the two
/// are never stacked and every retry fits the invocation's deadline.
pub fn dynamodb_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build()
}

/// Whether another attempt of a failed call may succeed: throttling, a 5xx,
/// a timeout or a connection that failed or was lost. A request the service
/// refused (validation, access, a missing table) will not.
pub fn retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    /// Throttling codes of DynamoDB and S3 (AWS's error references).
    const THROTTLING: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "SlowDown",
    ];
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|c| THROTTLING.contains(&c))
        }
        _ => false,
    }
}

/// [`ObjectStore`] on S3.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    /// Writes into `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

impl ObjectStore for S3Objects {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            // No SHA-256 of the body for SigV4: TLS protects it in transit
            // and S3 checksums it at rest (the SDK's public per-call switch).
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| StoreError::new("S3 PutObject", retryable(&e), e))?;
        Ok(())
    }
}

/// [`RecordStore`] on the records table: one BatchWriteItem attempt, its
/// error classed for [`Pipeline`]'s retries.
impl RecordStore for RecordTable {
    async fn put_batch(&self, records: &[StoredRecord]) -> Result<Vec<String>, StoreError> {
        RecordTable::put_batch(self, records)
            .await
            .map_err(|e| StoreError::new(BATCH_WRITE, retryable(&e), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use pipeline_aws::to_item as item;

    fn record(id: &str) -> StoredRecord {
        StoredRecord {
            id: id.to_owned(),
            message_id: format!("m-{id}"),
            s3_key: format!("records/{id}.json"),
            received_at: "2026-01-01T00:00:00.000Z".to_owned(),
            body_bytes: 2,
            stored_at: "2026-01-01T00:00:01.000Z".to_owned(),
        }
    }

    /// A DynamoDB error as it comes over the wire, through the SDK's own
    /// deserializer.
    fn dynamodb_error(status: u16, code: &str) -> aws_smithy_runtime_api::http::Response {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("status"),
            aws_smithy_types::body::SdkBody::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"test"}}"#
            )),
        )
    }

    fn throttled() -> aws_smithy_runtime_api::http::Response {
        dynamodb_error(400, "ProvisionedThroughputExceededException")
    }

    #[test]
    fn clients_skip_optional_checksums_stall_checks_and_dynamodb_retries() {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let s3 = s3_config(&sdk, true);
        assert_eq!(
            s3.request_checksum_calculation(),
            Some(&aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        );
        assert_eq!(
            s3.response_checksum_validation(),
            Some(&aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        );
        assert_eq!(
            s3.stalled_stream_protection().map(|c| c.is_enabled()),
            Some(false)
        );
        let dynamodb = dynamodb_config(&sdk);
        assert_eq!(
            dynamodb.stalled_stream_protection().map(|c| c.is_enabled()),
            Some(false)
        );
        assert_eq!(dynamodb.retry_config().map(|r| r.max_attempts()), Some(1));
    }

    #[tokio::test]
    async fn unprocessed_items_are_returned_by_id() {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .match_requests(|req| {
                req.request_items().and_then(|m| m.get("tbl")).map(Vec::len) == Some(3)
            })
            .then_output(|| {
                let left = WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item(&record("b"))))
                            .build()
                            .expect("item set"),
                    )
                    .build();
                BatchWriteItemOutput::builder()
                    .unprocessed_items("tbl", vec![left])
                    .build()
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule]);
        let store = RecordTable::new(client, "tbl");
        let left = RecordStore::put_batch(&store, &[record("a"), record("b"), record("c")])
            .await
            .expect("call succeeds");
        assert_eq!(left, vec!["b".to_owned()]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn throttling_and_5xx_are_retryable_and_a_missing_table_is_not() {
        let missing = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_http_response(|| dynamodb_error(400, "ResourceNotFoundException"));
        let invalid = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_http_response(|| dynamodb_error(400, "ValidationException"));
        let throttling =
            mock!(aws_sdk_dynamodb::Client::batch_write_item).then_http_response(throttled);
        let limit = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_http_response(|| dynamodb_error(400, "RequestLimitExceeded"));
        let server = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .then_http_response(|| dynamodb_error(500, "InternalServerError"));
        let cases = [
            (&missing, false),
            (&invalid, false),
            (&throttling, true),
            (&limit, true),
            (&server, true),
        ];
        for (rule, expected) in cases {
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [rule], |c| {
                c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            });
            let err = RecordStore::put_batch(&RecordTable::new(client, "tbl"), &[record("a")])
                .await
                .expect_err("must fail");
            assert_eq!(
                err.retryable,
                expected,
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            );
            assert_eq!(rule.num_calls(), 1, "one attempt per call");
        }
    }

    #[tokio::test]
    async fn a_throttling_storm_longer_than_the_sdk_retries_is_ridden_out_before_the_deadline() {
        use crate::{Config, Pipeline};
        use lambda_batch::BatchHandler;
        // Throttled eight times in a row (the SDK's standard mode gives up
        // after three attempts), then accepted: one retry layer, the
        // pipeline's, makes exactly nine calls and reports nothing.
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item)
            .sequence()
            .http_response(throttled)
            .times(8)
            .output(|| BatchWriteItemOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| {
            c.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        });
        let s3 = mock!(aws_sdk_s3::Client::put_object)
            .then_output(|| PutObjectOutput::builder().build());
        let mut config = Config::for_tests("bkt", "tbl");
        config.backoff_base = std::time::Duration::from_millis(1);
        config.backoff_cap = std::time::Duration::from_millis(8);
        let pipeline = Pipeline {
            objects: S3Objects::new(mock_client!(aws_sdk_s3, [&s3]), "bkt"),
            records: RecordTable::new(client, "tbl"),
            config,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let results = pipeline
            .flush(vec![record("a"), record("b")], deadline)
            .await;
        assert_eq!(results, vec![Ok(()), Ok(())]);
        assert_eq!(rule.num_calls(), 9);
    }

    #[tokio::test]
    async fn put_object_sends_bucket_key_and_json_type() {
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(|req| {
                req.bucket() == Some("bkt")
                    && req.key() == Some("records/x.json")
                    && req.content_type() == Some("application/json")
            })
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, [&rule]);
        S3Objects::new(client, "bkt")
            .put("records/x.json", b"{}".to_vec())
            .await
            .expect("put succeeds");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn put_object_failure_is_an_error() {
        let rule = mock!(aws_sdk_s3::Client::put_object)
            .then_error(|| PutObjectError::unhandled("SlowDown"));
        let client = mock_client!(aws_sdk_s3, [&rule]);
        let err = S3Objects::new(client, "bkt")
            .put("k", vec![])
            .await
            .expect_err("must fail");
        assert_eq!(err.operation, "S3 PutObject");
    }
}
