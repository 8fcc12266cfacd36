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
    let sdk = load_sdk_config().await;
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
