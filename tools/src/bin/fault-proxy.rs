//! Runs the fault-injecting proxy as a process, for soak runs and the bench:
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:4566 --port 4590 \
//!     --fault s3-put:slowdown:0.01 --fault dynamodb-batch-write:unprocessed:0.01
//! fault-proxy --upstream http://127.0.0.1:4599 --delay-ms 20 --backend stub --log-heads
//! ```
//!
//! Each `--fault OP:KIND:SHARE` aims KIND at SHARE (0-1) of OP's requests.
//! OP: s3-put, dynamodb-batch-write, dynamodb-get, sqs-send-batch.
//! KIND: slowdown, s3-500, access-denied, throughput, throttling,
//! dynamodb-500, unprocessed, sqs-500, sqs-partial, reset, stall (no answer
//! until the client gives up), drop-response (forwarded, then the answer is
//! dropped), delay-<ms>.
//!
//! It prints `READY <port>` and then `fault-proxy listening on <url> ->
//! <upstream>` on stdout once it listens, its counters every --report-secs
//! and on exit (SIGTERM, SIGINT, or after --seconds). The control path
//! (`/__proxy/stats`, `/__proxy/fail`) is described in `tools::proxy`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tools::proxy::{Backend, Fault, FaultProxy, Op, Options, Rule};

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
        "access-denied" => Fault::S3AccessDenied,
        "throughput" => Fault::DynamoThroughputExceeded,
        "throttling" => Fault::DynamoThrottling,
        "dynamodb-500" => Fault::DynamoInternalError,
        "unprocessed" => Fault::Unprocessed(0.5),
        "sqs-500" => Fault::SqsInternalError,
        "sqs-partial" => Fault::SqsPartialFailed(0.3),
        "reset" => Fault::Reset,
        "stall" => Fault::Stall,
        "drop-response" => Fault::DropResponse,
        other => match other.strip_prefix("delay-").and_then(|ms| ms.parse().ok()) {
            Some(ms) => Fault::Delay(Duration::from_millis(ms)),
            None => bail!("unknown fault {other:?} in {spec:?}"),
        },
    };
    Ok(Rule::new(op, fault, share))
}

fn parse_delay(ms: &str) -> Result<Duration> {
    let ms: f64 = ms
        .parse()
        .with_context(|| format!("{ms:?} is not a number"))?;
    Duration::try_from_secs_f64(ms / 1000.0).with_context(|| format!("{ms} ms is not a delay"))
}

fn report(proxy: &FaultProxy) -> String {
    OPS.iter()
        .map(|(name, op)| format!("{name} {}/{}", proxy.injected(*op), proxy.seen(*op)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What answers the calls no fault is aimed at.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    /// Forward to the upstream.
    #[value(alias = "upstream")]
    Emulator,
    /// Answer S3 PutObject and DynamoDB BatchWriteItem here (success, nothing stored).
    Stub,
}

/// The fault-injecting proxy as a process.
#[derive(Debug, clap::Parser)]
#[command(name = "fault-proxy")]
struct Args {
    /// Where requests go, http:// on the loopback interface (default: the
    /// emulator, AWS_ENDPOINT_URL or 127.0.0.1:MINISTACK_PORT).
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
    /// Milliseconds added to every call (an AWS-like round trip).
    #[arg(long = "delay-ms", value_parser = parse_delay, default_value = "0")]
    delay: Duration,
    /// What answers.
    #[arg(long, value_enum, default_value = "emulator")]
    backend: BackendArg,
    /// Write the head of the first request of each kind from each SDK to stderr.
    #[arg(long)]
    log_heads: bool,
    /// Print the counters every this many seconds (0: only on exit).
    #[arg(long, default_value_t = 10)]
    report_secs: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let upstream = args.upstream.unwrap_or_else(tools::endpoint);
    // host:port alone means http://host:port.
    let upstream = if upstream.contains("://") {
        upstream
    } else {
        format!("http://{upstream}")
    };
    let options = Options {
        delay: args.delay,
        backend: match args.backend {
            BackendArg::Emulator => Backend::Upstream,
            BackendArg::Stub => Backend::Stub,
        },
        log_heads: args.log_heads,
    };
    let proxy = FaultProxy::start_with(args.port, &upstream, args.faults, options).await?;
    println!("READY {}", proxy.addr.port());
    println!("fault-proxy listening on {} -> {upstream}", proxy.url());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = tokio::time::sleep(Duration::from_secs(args.seconds));
    tokio::pin!(stop);
    let every = Duration::from_secs(args.report_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tick.tick(), if args.report_secs > 0 => {
                println!("fault-proxy injected/seen: {}", report(&proxy));
            }
        }
    }
    println!("fault-proxy final injected/seen: {}", report(&proxy));
    Ok(())
}
