//! One Lambda invocation: the engine over the pipeline, then the metrics.

use std::time::Instant;

use lambda_batch::sqs::{SqsBatchResponse, SqsEvent};

use crate::metrics::Counts;
use crate::processor::Pipeline;
use crate::store::{ObjectStore, RecordStore};

/// Handles one invocation whose deadline Lambda gives as milliseconds since
/// the Unix epoch: the partial batch response, or an invocation error when
/// no valid partial response exists, the invocation is too short to work,
/// or (by default) nothing succeeded. The error reaches Lambda under its
/// `errorType` (`BatchAllFailed`, ...).
pub async fn handle_invocation<O: ObjectStore, R: RecordStore>(
    pipeline: &Pipeline<O, R>,
    event: SqsEvent,
    deadline_epoch_ms: u64,
) -> Result<SqsBatchResponse, lambda_batch::Error> {
    let started = Instant::now();
    let deadline = lambda_batch::deadline_from_epoch_ms(deadline_epoch_ms);
    let config = &pipeline.config;
    let result = lambda_batch::process_batched(event, deadline, pipeline, &config.engine).await;
    let namespace = &config.metrics_namespace;
    match result {
        Ok(report) => {
            crate::metrics::emit(namespace, Counts::of(&report), started.elapsed());
            Ok(report.response())
        }
        Err(err) => {
            if let lambda_batch::Error::AllFailed(summary) = &err {
                crate::metrics::emit(namespace, Counts::all_failed(summary), started.elapsed());
            }
            tracing::error!(
                error = %err,
                error_type = err.error_type(),
                "failing the invocation; the whole batch will be retried"
            );
            Err(err)
        }
    }
}
