//! Lambda entry point of the consumer: wiring only.

use lambda_batch::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_runtime::Error> {
    // Classic Lambda: one invocation at a time on at most a few vCPUs; a
    // single-threaded runtime measured 25% less CPU per message. Managed
    // Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1): several invocations per
    // process, on every core the instance gives.
    let concurrent = std::env::var("AWS_LAMBDA_MAX_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 1);
    let mut runtime = if concurrent {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    runtime.enable_all().build()?.block_on(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = consumer::Config::from_env()?;
    let sdk = pipeline_aws::sdk_config(config.call_timeouts).await;
    // Shared by every invocation for the life of the process (and by
    // several at once under run_concurrent): built once, never freed.
    let pipeline: &'static _ = Box::leak(Box::new(consumer::pipeline_from(&sdk, config)));
    // Errors reach Lambda under lambda-batch's errorType names
    // (BatchAllFailed, BatchInvalidEvent, BatchDeadlineTooShort).
    let handler = service_fn(move |event: LambdaEvent<SqsEvent>| {
        consumer::handle_invocation(pipeline, event.payload, event.context.deadline)
    });
    // Sequential, as `run`, unless AWS_LAMBDA_MAX_CONCURRENCY > 1.
    lambda_runtime::run_concurrent(handler).await
}
