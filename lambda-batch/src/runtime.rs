//! Glue to the Lambda runtime (feature `runtime`, on by default).

use std::time::Instant;

use lambda_runtime::{service_fn, Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BatchHandler, Decode, Error, Handler, Options, Source};

/// When the engine must be done with this invocation: Lambda's deadline.
pub fn deadline(context: &Context) -> Instant {
    crate::deadline_from_epoch_ms(context.deadline)
}

/// One invocation with a per-record [`Handler`]: the partial batch response,
/// or an [`Error`] that Lambda records under its
/// [`error_type`](Error::error_type). The building block for your own
/// `service_fn`, e.g. with `lambda_runtime::run_concurrent`.
pub async fn handle<S, P, H>(
    event: LambdaEvent<S>,
    handler: &H,
    options: &Options,
) -> Result<S::Response, Error>
where
    S: Source,
    P: Decode<S::Record> + Send,
    H: Handler<S, P>,
{
    let deadline = deadline(&event.context);
    let report = crate::process(event.payload, deadline, handler, options).await?;
    Ok(report.response())
}

/// One invocation with a [`BatchHandler`] (see [`handle`]).
pub async fn handle_batched<S, H>(
    event: LambdaEvent<S>,
    handler: &H,
    options: &Options,
) -> Result<S::Response, Error>
where
    S: Source,
    H: BatchHandler<S>,
{
    let deadline = deadline(&event.context);
    let report = crate::process_batched(event.payload, deadline, handler, options).await?;
    Ok(report.response())
}

/// Runs a consumer of source `S` on Lambda: one call of `handler` per
/// record, one invocation at a time (`lambda_runtime::run`). The per-source
/// shorthands ([`sqs::run`](crate::sqs::run), ...) use default options.
pub async fn run<S, P, H>(handler: H, options: Options) -> Result<(), lambda_runtime::Error>
where
    S: Source + DeserializeOwned,
    S::Response: Serialize,
    P: Decode<S::Record> + Send,
    H: Handler<S, P>,
{
    let (handler, options) = (&handler, &options);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S>| {
        handle(event, handler, options)
    }))
    .await
}

/// Runs a consumer of source `S` with a [`BatchHandler`] (see [`run`]).
pub async fn run_batched<S, H>(handler: H, options: Options) -> Result<(), lambda_runtime::Error>
where
    S: Source + DeserializeOwned,
    S::Response: Serialize,
    H: BatchHandler<S>,
{
    let (handler, options) = (&handler, &options);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S>| {
        handle_batched(event, handler, options)
    }))
    .await
}
