//! Entry point of the producer: on Lambda through `lambda_http`, elsewhere
//! as a plain HTTP service. Wiring only.

use std::sync::Arc;

fn main() -> Result<(), lambda_http::Error> {
    // A Lambda environment serves one request at a time on at most a few
    // vCPUs: one thread avoids cross-thread wake-ups. As a service, use them all.
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let mut runtime = if on_lambda {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    runtime.enable_all().build()?.block_on(run(on_lambda))
}

async fn run(on_lambda: bool) -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = producer::Config::from_env()?;
    // Each SendMessageBatch call narrows these to what its request has left.
    let sdk = pipeline_aws::sdk_config(pipeline_aws::CallTimeouts {
        attempt: config.call_attempt_timeout,
        operation: config.call_timeout,
    })
    .await;
    let bind_addr = config.bind_addr.clone();
    let app = producer::app(Arc::new(producer::aws::state_from(&sdk, config)));
    if on_lambda {
        return lambda_http::run(app).await;
    }
    let listener = tokio::net::TcpListener::bind(&bind_addr).await?;
    tracing::info!(address = %listener.local_addr()?, "producer listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
