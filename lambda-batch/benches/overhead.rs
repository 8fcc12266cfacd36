//! The cost of the engine itself: a handler that does nothing, on batches of
//! 10, 100 and 10,000 records of each source, per record:
//! - heap allocations and bytes, counted by this binary's global allocator;
//! - instructions, counted by callgrind (valgrind) when it is installed: the
//!   binary runs each case twice more under `valgrind --tool=callgrind`,
//!   building the same events both times but processing `r` batches in one
//!   run and `2r` in the other; the difference over the extra records is the
//!   engine's cost alone (start-up and building events cancel out, and no
//!   symbols are needed, so the stripped release build is measured);
//! - wall time, for orientation only (it depends on the machine's load).
//!
//! `cargo bench -p lambda-batch --bench overhead` (add `-- --quick` for
//! fewer repetitions). The figures are printed, never asserted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lambda_batch::dynamodb::{AttributeValue, DynamoDbEvent};
use lambda_batch::kinesis::KinesisEvent;
use lambda_batch::sqs::{SqsEvent, SqsMessage};
use lambda_batch::{BatchHandler, Failure, Options, Record, Source};

/// Counts every allocation the process makes.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A batched handler that does nothing: 25 outputs per flush.
struct Nothing;

impl<S: Source> BatchHandler<S> for Nothing {
    type Payload = ();
    type Output = ();
    fn batch_limit(&self) -> NonZeroUsize {
        NonZeroUsize::new(25).unwrap_or(NonZeroUsize::MIN)
    }
    async fn prepare(&self, (): (), _: Record<S>) -> Result<(), Failure> {
        Ok(())
    }
    async fn flush(&self, outputs: Vec<()>, _: Instant) -> Vec<Result<(), Failure>> {
        outputs.into_iter().map(Ok).collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// One call per record, no batched step.
    PerRecord,
    /// Per-record step + a batched step of 25.
    Batched,
}

fn sqs(n: usize) -> SqsEvent {
    let mut event: SqsEvent =
        serde_json::from_str(include_str!("../tests/fixtures/example-sqs-event.json"))
            .unwrap_or_default();
    let template = event.records.first().cloned().unwrap_or_else(SqsMessage::default);
    event.records = (0..n)
        .map(|i| {
            let mut m = template.clone();
            m.message_id = Some(format!("c8b1a6e0-52b1-4f49-9a3e-{i:012}"));
            m
        })
        .collect();
    event
}

fn kinesis(n: usize) -> KinesisEvent {
    let mut event: KinesisEvent =
        serde_json::from_str(include_str!("../tests/fixtures/example-kinesis-event.json"))
            .unwrap_or_default();
    let template = event.records[0].clone();
    event.records = (0..n)
        .map(|i| {
            let mut r = template.clone();
            r.kinesis.sequence_number = format!("4956816737333333333333333333333333333{i:020}");
            r.kinesis.partition_key = format!("sensor-{}", i % 64);
            r
        })
        .collect();
    event
}

fn dynamodb(n: usize) -> DynamoDbEvent {
    let mut event: DynamoDbEvent =
        serde_json::from_str(include_str!("../tests/fixtures/example-dynamodb-event.json"))
            .unwrap_or_default();
    let template = event.records[0].clone();
    event.records = (0..n)
        .map(|i| {
            let mut r = template.clone();
            r.change.sequence_number = Some(format!("14054000000000020632{i:08}"));
            r.change
                .keys
                .insert("key".to_owned(), AttributeValue::S(format!("item-{}", i % 64)));
            r
        })
        .collect();
    event
}

/// One batch through the engine.
fn measured<S: Source>(runtime: &tokio::runtime::Runtime, event: S, form: Form, options: &Options) -> usize {
    let deadline = Instant::now() + Duration::from_secs(600);
    runtime.block_on(async {
        let report = match form {
            Form::PerRecord => {
                let nothing = |(), _: Record<S>| async { Ok(()) };
                lambda_batch::process(event, deadline, &nothing, options).await
            }
            Form::Batched => lambda_batch::process_batched(event, deadline, &Nothing, options).await,
        };
        report.map_or(0, |r| r.succeeded())
    })
}

struct Figures {
    allocations: f64,
    bytes: f64,
    nanos: f64,
}

/// Builds `total` batches (at least `reps + 1`) and processes `reps` of them
/// after one warm-up batch; the rest are dropped unprocessed.
fn run<S: Source + Clone>(make: fn(usize) -> S, n: usize, form: Form, reps: usize, total: usize) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let options = Options::default();
    let events: Vec<S> = (0..total.max(reps + 1)).map(|_| make(n)).collect();
    let mut events = events.into_iter();
    // One batch to warm up (first-use allocations of the runtime's timer).
    if let Some(event) = events.next() {
        measured(&runtime, event, form, &options);
    }
    let (a0, b0) = (ALLOCATIONS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    let started = Instant::now();
    let mut succeeded = 0;
    for event in events.by_ref().take(reps) {
        succeeded += measured(&runtime, event, form, &options);
    }
    drop(events);
    let elapsed = started.elapsed();
    assert_eq!(succeeded, n * reps, "every record succeeds");
    let per = (n * reps) as f64;
    Figures {
        allocations: (ALLOCATIONS.load(Ordering::Relaxed) - a0) as f64 / per,
        bytes: (BYTES.load(Ordering::Relaxed) - b0) as f64 / per,
        nanos: elapsed.as_nanos() as f64 / per,
    }
}

const SOURCES: [&str; 3] = ["sqs", "kinesis", "dynamodb"];
const SIZES: [usize; 3] = [10, 100, 10_000];

fn case(source: &str, n: usize, form: Form, reps: usize, total: usize) -> Figures {
    match source {
        "sqs" => run(sqs, n, form, reps, total),
        "kinesis" => run(kinesis, n, form, reps, total),
        _ => run(dynamodb, n, form, reps, total),
    }
}

fn form_name(form: Form) -> &'static str {
    match form {
        Form::PerRecord => "per-record",
        Form::Batched => "batched",
    }
}

