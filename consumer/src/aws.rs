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
        .interceptor(LeanRequests {
            unsigned_payload: true,
        })
        .endpoint_resolver(KeyFreeEndpoints::default())
        .build()
}

/// S3's endpoint rules read the bucket, region, endpoint and flags but not
/// the object key (aws-sdk-s3 1.157: the `Key`, `Prefix` and `CopySource`
/// parameters are bound and never used; the test below compares with the
/// SDK's resolver). The SDK's one-entry cache is keyed on every parameter,
/// so with a new key per put it misses twice per call (endpoint, then the
/// endpoint-based auth scheme). This resolves without those three, so the
/// cache hits.
#[derive(Debug, Default)]
pub struct KeyFreeEndpoints(aws_sdk_s3::config::endpoint::DefaultResolver);

impl aws_sdk_s3::config::endpoint::ResolveEndpoint for KeyFreeEndpoints {
    fn resolve_endpoint<'a>(
        &'a self,
        params: &'a aws_sdk_s3::config::endpoint::Params,
    ) -> aws_sdk_s3::config::endpoint::EndpointFuture<'a> {
        use aws_sdk_s3::config::endpoint::{EndpointFuture, Params};
        let key_free = Params::builder()
            .set_bucket(params.bucket().map(str::to_owned))
            .set_region(params.region().map(str::to_owned))
            .set_use_fips(params.use_fips())
            .set_use_dual_stack(params.use_dual_stack())
            .set_endpoint(params.endpoint().map(str::to_owned))
            .set_force_path_style(params.force_path_style())
            .set_accelerate(params.accelerate())
            .set_use_global_endpoint(params.use_global_endpoint())
            .set_use_object_lambda_endpoint(params.use_object_lambda_endpoint())
            .set_disable_access_points(params.disable_access_points())
            .set_disable_multi_region_access_points(params.disable_multi_region_access_points())
            .set_use_arn_region(params.use_arn_region())
            .set_use_s3_express_control_endpoint(params.use_s3_express_control_endpoint())
            .set_disable_s3_express_session_auth(params.disable_s3_express_session_auth())
            .build();
        match key_free {
            Ok(key_free) => {
                EndpointFuture::new(async move { self.0.resolve_endpoint(&key_free).await })
            }
            Err(_) => self.0.resolve_endpoint(params),
        }
    }
}

/// Set once per call, before the SDK's own interceptors run: an unsigned
/// payload (S3 only) and the SDK's telemetry-only interceptors switched off
/// (user agent, invocation id, attempt info), with the SDK's own
/// `disable_interceptor`, as its presigning does.
#[derive(Debug)]
pub struct LeanRequests {
    unsigned_payload: bool,
}

impl aws_sdk_s3::config::Intercept for LeanRequests {
    fn name(&self) -> &'static str {
        "LeanRequests"
    }

    fn read_before_execution(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::interceptors::disable_interceptor;
        let state = cfg.interceptor_state();
        if self.unsigned_payload {
            state.store_put(aws_runtime::auth::PayloadSigningOverride::UnsignedPayload);
        }
        const WHY: &str = "telemetry only; not sent (consumer LeanRequests)";
        state.store_put(disable_interceptor::<
            aws_runtime::user_agent::UserAgentInterceptor,
        >(WHY));
        state.store_put(disable_interceptor::<
            aws_runtime::invocation_id::InvocationIdInterceptor,
        >(WHY));
        state.store_put(disable_interceptor::<
            aws_runtime::request_info::RequestInfoInterceptor,
        >(WHY));
        Ok(())
    }
}

/// The DynamoDB client's settings: no stalled-stream protection, as for S3.
pub fn dynamodb_config(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .stalled_stream_protection(
            aws_sdk_dynamodb::config::StalledStreamProtectionConfig::disabled(),
        )
        .interceptor(LeanRequests {
            unsigned_payload: false,
        })
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

    #[test]
    fn lean_requests_mark_the_payload_unsigned_and_turn_telemetry_off() {
        use aws_runtime::auth::PayloadSigningOverride;
        use aws_sdk_s3::config::{ConfigBag, Intercept};
        use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
        use aws_smithy_runtime_api::client::interceptors::DisableInterceptor;
        let ctx = InterceptorContext::new(Input::doesnt_matter());
        for unsigned in [true, false] {
            let mut cfg = ConfigBag::base();
            LeanRequests {
                unsigned_payload: unsigned,
            }
            .read_before_execution(&(&ctx).into(), &mut cfg)
            .expect("never fails");
            assert_eq!(
                matches!(
                    cfg.load::<PayloadSigningOverride>(),
                    Some(PayloadSigningOverride::UnsignedPayload)
                ),
                unsigned
            );
            assert!(cfg
                .load::<DisableInterceptor<aws_runtime::user_agent::UserAgentInterceptor>>()
                .is_some());
            assert!(cfg
                .load::<DisableInterceptor<aws_runtime::invocation_id::InvocationIdInterceptor>>()
                .is_some());
            assert!(cfg
                .load::<DisableInterceptor<aws_runtime::request_info::RequestInfoInterceptor>>()
                .is_some());
        }
    }

    #[tokio::test]
    async fn key_free_endpoints_match_the_sdk_resolver() {
        use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let key_free = KeyFreeEndpoints::default();
        let sdk = DefaultResolver::new();
        let mut seen = std::collections::HashSet::new();
        for (region, endpoint, path_style) in [
            ("us-east-1", None, false),
            ("eu-west-1", None, false),
            ("eu-west-1", None, true),
            ("us-east-1", Some("http://127.0.0.1:4566"), true),
        ] {
            for key in ["records/a.json", "records/ü b?.json", ""] {
                let params = Params::builder()
                    .bucket("my-bucket")
                    .region(region)
                    .set_endpoint(endpoint.map(str::to_owned))
                    .force_path_style(path_style)
                    .use_fips(false)
                    .use_dual_stack(false)
                    .accelerate(false)
                    .key(key)
                    .build()
                    .expect("valid params");
                let ours = key_free.resolve_endpoint(&params).await.expect("resolves");
                let theirs = sdk.resolve_endpoint(&params).await.expect("resolves");
                assert_eq!(ours, theirs, "{region} {endpoint:?} {path_style} {key:?}");
                seen.insert(ours.url().to_owned());
            }
        }
        // The shapes differ: regional, path-style, custom endpoint.
        assert!(seen.len() >= 3, "{seen:?}");
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
