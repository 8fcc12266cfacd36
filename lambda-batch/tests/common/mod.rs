//! A hand-written handler for every source, and event builders. Tests run
//! on tokio's paused clock: timers fire in order, instantly, and no test
//! sleeps for real.
#![allow(dead_code)] // each test file uses a part

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lambda_batch::kinesis::KinesisEvent;
use lambda_batch::sqs::{SqsEvent, SqsMessage};
use lambda_batch::{BatchHandler, Failure, Options, Record, Report, Source};

pub const QUEUE: &str = "arn:aws:sqs:eu-west-1:111122223333:orders";
pub const FIFO_QUEUE: &str = "arn:aws:sqs:eu-west-1:111122223333:orders.fifo";

/// The virtual clock's now plus `d`, as the std `Instant` the engine takes.
pub fn in_(d: Duration) -> Instant {
    tokio::time::Instant::now().into_std() + d
}

pub fn secs(n: u64) -> Instant {
    in_(Duration::from_secs(n))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Time since the test began (virtual).
pub fn elapsed(since: tokio::time::Instant) -> Duration {
    tokio::time::Instant::now() - since
}

pub fn sqs_record(id: &str, arn: &str, group: Option<&str>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(format!("{{\"id\":\"{id}\"}}"));
    m.event_source_arn = Some(arn.to_owned());
    if let Some(g) = group {
        m.attributes
            .insert("MessageGroupId".to_owned(), g.to_owned());
    }
    m
}

pub fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

/// `n` messages m0, m1, ... of a standard queue.
pub fn standard(n: usize) -> SqsEvent {
    sqs_event(
        (0..n)
            .map(|i| sqs_record(&format!("m{i}"), QUEUE, None))
            .collect(),
    )
}

pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

/// A Kinesis batch from one shard: `(sequence number, partition key)` pairs
/// in order, with the fixture's record as the template.
pub fn kinesis(records: &[(&str, &str)]) -> KinesisEvent {
    let fixture: KinesisEvent =
        serde_json::from_str(include_str!("../fixtures/example-kinesis-event.json"))
            .expect("fixture parses");
    let template = fixture.records[0].clone();
    let mut event = fixture;
    event.records = records
        .iter()
        .map(|(seq, key)| {
            let mut r = template.clone();
            r.kinesis.sequence_number = (*seq).to_owned();
            r.kinesis.partition_key = (*key).to_owned();
            r.kinesis.data.0 = format!("{{\"seq\":\"{seq}\"}}").into_bytes();
            r
        })
        .collect();
    event
}

/// Tracks how many of something run at once.
#[derive(Default)]
pub struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub fn enter(&self) -> GaugeGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self)
    }
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A handler whose steps take set times, fail, stall or panic per record id;
/// batched when `batch` > 0. It serves every source: it only reads ids.
#[derive(Default)]
pub struct Fake {
    pub step: Duration,
    pub slow: HashMap<String, Duration>,
    pub stall: HashSet<String>,
    pub fail: HashSet<String>,
    pub panic: HashSet<String>,
    pub batch: usize,
    pub flush_time: Duration,
    pub flush_stall: bool,
    pub flush_fail: HashSet<String>,
    pub flush_panic: bool,
    /// Results dropped from the end of each flush answer.
    pub flush_short: usize,
    pub started: Mutex<Vec<String>>,
    pub finished: Mutex<Vec<String>>,
    pub flushes: Mutex<Vec<(tokio::time::Instant, Vec<String>)>>,
    pub steps: Gauge,
    pub flushing: Gauge,
}

impl Fake {
    pub fn flushes(&self) -> Vec<Vec<String>> {
        self.flushes
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }
    /// When each flush started.
    pub fn flush_times(&self) -> Vec<tokio::time::Instant> {
        self.flushes
            .lock()
            .expect("lock")
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }
    pub fn started(&self) -> Vec<String> {
        self.started.lock().expect("lock").clone()
    }
    /// Ids whose per-record step ended (ok or not), in the order they ended.
    pub fn finished(&self) -> Vec<String> {
        self.finished.lock().expect("lock").clone()
    }

    async fn one(&self, id: String) -> Result<String, Failure> {
        self.started.lock().expect("lock").push(id.clone());
        let _g = self.steps.enter();
        if self.stall.contains(&id) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.slow.get(&id).copied().unwrap_or(self.step)).await;
        self.finished.lock().expect("lock").push(id.clone());
        if self.panic.contains(&id) {
            panic!("injected panic for {id}");
        }
        if self.fail.contains(&id) {
            return Err(Failure::new("injected", &id));
        }
        Ok(id)
    }

    /// Processes `event`: with the batched step when `batch` > 0, else one
    /// call per record through a closure (the `Handler` form).
    pub async fn run<S: Source>(
        &self,
        event: S,
        deadline: Instant,
        options: &Options,
    ) -> Result<Report<S>, lambda_batch::Error> {
        if self.batch > 0 {
            lambda_batch::process_batched(event, deadline, self, options).await
        } else {
            let handler = |(), record: Record<S>| async move {
                self.one(record.id().to_owned()).await.map(drop)
            };
            lambda_batch::process(event, deadline, &handler, options).await
        }
    }
}

impl<S: Source> BatchHandler<S> for Fake {
    type Payload = ();
    type Output = String;

    fn batch_limit(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.batch).expect("batch > 0")
    }

    async fn prepare(&self, (): (), record: Record<S>) -> Result<String, Failure> {
        self.one(record.id().to_owned()).await
    }

    async fn flush(&self, items: Vec<String>, _deadline: Instant) -> Vec<Result<(), Failure>> {
        self.flushes
            .lock()
            .expect("lock")
            .push((tokio::time::Instant::now(), items.clone()));
        let _g = self.flushing.enter();
        if self.flush_stall {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.flush_time).await;
        if self.flush_panic {
            panic!("injected flush panic");
        }
        let keep = items.len().saturating_sub(self.flush_short);
        items
            .iter()
            .take(keep)
            .map(|id| {
                if self.flush_fail.contains(id) {
                    Err(Failure::new("flush_failed", id))
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

pub fn lenient() -> Options {
    Options::builder()
        .fail_on_full_batch_failure(false)
        .build()
        .expect("valid")
}

/// (id, code) of every failure, in batch order.
pub fn failed<S: Source>(report: &Report<S>) -> Vec<(String, String)> {
    report
        .failures()
        .iter()
        .map(|f| (f.id.clone(), f.failure.code().to_owned()))
        .collect()
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

pub fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}
