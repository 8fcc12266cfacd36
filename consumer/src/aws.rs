//! [`ObjectStore`] and [`RecordStore`] on the AWS SDK clients (feature `aws`).

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_s3::primitives::ByteStream;
use pipeline_aws::to_item as item;
use pipeline_core::{attr, StoredRecord};

use crate::store::{ObjectStore, RecordStore};
use crate::{Config, Error, Pipeline};

/// Builds the pipeline with SDK clients derived from one shared `SdkConfig`.
pub fn pipeline_from(
    sdk: &aws_config::SdkConfig,
    config: Config,
) -> Pipeline<S3Objects, DynamoRecords> {
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(sdk, config.s3_force_path_style));
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk));
    Pipeline {
        objects: S3Objects::new(s3, config.bucket.clone()),
        records: DynamoRecords::new(dynamodb, config.table.clone()),
        config,
    }
}

/// The S3 client's settings. Each one measured (instructions per message,
/// bench/results/2026-12-01-cpu-per-message.md) and safe against AWS:
/// - checksums only where an operation requires one: PutObject does not
///   (no Object Lock here), TLS guards the bytes in transit and S3 adds
///   its own checksum at rest;
/// - no stalled-stream protection: every attempt has a time limit
///   (`CallTimeouts`), which bounds a stalled body as well.
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

/// The DynamoDB client's settings: no stalled-stream protection, as for S3.
pub fn dynamodb_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .build()
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
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), Error> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            // UNSIGNED-PAYLOAD: S3 takes it over HTTPS, where TLS already
            // guards the body; the headers are still signed.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| Error::PutObject(e.into()))?;
        Ok(())
    }
}

/// [`RecordStore`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRecords {
    /// Writes into `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl RecordStore for DynamoRecords {
    async fn put_batch(&self, records: &[StoredRecord]) -> Result<Vec<String>, Error> {
        let requests = records
            .iter()
            .map(|r| {
                let put = PutRequest::builder()
                    .set_item(Some(item(r)))
                    .build()
                    .map_err(|e| Error::BatchWrite(e.into()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await
            .map_err(|e| Error::BatchWrite(e.into()))?;
        // A 200 can still leave part of the batch undone.
        let unprocessed = output
            .unprocessed_items
            .and_then(|mut by_table| by_table.remove(&self.table))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|request| {
                let mut item = request.put_request?.item;
                match item.remove(attr::ID)? {
                    AttributeValue::S(id) => Some(id),
                    _ => None,
                }
            })
            .collect();
        Ok(unprocessed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

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

    #[test]
    fn clients_skip_optional_checksums_and_stall_checks() {
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
        let store = DynamoRecords::new(client, "tbl");
        let left = store
            .put_batch(&[record("a"), record("b"), record("c")])
            .await
            .expect("call succeeds");
        assert_eq!(left, vec!["b".to_owned()]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_whole_batch_error_is_an_error() {
        let rule = mock!(aws_sdk_dynamodb::Client::batch_write_item).then_error(|| {
            aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError::ResourceNotFoundException(
                aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder()
                    .message("no table")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let err = DynamoRecords::new(client, "tbl")
            .put_batch(&[record("a")])
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::BatchWrite(_)), "{err:?}");
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
        assert!(matches!(err, Error::PutObject(_)), "{err:?}");
    }
}
