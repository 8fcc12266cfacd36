//! One Lambda invocation: the engine over the pipeline, then the metrics.

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use crate::processor::Pipeline;
use crate::store::{ObjectStore, RecordStore};
use crate::Error;

/// Handles one invocation whose deadline Lambda gives as milliseconds since
/// the Unix epoch: the partial batch response, or an invocation error when
/// no valid partial response exists, the invocation is too short to work,
/// or (by default) every message failed.
pub async fn handle_invocation<O: ObjectStore, R: RecordStore>(
    pipeline: &Pipeline<O, R>,
    event: SqsEvent,
    deadline_epoch_ms: u64,
) -> Result<SqsBatchResponse, Error> {
    let started = Instant::now();
    let deadline = sqs_batch::deadline_from_epoch_ms(deadline_epoch_ms);
    let config = &pipeline.config;
    let result = sqs_batch::process(pipeline, &event, deadline, &config.engine).await;
    let report = match &result {
        Ok(report) => Some(report),
        Err(err) => err.report(),
    };
    if let Some(report) = report {
        crate::metrics::emit(&config.metrics_namespace, report, started.elapsed());
    }
    match result {
        Ok(report) => Ok(report.response()),
        Err(err) => {
            tracing::error!(error = %err, "failing the invocation; the whole batch will be retried");
            Err(err.into())
        }
    }
}
