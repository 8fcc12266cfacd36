//! Every policy of the engine, with a hand-written processor and tokio's
//! paused clock (timers fire in order, instantly; no test sleeps for real).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqs_batch::{
    code, process, Error, Failure, FifoMode, Json, Message, Options, Processor, SqsEvent,
    SqsMessage,
};

const QUEUE: &str = "arn:aws:sqs:eu-west-1:111122223333:orders";
const FIFO_QUEUE: &str = "arn:aws:sqs:eu-west-1:111122223333:orders.fifo";

fn record(id: &str, arn: &str, group: Option<&str>) -> SqsMessage {
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

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn standard(n: usize) -> SqsEvent {
    event(
        (0..n)
            .map(|i| record(&format!("m{i}"), QUEUE, None))
            .collect(),
    )
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

fn in_(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Tracks how many of something run at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) -> GaugeGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self)
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A processor whose steps take set times, fail, stall or panic per message id.
#[derive(Default)]
struct Fake {
    step: Duration,
    slow: HashMap<String, Duration>,
    stall: HashSet<String>,
    fail: HashSet<String>,
    panic: HashSet<String>,
    batch: usize,
    flush_time: Duration,
    flush_fail: HashSet<String>,
    flush_panic: bool,
    /// Results dropped from the end of each flush answer.
    flush_short: usize,
    started: Mutex<Vec<String>>,
    flushes: Mutex<Vec<Vec<String>>>,
    steps: Gauge,
    flushing: Gauge,
}

impl Fake {
    fn flushes(&self) -> Vec<Vec<String>> {
        self.flushes.lock().expect("lock").clone()
    }
    fn started(&self) -> Vec<String> {
        self.started.lock().expect("lock").clone()
    }
}

impl Processor for Fake {
    type Body<'a> = &'a str;
    type Output = String;

    async fn process(&self, message: Message<'_>, _body: &str) -> Result<String, Failure> {
        let id = message.id.to_owned();
        self.started.lock().expect("lock").push(id.clone());
        let _g = self.steps.enter();
        if self.stall.contains(&id) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.slow.get(&id).copied().unwrap_or(self.step)).await;
        if self.panic.contains(&id) {
            panic!("injected panic for {id}");
        }
        if self.fail.contains(&id) {
            return Err(Failure::new("injected", &id));
        }
        Ok(id)
    }

    fn batch_limit(&self) -> usize {
        self.batch
    }

    async fn flush(&self, items: Vec<String>, _deadline: Instant) -> Vec<Result<(), Failure>> {
        self.flushes.lock().expect("lock").push(items.clone());
        let _g = self.flushing.enter();
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

fn lenient() -> Options {
    Options {
        fail_on_full_batch_failure: false,
        ..Options::default()
    }
}

fn failed(report: &sqs_batch::Report) -> Vec<(&str, &str)> {
    report
        .failures
        .iter()
        .map(|(id, f)| (id.as_str(), f.code()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_message_fails_alone_and_the_others_are_written_before_the_deadline() {
    let fake = Fake {
        step: Duration::from_millis(20),
        stall: HashSet::from(["m3".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = process(&fake, &standard(10), in_(5), &Options::default())
        .await
        .expect("processed");
    assert_eq!(failed(&report), vec![("m3", code::DEADLINE)]);
    assert_eq!(report.succeeded, 9);
    let flushes = fake.flushes();
    assert_eq!(flushes.len(), 1, "the 9 share one call: {flushes:?}");
    assert_eq!(flushes[0].len(), 9);
}

#[tokio::test(start_paused = true)]
async fn a_chunk_waits_only_the_linger_for_a_slow_message() {
    let fake = Fake {
        step: Duration::from_millis(20),
        slow: HashMap::from([("m0".to_owned(), Duration::from_secs(2))]),
        batch: 25,
        ..Fake::default()
    };
    let started = tokio::time::Instant::now();
    let report = process(&fake, &standard(5), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded, 5);
    let flushes = fake.flushes();
    assert_eq!(
        flushes.len(),
        2,
        "the fast four are not held back: {flushes:?}"
    );
    assert_eq!(flushes[0].len(), 4);
    assert_eq!(flushes[1], vec!["m0".to_owned()]);
    assert!(started.elapsed() < Duration::from_millis(2100));
}

#[tokio::test(start_paused = true)]
async fn items_finishing_together_share_one_call_and_full_chunks_go_at_once() {
    let fake = Fake {
        step: Duration::from_millis(20),
        batch: 25,
        ..Fake::default()
    };
    let report = process(&fake, &standard(60), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded, 60);
    let sizes: Vec<usize> = fake.flushes().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![25, 25, 10]);
}

#[tokio::test(start_paused = true)]
async fn at_the_soft_deadline_unstarted_messages_are_reported_and_done_ones_are_written() {
    let fake = Fake {
        step: Duration::from_millis(400),
        batch: 25,
        ..Fake::default()
    };
    let options = Options {
        concurrency: 2,
        max_linger: Duration::from_secs(60),
        ..lenient()
    };
    // 2 s: margin 200 ms, soft deadline at 1.8 s. Messages start in pairs at
    // 0, 0.4, 0.8, 1.2 and 1.6 s; the last pair ends after the soft deadline.
    let deadline = Instant::now() + Duration::from_secs(2);
    let report = process(&fake, &standard(20), deadline, &options)
        .await
        .expect("processed");
    assert_eq!(
        fake.started().len(),
        10,
        "nothing starts after the soft deadline"
    );
    assert_eq!(report.succeeded, 8, "{:?}", failed(&report));
    assert_eq!(report.failures.len(), 12);
    assert!(report
        .failures
        .iter()
        .all(|(_, f)| f.code() == code::DEADLINE));
    assert_eq!(
        fake.flushes().len(),
        1,
        "the chunk goes out at the soft deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn the_margin_scales_with_the_time_the_invocation_has() {
    let policy = Options::default().deadline;
    assert_eq!(
        policy.margin(Duration::from_secs(1)),
        Duration::from_millis(200)
    );
    assert_eq!(
        policy.margin(Duration::from_secs(5)),
        Duration::from_millis(500)
    );
    assert_eq!(
        policy.margin(Duration::from_secs(900)),
        Duration::from_secs(2)
    );
    // A one-second function gets 800 ms of work, not nothing.
    let fake = Fake {
        step: Duration::from_millis(100),
        ..Fake::default()
    };
    let report = process(
        &fake,
        &standard(10),
        Instant::now() + Duration::from_secs(1),
        &Options::default(),
    )
    .await
    .expect("processed");
    assert_eq!(report.succeeded, 10);
}

#[tokio::test(start_paused = true)]
async fn an_invocation_too_short_to_work_is_an_error_not_silent_failures() {
    let fake = Fake::default();
    let deadline = Instant::now() + Duration::from_millis(250);
    let err = process(&fake, &standard(3), deadline, &Options::default())
        .await
        .expect_err("too short");
    assert!(matches!(err, Error::DeadlineTooShort { .. }), "{err}");
    assert!(err.to_string().contains("margin"), "{err}");
    assert!(fake.started().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fair_queue_message_group_on_a_standard_queue_is_not_serialised() {
    let fake = Fake {
        step: Duration::from_millis(100),
        fail: HashSet::from(["m0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let records = (0..20)
        .map(|i| record(&format!("m{i}"), QUEUE, Some("tenant-a")))
        .collect();
    let report = process(&fake, &event(records), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.steps.max(), 20, "all 20 ran at once");
    assert_eq!(
        failed(&report),
        vec![("m0", "injected")],
        "one failure fails no one else"
    );
}

fn fifo_event() -> SqsEvent {
    // Groups a and b interleaved: a0 b0 a1 b1 a2 b2.
    event(
        ["a0", "b0", "a1", "b1", "a2", "b2"]
            .iter()
            .map(|id| record(id, FIFO_QUEUE, Some(&id[..1])))
            .collect(),
    )
}

#[tokio::test(start_paused = true)]
async fn fifo_stop_group_reports_the_rest_of_the_failed_group_only() {
    let fake = Fake {
        step: Duration::from_millis(10),
        fail: HashSet::from(["a1".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = process(&fake, &fifo_event(), in_(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        vec![("a1", "injected"), ("a2", code::EARLIER_IN_GROUP_FAILED)]
    );
    assert_eq!(report.succeeded, 4);
    assert!(!fake.started().contains(&"a2".to_owned()));
    assert_eq!(fake.steps.max(), 2, "the two groups run side by side");
}

#[tokio::test(start_paused = true)]
async fn fifo_stop_batch_reports_every_later_message_of_the_batch() {
    let fake = Fake {
        step: Duration::from_millis(10),
        fail: HashSet::from(["a1".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let options = Options {
        fifo: FifoMode::StopBatch,
        ..lenient()
    };
    let report = process(&fake, &fifo_event(), in_(10), &options)
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        vec![
            ("a1", "injected"),
            ("b1", code::EARLIER_IN_BATCH_FAILED),
            ("a2", code::EARLIER_IN_BATCH_FAILED),
            ("b2", code::EARLIER_IN_BATCH_FAILED)
        ]
    );
    assert_eq!(
        fake.started(),
        vec!["a0", "b0", "a1"],
        "one at a time, in order"
    );
    assert_eq!(fake.steps.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn fifo_next_message_starts_only_after_the_previous_one_is_written() {
    let fake = Fake {
        step: Duration::from_millis(10),
        flush_fail: HashSet::from(["a0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let report = process(&fake, &fifo_event(), in_(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        vec![
            ("a0", "flush_failed"),
            ("a1", code::EARLIER_IN_GROUP_FAILED),
            ("a2", code::EARLIER_IN_GROUP_FAILED)
        ]
    );
    assert_eq!(report.succeeded, 3);
    assert!(!fake.started().contains(&"a1".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn flush_calls_in_flight_never_exceed_the_limit_on_a_batch_of_10000() {
    let fake = Fake {
        step: Duration::from_millis(5),
        batch: 25,
        flush_time: Duration::from_millis(50),
        ..Fake::default()
    };
    let options = Options {
        concurrency: 256,
        flush_concurrency: 3,
        ..Options::default()
    };
    let report = process(&fake, &standard(10_000), in_(600), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded, 10_000);
    assert_eq!(
        fake.flushing.max(),
        3,
        "the limit is reached and never passed"
    );
    assert_eq!(fake.steps.max(), 256);
    let written: usize = fake.flushes().iter().map(Vec::len).sum();
    assert_eq!(written, 10_000);
    assert!(fake.flushes().iter().all(|c| c.len() <= 25));
}

#[tokio::test(start_paused = true)]
async fn one_failing_flush_fails_only_its_own_items() {
    let fake = Fake {
        step: Duration::from_millis(10),
        batch: 25,
        flush_fail: HashSet::from(["m30".to_owned()]),
        ..Fake::default()
    };
    let report = process(&fake, &standard(60), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.flushes().len(), 3);
    assert_eq!(failed(&report), vec![("m30", "flush_failed")]);
    assert_eq!(report.succeeded, 59);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_flush_fails_its_items_and_a_short_answer_is_no_success() {
    let panicking = Fake {
        batch: 25,
        flush_panic: true,
        ..Fake::default()
    };
    let report = process(&panicking, &standard(3), in_(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(report.failures.len(), 3);
    assert!(report
        .failures
        .iter()
        .all(|(_, f)| f.code() == code::PANICKED));

    let short = Fake {
        batch: 25,
        flush_short: 1,
        ..Fake::default()
    };
    let report = process(&short, &standard(3), in_(10), &lenient())
        .await
        .expect("processed");
    assert_eq!(failed(&report), vec![("m2", code::NO_RESULT)]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_message_fails_alone() {
    let fake = Fake {
        panic: HashSet::from(["m1".to_owned()]),
        ..Fake::default()
    };
    let report = process(&fake, &standard(4), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(failed(&report), vec![("m1", code::PANICKED)]);
    assert!(report.failures[0].1.detail.contains("injected panic"));
}

#[tokio::test(start_paused = true)]
async fn a_repeated_message_id_is_processed_once_and_reported_once() {
    let fake = Fake {
        fail: HashSet::from(["m1".to_owned()]),
        ..Fake::default()
    };
    let mut records = standard(3).records;
    records.push(record("m1", QUEUE, None));
    records.push(record("m0", QUEUE, None));
    let report = process(&fake, &event(records), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(fake.started().len(), 3);
    assert_eq!(report.duplicates, 2);
    assert_eq!(failed(&report), vec![("m1", "injected")]);
    assert_eq!(report.response().batch_item_failures.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_record_without_a_message_id_fails_the_invocation_with_a_clear_error() {
    for id in [None, Some(String::new())] {
        let mut records = standard(2).records;
        records[1].message_id = id;
        let err = process(
            &Fake::default(),
            &event(records),
            in_(10),
            &Options::default(),
        )
        .await
        .expect_err("must fail");
        assert!(
            err.to_string().contains("record 1 has no messageId"),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_reported_id_is_a_message_id_of_the_batch() {
    let fake = Fake {
        fail: (0..50).step_by(3).map(|i| format!("m{i}")).collect(),
        batch: 10,
        flush_fail: HashSet::from(["m10".to_owned()]),
        ..Fake::default()
    };
    let report = process(&fake, &standard(50), in_(10), &Options::default())
        .await
        .expect("processed");
    let batch: HashSet<String> = ids(50).into_iter().collect();
    for failure in report.response().batch_item_failures {
        assert!(
            batch.contains(&failure.item_identifier),
            "{}",
            failure.item_identifier
        );
    }
    assert_eq!(report.failures.len(), 18);
}

#[tokio::test(start_paused = true)]
async fn when_every_message_fails_the_invocation_fails_unless_told_otherwise() {
    let fake = Fake {
        fail: ids(3).into_iter().collect(),
        ..Fake::default()
    };
    let err = process(&fake, &standard(3), in_(10), &Options::default())
        .await
        .expect_err("all failed");
    assert_eq!(err.report().map(|r| r.failures.len()), Some(3), "{err}");
    let report = process(&fake, &standard(3), in_(10), &lenient())
        .await
        .expect("reported instead");
    assert_eq!(report.response().batch_item_failures.len(), 3);
    let empty = process(&fake, &event(vec![]), in_(10), &Options::default())
        .await
        .expect("an empty batch is no failure");
    assert_eq!(empty.received, 0);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_per_message() {
    let fake = Fake {
        step: Duration::from_millis(10),
        ..Fake::default()
    };
    let options = Options {
        concurrency: 7,
        ..Options::default()
    };
    let report = process(&fake, &standard(100), in_(10), &options)
        .await
        .expect("processed");
    assert_eq!(report.succeeded, 100);
    assert_eq!(fake.steps.max(), 7);
}

#[derive(serde::Deserialize)]
struct Order {
    id: String,
    cents: u64,
}

struct Orders(Mutex<Vec<String>>);

impl Processor for Orders {
    type Body<'a> = Json<Order>;
    type Output = ();

    async fn process(&self, _: Message<'_>, Json(order): Json<Order>) -> Result<(), Failure> {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{}:{}", order.id, order.cents));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_parse_fails_only_its_message() {
    let mut records = standard(3).records;
    records[0].body = Some(r#"{"id":"a","cents":5}"#.to_owned());
    records[1].body = Some(r#"{"id":"b","cents":"five"}"#.to_owned());
    records[2].body = Some("not json".to_owned());
    let orders = Orders(Mutex::default());
    let report = process(&orders, &event(records), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(
        failed(&report),
        vec![("m1", code::INVALID_BODY), ("m2", code::INVALID_BODY)]
    );
    assert!(
        report.failures[0].1.detail.contains("invalid type"),
        "{:?}",
        report.failures[0]
    );
    assert_eq!(*orders.0.lock().expect("lock"), vec!["a:5".to_owned()]);
}

#[tokio::test(start_paused = true)]
async fn out_of_range_options_are_refused_by_name() {
    let options = Options {
        flush_concurrency: 0,
        ..Options::default()
    };
    let err = process(&Fake::default(), &standard(1), in_(10), &options)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("flush_concurrency"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_step_timeout_frees_a_stalled_slot_so_the_fifo_lane_goes_on() {
    let fake = Fake {
        step: Duration::from_millis(10),
        stall: HashSet::from(["a0".to_owned()]),
        batch: 25,
        ..Fake::default()
    };
    let options = Options {
        fifo: FifoMode::StopBatch,
        step_timeout: Some(Duration::from_millis(300)),
        ..lenient()
    };
    let started = tokio::time::Instant::now();
    let report = process(&fake, &fifo_event(), in_(60), &options)
        .await
        .expect("processed");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "not held to the deadline"
    );
    assert_eq!(
        report.failures[0],
        ("a0".to_owned(), report.failures[0].1.clone())
    );
    assert_eq!(report.failures[0].1.code(), code::STEP_TIMEOUT);
    assert_eq!(
        report.failures.len(),
        6,
        "the rest of the batch is reported"
    );
}

#[tokio::test(start_paused = true)]
async fn a_chunk_that_running_messages_will_fill_waits_for_them_not_the_linger() {
    // 100 messages, 64 at a time, 20 ms each: the first wave leaves 14 items
    // once two chunks of 25 are full; the 36 still running fill it, so it is
    // not sent half-empty after the linger: four calls, all full.
    let fake = Fake {
        step: Duration::from_millis(20),
        batch: 25,
        flush_time: Duration::from_millis(20),
        ..Fake::default()
    };
    let report = process(&fake, &standard(100), in_(10), &Options::default())
        .await
        .expect("processed");
    assert_eq!(report.succeeded, 100);
    let sizes: Vec<usize> = fake.flushes().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![25, 25, 25, 25]);
}
