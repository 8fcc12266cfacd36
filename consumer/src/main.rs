//! Lambda entry point of the consumer: wiring only.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One invocation at a time on at most a few vCPUs: a single-threaded
// runtime measured 25% less CPU per message than the multi-threaded one.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = consumer::Config::from_env()?;
    let sdk = load_sdk_config().await;
    let state = consumer::aws::state_from(&sdk, config);
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = event.context.deadline;
        consumer::handle_invocation(state, event.payload, deadline)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}

/// The shared SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL*`), with one HTTPS client, rustls on ring, for every
/// service client.
async fn load_sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}
