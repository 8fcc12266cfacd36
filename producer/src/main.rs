//! Entry point of the producer: on Lambda through `lambda_http`, elsewhere
//! as a plain HTTP service. Wiring only.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = producer::Config::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let bind_addr = config.bind_addr.clone();
    let app = producer::app(Arc::new(producer::aws::state_from(&sdk, config)));
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
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
