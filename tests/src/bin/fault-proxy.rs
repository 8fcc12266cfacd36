//! Runs the fault-injecting proxy as a process, for soak runs:
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:4566 --port 4590 \
//!     --fault s3-put:slowdown:0.01 --fault dynamodb-batch-write:unprocessed:0.01
//! ```
//!
//! Each `--fault OP:KIND:SHARE` aims KIND at SHARE (0-1) of OP's requests.
//! OP: s3-put, dynamodb-batch-write, dynamodb-get, sqs-send-batch.
//! KIND: slowdown, s3-500, throughput, throttling, dynamodb-500, unprocessed,
//! sqs-500, sqs-partial, reset, delay-<ms>. It prints its counters every 10
//! seconds and on exit (Ctrl-C, or after --seconds).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tests::proxy::{Fault, FaultProxy, Op, Rule};

const OPS: [(&str, Op); 4] = [
    ("s3-put", Op::S3PutObject),
    ("dynamodb-batch-write", Op::DynamoBatchWriteItem),
    ("dynamodb-get", Op::DynamoGetItem),
    ("sqs-send-batch", Op::SqsSendMessageBatch),
];

fn parse_rule(spec: &str) -> Result<Rule> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [op, kind, share] = parts[..] else {
        bail!("--fault takes OP:KIND:SHARE, got {spec:?}");
    };
    let op = OPS
        .iter()
        .find(|(name, _)| *name == op)
        .map(|(_, op)| *op)
        .with_context(|| format!("unknown operation {op:?} in {spec:?}"))?;
    let share: f64 = share
        .parse()
        .with_context(|| format!("share {share:?} is not a number"))?;
    if !(0.0..=1.0).contains(&share) {
        bail!("share {share} is not between 0 and 1");
    }
    let fault = match kind {
        "slowdown" => Fault::S3SlowDown,
        "s3-500" => Fault::S3InternalError,
        "throughput" => Fault::DynamoThroughputExceeded,
        "throttling" => Fault::DynamoThrottling,
        "dynamodb-500" => Fault::DynamoInternalError,
        "unprocessed" => Fault::Unprocessed(0.5),
        "sqs-500" => Fault::SqsInternalError,
        "sqs-partial" => Fault::SqsPartialFailed(0.3),
        "reset" => Fault::Reset,
        other => match other.strip_prefix("delay-").and_then(|ms| ms.parse().ok()) {
            Some(ms) => Fault::Delay(Duration::from_millis(ms)),
            None => bail!("unknown fault {other:?} in {spec:?}"),
        },
    };
    Ok(Rule::new(op, fault, share))
}

fn report(proxy: &FaultProxy) -> String {
    OPS.iter()
        .map(|(name, op)| format!("{name} {}/{}", proxy.injected(*op), proxy.seen(*op)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut upstream = tests::endpoint();
    let mut port = 0u16;
    let mut seconds = 3600u64;
    let mut rules = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--upstream" => upstream = value()?,
            "--port" => port = value()?.parse().context("--port")?,
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--fault" => rules.push(parse_rule(&value()?)?),
            other => bail!(
                "unknown argument {other:?} (see the doc comment in tests/src/bin/fault-proxy.rs)"
            ),
        }
    }
    let proxy = FaultProxy::start_on(port, &upstream, rules).await?;
    println!("fault-proxy listening on {} -> {upstream}", proxy.url());
    let stop = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => println!("fault-proxy injected/seen: {}", report(&proxy)),
        }
    }
    println!("fault-proxy final injected/seen: {}", report(&proxy));
    Ok(())
}
