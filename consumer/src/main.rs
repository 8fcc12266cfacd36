//! Lambda entry point of the consumer: wiring only.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = consumer::Config::from_env()?;
    let sdk = aws_config::load_from_env().await;
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
