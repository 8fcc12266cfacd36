//! Reconciles what was sent with what the pipeline holds (see `tools::audit`).
//!
//! ```text
//! cargo run -p tools --bin audit -- --ledger k6/results/soak-RUN-ledger.jsonl
//! ```
//!
//! Prints the counts as a Markdown table. Exit status: 0 all accounted for,
//! 1 lost, duplicated or misplaced messages, 2 messages still pending after
//! the wait, 64 bad arguments.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

/// Reconciles a ledger of accepted messages with the table, bucket, queue and DLQ.
#[derive(Debug, clap::Parser)]
#[command(name = "audit")]
struct Args {
    /// JSON Lines of accepted messages (k6 writes it).
    #[arg(long)]
    ledger: PathBuf,
    /// The stack's outputs file (default: .local/outputs.env).
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// Seconds to wait for pending messages to settle.
    #[arg(long, default_value_t = 120)]
    wait: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        // 64: bad arguments (EX_USAGE); --help is 0.
        std::process::exit(if e.use_stderr() { 64 } else { 0 })
    });
    let outputs = args
        .outputs
        .unwrap_or_else(|| tools::repo_root().join(".local/outputs.env"));
    let audit = tools::audit::run(&args.ledger, &outputs, Duration::from_secs(args.wait)).await?;
    print!("{}", audit.table);
    eprintln!("audit: {}", audit.verdict);
    std::process::exit(audit.code)
}
