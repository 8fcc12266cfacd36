//! [`Queue`] and [`Records`] on the AWS SDK clients (feature `aws`).

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, SendMessageBatchRequestEntry,
};
use lambda_http::RequestExt;
use pipeline_core::{attr, StoredRecord};

use crate::store::{Entry, EntryFailure, EntryResult, Queue, Records};
use crate::{AppState, Config, Error};

/// Builds the state with SDK clients derived from one shared `SdkConfig`.
pub fn state_from(
    sdk: &aws_config::SdkConfig,
    config: Config,
) -> AppState<SqsQueue, DynamoRecords> {
    AppState {
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), config.queue_url.clone()),
        records: DynamoRecords::new(aws_sdk_dynamodb::Client::new(sdk), config.table.clone()),
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

/// [`Queue`] on SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// Sends to the queue at `url` through `client`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl Queue for SqsQueue {
    async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
        let request = entries
            .iter()
            .map(|e| {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(&e.id)
                    .message_body(&e.body);
                if let Some(trace) = &e.trace_header {
                    // Lambda's SQS poller links the consumer's trace to this one.
                    let value = MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(trace)
                        .build()
                        .map_err(|err| Error::Queue(err.into()))?;
                    entry = entry.message_system_attributes(
                        MessageSystemAttributeNameForSends::AwsTraceHeader,
                        value,
                    );
                }
                entry.build().map_err(|err| Error::Queue(err.into()))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(request))
            .send()
            .await
            .map_err(|err| Error::Queue(err.into()))?;
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

/// [`Records`] on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRecords {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRecords {
    /// Reads `table` through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl Records for DynamoRecords {
    async fn get(&self, id: &str) -> Result<Option<StoredRecord>, Error> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(|err| Error::Records(err.into()))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        pipeline_aws::from_item(&item)
            .map(Some)
            .map_err(|reason| Error::Records(format!("item {id}: {reason}").into()))
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
                trace_header: None,
            },
            Entry {
                id: "1".into(),
                body: "{}".into(),
                trace_header: None,
            },
        ];
        let mut results = queue.send_batch(&entries).await.expect("call succeeds");
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
            },
            Entry {
                id: "1".into(),
                body: "{}".into(),
                trace_header: None,
            },
        ];
        SqsQueue::new(client, "q")
            .send_batch(&entries)
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

    #[tokio::test]
    async fn missing_item_is_none() {
        let rule = mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| {
            aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build()
        });
        let client = mock_client!(aws_sdk_dynamodb, [&rule]);
        let found = DynamoRecords::new(client, "t")
            .get("id")
            .await
            .expect("call succeeds");
        assert_eq!(found, None);
    }
}