/// Instructions per record of the engine, from callgrind: the same
/// `2 * reps + 1` batches built in two runs, `reps` processed in one and
/// `2 * reps` in the other; the difference divided by the extra records.
fn instructions(source: &str, n: usize, form: Form, reps: usize) -> Option<f64> {
    let total = 2 * reps + 1;
    let ir = |reps: usize| -> Option<f64> {
        let out = std::env::temp_dir().join(format!(
            "lambda-batch-callgrind-{}-{source}-{n}-{}-{reps}.out",
            std::process::id(),
            form_name(form)
        ));
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", &format!("--callgrind-out-file={}", out.display())])
            .arg(std::env::current_exe().ok()?)
            .args(["--one", source, &n.to_string(), form_name(form)])
            .args([reps.to_string(), total.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        let text = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        if !status.success() {
            return None;
        }
        text?
            .lines()
            .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let (one, two) = (ir(reps)?, ir(2 * reps)?);
    Some((two - one) / (n * reps) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Re-executed under callgrind for one case.
    if args.get(1).map(String::as_str) == Some("--one") {
        let form = if args[4] == "batched" { Form::Batched } else { Form::PerRecord };
        let n = args[3].parse().unwrap_or(10);
        let reps = args[5].parse().unwrap_or(1);
        let total = args[6].parse().unwrap_or(reps + 1);
        case(&args[2], n, form, reps, total);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let callgrind = Command::new("valgrind").arg("--version").output().is_ok();
    println!(
        "lambda-batch engine overhead, a handler that does nothing (release build, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if !callgrind {
        println!("valgrind not found: instructions per record not counted");
    }
    println!(
        "{:<9} {:>7} {:<10} {:>14} {:>11} {:>12} {:>10}",
        "source", "records", "form", "instructions", "allocs", "bytes", "ns (wall)"
    );
    for source in SOURCES {
        for n in SIZES {
            for form in [Form::PerRecord, Form::Batched] {
                // About 200,000 records per case (20,000 quick), at least 3 batches.
                let reps = ((if quick { 20_000 } else { 200_000 }) / n).max(3);
                let figures = case(source, n, form, reps, reps + 1);
                let ir = if callgrind {
                    // Callgrind is ~50x slower: fewer batches, same shape.
                    instructions(source, n, form, (reps / 20).max(2))
                        .map_or("n/a".to_owned(), |v| format!("{v:.0}"))
                } else {
                    "n/a".to_owned()
                };
                println!(
                    "{source:<9} {n:>7} {:<10} {ir:>14} {:>11.2} {:>12.0} {:>10.0}",
                    form_name(form),
                    figures.allocations,
                    figures.bytes,
                    figures.nanos
                );
            }
        }
    }
}
