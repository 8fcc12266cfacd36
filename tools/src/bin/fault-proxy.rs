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
use tools::proxy::{Fault, FaultProxy, Op, Rule};

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

/// The fault-injecting proxy as a process.
#[derive(Debug, clap::Parser)]
#[command(name = "fault-proxy")]
struct Args {
    /// Where requests go (default: the emulator, AWS_ENDPOINT_URL or 127.0.0.1:MINISTACK_PORT).
    #[arg(long)]
    upstream: Option<String>,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
    /// OP:KIND:SHARE, e.g. s3-put:slowdown:0.01 (repeatable; see the top of this file).
    #[arg(long = "fault", value_parser = parse_rule)]
    faults: Vec<Rule>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let upstream = args.upstream.unwrap_or_else(tools::endpoint);
    let (port, seconds, rules) = (args.port, args.seconds, args.faults);
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
