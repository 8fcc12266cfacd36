//! The producer API through `app(state).oneshot(..)`, with in-memory stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pipeline_core::{message_record_id, record_id, EnqueueResponse, ErrorBody, StoredRecord};
use producer::{
    app, AppState, Config, Entry, EntryFailure, EntryResult, Error, ErrorClass, Queue, Records,
    SendError,
};
use tower::ServiceExt;

/// Records every entry it is asked to send; bodies containing a marker fail.
#[derive(Default)]
struct MemQueue {
    sent: Mutex<Vec<String>>,
    entries: Mutex<Vec<Entry>>,
    calls: Mutex<Vec<usize>>,
    attempts: Mutex<HashMap<String, u32>>,
    down: bool,
    /// Every call fails whole with this class and AWS-style detail.
    error: Option<(ErrorClass, &'static str, &'static str)>,
    /// Calls whose entries hold this text never answer.
    stall_on: Option<&'static str>,
    /// How long each call takes.
    latency: Duration,
    /// Calls holding this text take this long instead.
    slow_on: Option<(&'static str, Duration)>,
    /// Calls holding this text fail whole with this class.
    fail_calls_on: Option<(&'static str, ErrorClass)>,
    /// Calls in flight now, in all and per message group.
    in_flight: Mutex<(usize, HashMap<String, usize>)>,
    /// The most calls in flight at once, in all and for any one group.
    most_in_flight: Mutex<(usize, usize)>,
}

/// Counts a call in flight while it lives.
struct Flying<'a>(&'a MemQueue, Vec<String>);

impl<'a> Flying<'a> {
    fn enter(queue: &'a MemQueue, entries: &[Entry]) -> Self {
        let mut groups: Vec<String> = entries.iter().filter_map(|e| e.group_id.clone()).collect();
        groups.dedup();
        let mut now = queue.in_flight.lock().expect("lock");
        let mut most = queue.most_in_flight.lock().expect("lock");
        now.0 += 1;
        most.0 = most.0.max(now.0);
        for g in &groups {
            let n = now.1.entry(g.clone()).or_insert(0);
            *n += 1;
            most.1 = most.1.max(*n);
        }
        Self(queue, groups)
    }
}

impl Drop for Flying<'_> {
    fn drop(&mut self) {
        let mut now = self.0.in_flight.lock().expect("lock");
        now.0 -= 1;
        for g in &self.1 {
            if let Some(n) = now.1.get_mut(g) {
                *n -= 1;
            }
        }
    }
}

impl MemQueue {
    fn sent(&self) -> Vec<String> {
        self.sent.lock().expect("lock").clone()
    }

    fn entries(&self) -> Vec<Entry> {
        self.entries.lock().expect("lock").clone()
    }

    fn calls(&self) -> usize {
        self.calls.lock().expect("lock").len()
    }

    /// The bodies SQS took for one group, in the order it took them.
    fn sent_in(&self, group: &str) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.group_id.as_deref() == Some(group))
            .map(|e| e.body)
            .collect()
    }
}

impl Queue for MemQueue {
    async fn send_batch(
        &self,
        entries: &[Entry],
        _budget: Duration,
    ) -> Result<Vec<EntryResult>, SendError> {
        self.calls.lock().expect("lock").push(entries.len());
        assert!(entries.len() <= 10, "SQS takes at most 10 entries");
        let bytes: usize = entries
            .iter()
            .map(|e| producer::send::sqs_size(&e.body, e.idempotency_key.as_deref()))
            .sum();
        assert!(
            bytes <= 1024 * 1024,
            "SQS takes at most 1 MiB per call, attributes included: {bytes}"
        );
        let _flying = Flying::enter(self, entries);
        let holds = |text: &str| entries.iter().any(|e| e.body.contains(text));
        let latency = match self.slow_on {
            Some((text, slow)) if holds(text) => slow,
            _ => self.latency,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some((text, class)) = self.fail_calls_on {
            if holds(text) {
                return Err(SendError::new(
                    class,
                    "Injected",
                    "injected whole-call failure",
                ));
            }
        }
        if let Some(text) = self.stall_on {
            if entries.iter().any(|e| e.body.contains(text)) {
                std::future::pending::<()>().await;
            }
        }
        if self.down {
            return Err(SendError::new(
                ErrorClass::Retryable,
                "ConnectionFailed",
                "connection refused",
            ));
        }
        if let Some((class, code, detail)) = self.error {
            return Err(SendError::new(class, code, detail));
        }
        let mut out = Vec::new();
        for e in entries {
            let tries = {
                let mut attempts = self.attempts.lock().expect("lock");
                let n = attempts.entry(e.body.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let fail = |code: &str, sender_fault| EntryFailure {
                code: code.into(),
                message: "injected for arn:aws:sqs:us-east-1:123456789012:q".into(),
                sender_fault,
            };
            if e.body.contains("fail-always") || (e.body.contains("fail-once") && tries == 1) {
                out.push((e.id.clone(), Err(fail("InternalError", false))));
            } else if e.body.contains("sender-fault") {
                out.push((e.id.clone(), Err(fail("InvalidMessageContents", true))));
            } else if e.body.contains("too-big-for-sqs") {
                out.push((
                    e.id.clone(),
                    Err(EntryFailure {
                        code: "InvalidParameterValue".into(),
                        message: "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.".into(),
                        sender_fault: true,
                    }),
                ));
            } else if e.body.contains("vanish") {
                // Neither in Successful nor in Failed.
            } else {
                let mut sent = self.sent.lock().expect("lock");
                sent.push(e.body.clone());
                self.entries.lock().expect("lock").push(e.clone());
                out.push((e.id.clone(), Ok(format!("mid-{}", sent.len()))));
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
struct MemRecords(HashMap<String, StoredRecord>);

impl Records for MemRecords {
    async fn get(&self, id: &str) -> Result<Option<StoredRecord>, Error> {
        Ok(self.0.get(id).cloned())
    }
}

type S = Arc<AppState<MemQueue, MemRecords>>;

fn state_with(queue: MemQueue, records: MemRecords) -> S {
    let mut config = Config::for_tests();
    config.max_messages = 50;
    config.max_request_bytes = 3 * 1024 * 1024;
    Arc::new(AppState {
        queue,
        records,
        config,
    })
}

fn state() -> S {
    state_with(MemQueue::default(), MemRecords::default())
}

async fn call(state: &S, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("application/json"),
        "every answer is JSON"
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/messages")
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

fn error_code(body: &serde_json::Value) -> String {
    let e: ErrorBody = serde_json::from_value(body.clone()).expect("error body");
    assert!(!e.message.is_empty());
    e.error
}

#[tokio::test]
async fn one_object_is_enqueued_and_answered_with_its_ids() {
    let s = state();
    let (status, body) = call(&s, post(r#"{"hello":"world"}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(
        r.accepted[0].id,
        record_id(&r.accepted[0].message_id).to_string()
    );
    assert_eq!(s.queue.sent(), vec![r#"{"hello":"world"}"#.to_owned()]);
}

#[tokio::test]
async fn an_array_is_sent_in_chunks_of_ten_in_order() {
    let s = state();
    let items: Vec<String> = (0..25).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    let (status, body) = call(&s, post(format!("[{}]", items.join(",")))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(
        r.accepted.iter().map(|a| a.index).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
    let mut calls = s.queue.calls.lock().expect("lock").clone();
    calls.sort_unstable();
    assert_eq!(calls, vec![5, 10, 10]);
}

#[tokio::test]
async fn retryable_entry_failures_are_retried() {
    let s = state();
    let (status, body) = call(&s, post(r#"[{"a":1},{"fail-once":true}]"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(s.queue.sent().len(), 2);
}

#[tokio::test]
async fn partial_failure_says_which_entries_were_not_enqueued() {
    let s = state();
    let (status, body) = call(
        &s,
        post(r#"[{"a":1},{"fail-always":1},{"sender-fault":1},{"vanish":1}]"#),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(
        r.accepted.iter().map(|a| a.index).collect::<Vec<_>>(),
        vec![0]
    );
    let failed: Vec<(usize, bool)> = r.failed.iter().map(|f| (f.index, f.retryable)).collect();
    assert_eq!(failed, vec![(1, true), (2, false), (3, true)]);
    assert_eq!(
        s.queue.sent().len(),
        1,
        "failed entries are never counted as sent"
    );
}

#[tokio::test]
async fn queue_down_is_503_with_every_entry_failed() {
    let s = state_with(
        MemQueue {
            down: true,
            ..Default::default()
        },
        MemRecords::default(),
    );
    let (status, body) = call(&s, post(r#"[{"a":1},{"b":2}]"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert!(r.accepted.is_empty());
    assert_eq!(r.failed.len(), 2);
}

#[tokio::test]
async fn bad_requests_get_a_clear_json_error_and_nothing_is_enqueued() {
    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(1024 * 1024));
    let too_many = format!("[{}]", vec!["{}"; 51].join(","));
    // An array holding a message nested too deep (the limit is the message's).
    let deep = format!(r#"[{{"a":{}{}}}]"#, "[".repeat(200), "]".repeat(200));
    let deep_object = format!(r#"{{"a":{}1{}}}"#, "[".repeat(300), "]".repeat(300));
    let huge_request = format!(
        "[{}]",
        vec![format!(r#"{{"x":"{}"}}"#, "b".repeat(700 * 1024)); 5].join(",")
    );
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "malformed",
            post("{\"a\":"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "truncated array",
            post("[{\"a\":1},"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "trailing garbage",
            post("{} x"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "non-utf8",
            post(vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}']),
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
        ),
        (
            "empty body",
            post(""),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "blank body",
            post("  \n"),
            StatusCode::BAD_REQUEST,
            "empty_body",
        ),
        (
            "empty array",
            post("[]"),
            StatusCode::BAD_REQUEST,
            "empty_array",
        ),
        (
            "scalar",
            post("42"),
            StatusCode::BAD_REQUEST,
            "not_an_object",
        ),
        (
            "array of scalars",
            post("[{},1]"),
            StatusCode::BAD_REQUEST,
            "not_an_object",
        ),
        (
            "deeply nested",
            post(deep),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "deeply nested object",
            post(deep_object),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "noncharacter",
            post("{\"a\":\"\u{FFFF}\"}"),
            StatusCode::BAD_REQUEST,
            "invalid_character",
        ),
        (
            "oversized message",
            post(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
        ),
        (
            "too many messages",
            post(too_many),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_messages",
        ),
        (
            "oversized request",
            post(huge_request),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
        ),
        (
            "wrong content type",
            Request::post("/messages")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .expect("req"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            Request::post("/messages")
                .body(Body::from("{}"))
                .expect("req"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown method",
            Request::delete("/messages")
                .body(Body::empty())
                .expect("req"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "unknown path",
            Request::get("/nope").body(Body::empty()).expect("req"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (name, request, want_status, want_code) in cases {
        let s = state();
        let (status, body) = call(&s, request).await;
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(error_code(&body), want_code, "{name}");
        assert!(s.queue.sent().is_empty(), "{name}: nothing may be enqueued");
        assert!(
            s.queue.calls.lock().expect("lock").is_empty(),
            "{name}: SQS must not be called"
        );
    }
}

#[tokio::test]
async fn huge_numbers_and_unicode_are_enqueued_byte_for_byte() {
    let s = state();
    let message = "{\"n\": 123456789012345678901234567890, \"s\": \"\u{1F980} \\u0000 é\"}";
    let (status, _) = call(&s, post(format!("[{message}]"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s.queue.sent(), vec![message.to_owned()]);
}

#[tokio::test]
async fn content_type_with_charset_is_accepted() {
    let s = state();
    let request = Request::post("/messages")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from("{}"))
        .expect("req");
    let (status, _) = call(&s, request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn stored_record_is_found_by_message_id_and_404_before() {
    let mut records = MemRecords::default();
    let id = record_id("mid-9").to_string();
    let record = StoredRecord {
        id: id.clone(),
        message_id: "mid-9".into(),
        s3_key: format!("records/{id}.json"),
        received_at: "2026-01-01T00:00:00.000Z".into(),
        body_bytes: 2,
        stored_at: "2026-01-01T00:00:00.100Z".into(),
    };
    records.0.insert(id, record.clone());
    let s = state_with(MemQueue::default(), records);
    let (status, body) = call(
        &s,
        Request::get("/messages/mid-9")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<StoredRecord>(body).expect("record"),
        record
    );
    let (status, body) = call(
        &s,
        Request::get("/messages/mid-10")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn health_answers_ok() {
    let (status, body) = call(
        &state(),
        Request::get("/health").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn brackets_inside_strings_do_not_count_as_nesting() {
    let s = state();
    let message = format!(r#"{{"text":"{}\"{}"}}"#, "[".repeat(300), "{".repeat(300));
    let (status, body) = call(&s, post(message.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(s.queue.sent(), vec![message]);
}

fn post_with(body: impl Into<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/messages").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body.into()).expect("request")
}

fn fifo_state() -> S {
    let s = state();
    let mut config = s.config.clone();
    config.queue_url = "http://queue/orders.fifo".into();
    config.fifo = true;
    Arc::new(AppState {
        queue: MemQueue::default(),
        records: MemRecords::default(),
        config,
    })
}

fn failing(class: ErrorClass, code: &'static str, detail: &'static str) -> S {
    state_with(
        MemQueue {
            error: Some((class, code, detail)),
            ..Default::default()
        },
        MemRecords::default(),
    )
}

#[tokio::test]
async fn an_idempotency_key_header_keys_each_message_and_fixes_its_record_id() {
    let s = state();
    let request = || {
        post_with(
            r#"[{"n":0},{"n":1},{"n":2}]"#,
            &[("Idempotency-Key", "req-7")],
        )
    };
    let (status, body) = call(&s, request()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let first: EnqueueResponse = serde_json::from_value(body).expect("response");
    let keys: Vec<Option<String>> = s
        .queue
        .entries()
        .iter()
        .map(|e| e.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Some("req-7/0".into()),
            Some("req-7/1".into()),
            Some("req-7/2".into())
        ]
    );
    for a in &first.accepted {
        let key = format!("req-7/{}", a.index);
        assert_eq!(
            a.id,
            message_record_id(&a.message_id, Some(&key)).to_string()
        );
        assert_ne!(a.id, record_id(&a.message_id).to_string());
    }
    // A resend (after a lost answer) gets new message ids but the same records.
    let (_, body) = call(&s, request()).await;
    let again: EnqueueResponse = serde_json::from_value(body).expect("response");
    let ids = |r: &EnqueueResponse| r.accepted.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_ne!(first.accepted[0].message_id, again.accepted[0].message_id);
    assert_eq!(ids(&first), ids(&again));
}

#[tokio::test]
async fn a_single_object_takes_the_header_key_as_is_and_a_field_key_wins() {
    let s = state();
    let (status, _) = call(&s, post_with(r#"{"n":0}"#, &[("Idempotency-Key", "k")])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(
        &s,
        post_with(
            r#"[{"n":1,"idempotencyKey":"own"},{"n":2}]"#,
            &[("Idempotency-Key", "req")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(&s, post(r#"{"n":3}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let keys: Vec<Option<String>> = s
        .queue
        .entries()
        .iter()
        .map(|e| e.idempotency_key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            Some("k".into()),
            Some("own".into()),
            Some("req/1".into()),
            None
        ]
    );
}

#[tokio::test]
async fn bad_keys_and_groups_are_refused_and_nothing_is_enqueued() {
    let s = state();
    let long = "k".repeat(129);
    let near = "k".repeat(127);
    let cases: Vec<(&str, Request<Body>, &str)> = vec![
        (
            "space in the header",
            post_with("{}", &[("Idempotency-Key", "a b")]),
            "invalid_idempotency_key",
        ),
        (
            "header too long",
            post_with("{}", &[("Idempotency-Key", &long)]),
            "invalid_idempotency_key",
        ),
        (
            "derived key too long",
            post_with("[{},{}]", &[("Idempotency-Key", &near)]),
            "invalid_idempotency_key",
        ),
        (
            "field not a string",
            post(r#"{"idempotencyKey":7}"#),
            "invalid_field",
        ),
        (
            "empty field",
            post(r#"{"idempotencyKey":""}"#),
            "invalid_idempotency_key",
        ),
        (
            "bad group",
            post_with("{}", &[("Message-Group-Id", "t\u{e9}")]),
            "invalid_message_group",
        ),
        (
            "bad group field",
            post(r#"{"messageGroupId":"a b"}"#),
            "invalid_message_group",
        ),
        (
            "null key field",
            post_with(r#"{"idempotencyKey":null}"#, &[("Idempotency-Key", "k")]),
            "invalid_field",
        ),
        (
            "null group field",
            post_with(r#"[{"messageGroupId":null}]"#, &[("Message-Group-Id", "g")]),
            "invalid_field",
        ),
    ];
    for (what, request, code) in cases {
        let (status, body) = call(&s, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(error_code(&body), code, "{what}");
    }
    assert_eq!(s.queue.calls(), 0, "nothing was sent");
}

#[tokio::test]
async fn fifo_messages_get_a_group_and_a_deduplication_id() {
    let s = fifo_state();
    let (status, body) = call(
        &s,
        post(r#"[{"n":0},{"n":1,"idempotencyKey":"k1"},{"n":2,"messageGroupId":"tenant-b"}]"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _) = call(
        &s,
        post_with(r#"{"n":3}"#, &[("Message-Group-Id", "tenant-a")]),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let e = s.queue.entries();
    let groups: Vec<Option<&str>> = e.iter().map(|e| e.group_id.as_deref()).collect();
    assert_eq!(
        groups,
        vec![
            Some("default"),
            Some("default"),
            Some("tenant-b"),
            Some("tenant-a")
        ]
    );
    assert_eq!(
        e[1].deduplication_id.as_deref(),
        Some("k1"),
        "the key deduplicates"
    );
    let unkeyed: Vec<&str> = [&e[0], &e[2], &e[3]]
        .iter()
        .map(|e| {
            e.deduplication_id
                .as_deref()
                .expect("every FIFO message has one")
        })
        .collect();
    assert!(unkeyed.iter().all(|d| pipeline_core::valid_key(d)));
    assert!(
        unkeyed[0] != unkeyed[1] && unkeyed[1] != unkeyed[2],
        "{unkeyed:?}"
    );
}

#[tokio::test]
async fn standard_queues_get_a_group_only_as_a_fair_queue_tenant_and_no_deduplication_id() {
    let s = state();
    let (status, _) = call(
        &s,
        post_with(
            r#"[{"n":0},{"n":1,"messageGroupId":"b"}]"#,
            &[("Message-Group-Id", "a")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(&s, post(r#"{"n":2}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let e = s.queue.entries();
    let groups: Vec<Option<&str>> = e.iter().map(|e| e.group_id.as_deref()).collect();
    assert_eq!(groups, vec![Some("a"), Some("b"), None]);
    assert!(e.iter().all(|e| e.deduplication_id.is_none()));
}

const ARN_DETAIL: &str = "User: arn:aws:sts::123456789012:assumed-role/producer/x is not authorized to perform: sqs:sendmessage on resource: arn:aws:sqs:us-east-1:123456789012:q";

#[tokio::test]
async fn a_misconfigured_queue_is_500_not_retryable_not_retried_and_names_no_account() {
    for (code, detail) in [
        ("AccessDenied", ARN_DETAIL),
        ("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist for this wsdl version. arn:aws:sqs:us-east-1:123456789012:q"),
    ] {
        let s = failing(ErrorClass::Misconfigured, code, detail);
        let items: Vec<String> = (0..15).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        let (status, body) = call(&s, post(format!("[{}]", items.join(",")))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"], "queue_misconfigured");
        let r: EnqueueResponse = serde_json::from_value(body.clone()).expect("response");
        assert!(r.accepted.is_empty());
        assert_eq!(r.failed.len(), 15);
        assert!(r.failed.iter().all(|f| !f.retryable && f.code == "queue_misconfigured"));
        assert_eq!(s.queue.calls(), 2, "one call per chunk, none retried");
        let text = body.to_string();
        assert!(!text.contains("123456789012") && !text.contains("arn:"), "{text}");
        assert!(r.request_id.is_some_and(|id| !id.is_empty()), "a request id to quote");
    }
}

#[tokio::test]
async fn throttling_is_503_retryable_and_left_to_the_sdks_retries() {
    let s = failing(ErrorClass::Retryable, "ThrottlingException", ARN_DETAIL);
    let (status, body) = call(&s, post(r#"[{"a":1},{"b":2}]"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body.clone()).expect("response");
    assert!(r
        .failed
        .iter()
        .all(|f| f.retryable && f.code == "queue_unavailable"));
    assert_eq!(
        s.queue.calls(),
        1,
        "a whole-call error is not retried on top of the SDK"
    );
    assert!(!body.to_string().contains("123456789012"), "{body}");
}

#[tokio::test]
async fn entry_failures_carry_the_code_but_never_sqs_text() {
    let s = state();
    let (status, body) = call(
        &s,
        post(r#"[{"ok":1},{"fail-always":1},{"sender-fault":1}]"#),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    let r: EnqueueResponse = serde_json::from_value(body.clone()).expect("response");
    let codes: Vec<&str> = r.failed.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, vec!["InternalError", "InvalidMessageContents"]);
    assert!(!body.to_string().contains("arn:"), "{body}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let s = state();
    let response = app(s.clone())
        .oneshot(post(r#"{"a":1}"#))
        .await
        .expect("infallible");
    let header = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let r: EnqueueResponse = serde_json::from_slice(&bytes).expect("response");
    assert_eq!(r.request_id.as_deref(), Some(header.as_str()));
    let response = app(s).oneshot(post("nope")).await.expect("infallible");
    assert!(
        response.headers().contains_key("x-request-id"),
        "errors too"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_queue_is_answered_before_the_deadline_with_exact_accounting() {
    let mut config = Config::for_tests();
    config.request_timeout = Duration::from_secs(3);
    config.call_timeout = Duration::from_secs(30);
    let s = Arc::new(AppState {
        queue: MemQueue {
            stall_on: Some("black-hole"),
            ..Default::default()
        },
        records: MemRecords::default(),
        config,
    });
    // Chunk one (0-9) goes through; chunk two (10-14) never answers.
    let items: Vec<String> = (0..15)
        .map(|i| {
            if i < 10 {
                format!(r#"{{"n":{i}}}"#)
            } else {
                format!(r#"{{"n":{i},"x":"black-hole"}}"#)
            }
        })
        .collect();
    let started = tokio::time::Instant::now();
    let (status, body) = call(&s, post(format!("[{}]", items.join(",")))).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert!(
        took >= Duration::from_millis(2_500),
        "used its budget: {took:?}"
    );
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(
        r.accepted.iter().map(|a| a.index).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        r.failed.iter().map(|f| f.index).collect::<Vec<_>>(),
        (10..15).collect::<Vec<_>>()
    );
    assert!(r
        .failed
        .iter()
        .all(|f| f.retryable && f.code == "queue_outcome_unknown"));
    assert_eq!(
        s.queue.sent().len(),
        10,
        "accepted is exactly what the queue holds"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_of_failed_entries_stop_in_time_to_answer() {
    let mut config = Config::for_tests();
    config.request_timeout = Duration::from_secs(2);
    config.send_max_attempts = 10;
    let s = Arc::new(AppState {
        queue: MemQueue {
            latency: Duration::from_millis(400),
            ..Default::default()
        },
        records: MemRecords::default(),
        config,
    });
    let started = tokio::time::Instant::now();
    let (status, body) = call(&s, post(r#"[{"ok":1},{"fail-always":1}]"#)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let calls = s.queue.calls();
    assert!(
        (2..10).contains(&calls),
        "retried while time allowed: {calls} calls"
    );
}

#[tokio::test]
async fn the_nesting_limit_is_each_messages_not_the_arrays() {
    let s = state();
    let deep = |n: usize| format!(r#"{{"a":{}1{}}}"#, "[".repeat(n - 1), "]".repeat(n - 1));
    let limit = producer::MAX_JSON_DEPTH;
    let (status, body) = call(&s, post(format!("[{},{}]", deep(limit), deep(limit)))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = call(&s, post(format!("[{},{}]", deep(limit), deep(limit + 1)))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("message 1")),
        "{body}"
    );
}

#[tokio::test]
async fn a_keyed_record_is_found_by_its_record_id() {
    let mut records = MemRecords::default();
    let id = message_record_id("mid-3", Some("order-3")).to_string();
    let record = StoredRecord {
        id: id.clone(),
        message_id: "mid-3".into(),
        s3_key: format!("records/{id}.json"),
        received_at: "2026-01-01T00:00:00.000Z".into(),
        body_bytes: 2,
        stored_at: "2026-01-01T00:00:00.100Z".into(),
    };
    records.0.insert(id.clone(), record.clone());
    let s = state_with(MemQueue::default(), records);
    let get = |path: String| Request::get(path).body(Body::empty()).expect("req");
    let (status, body) = call(&s, get(format!("/messages/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_value::<StoredRecord>(body).expect("record"),
        record
    );
    let (status, _) = call(&s, get("/messages/mid-3".into())).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a keyed record is not under its message id"
    );
}

// ---- order per FIFO group, unknown outcomes, sizes ---------------------------

fn fifo_config() -> Config {
    let mut config = Config::for_tests();
    config.max_messages = 100;
    config.queue_url = "http://queue/orders.fifo".into();
    config.fifo = true;
    config
}

fn fifo_with(queue: MemQueue) -> S {
    Arc::new(AppState {
        queue,
        records: MemRecords::default(),
        config: fifo_config(),
    })
}

/// `n` messages of each group, interleaved (a-0, b-0, a-1, b-1, ...), each
/// with its group and `extra` (by message) in the body.
fn interleaved(groups: &[&str], n: usize, extra: impl Fn(&str, usize) -> &'static str) -> String {
    let mut items = Vec::new();
    for i in 0..n {
        for g in groups {
            items.push(format!(
                r#"{{"messageGroupId":"{g}","n":"{g}-{i}"{}}}"#,
                extra(g, i)
            ));
        }
    }
    format!("[{}]", items.join(","))
}

/// The `n` field of each body.
fn ns(bodies: &[String]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_str(b).expect("JSON body");
            v["n"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn want(group: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{group}-{i}")).collect()
}

fn failed_codes(r: &EnqueueResponse) -> Vec<(usize, String)> {
    r.failed.iter().map(|f| (f.index, f.code.clone())).collect()
}

#[tokio::test(start_paused = true)]
async fn fifo_groups_go_out_in_order_one_call_at_a_time_and_groups_run_side_by_side() {
    // Group a's first call is slow: sent concurrently, its later calls would
    // land first.
    let s = fifo_with(MemQueue {
        latency: Duration::from_millis(10),
        slow_on: Some(("slow", Duration::from_millis(300))),
        ..Default::default()
    });
    let body = interleaved(&["a", "b"], 35, |g, i| {
        if g == "a" && i == 3 {
            r#","slow":true"#
        } else {
            ""
        }
    });
    let (status, body) = call(&s, post(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(ns(&s.queue.sent_in("a")), want("a", 0..35));
    assert_eq!(ns(&s.queue.sent_in("b")), want("b", 0..35));
    let (most, most_per_group) = *s.queue.most_in_flight.lock().expect("lock");
    assert_eq!(most_per_group, 1, "one call at a time per group");
    assert!(most >= 2, "groups are sent side by side: {most}");
}

#[tokio::test]
async fn fifo_messages_of_many_small_groups_share_calls() {
    let s = fifo_with(MemQueue::default());
    let items: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"messageGroupId":"g{i}"}}"#))
        .collect();
    let (status, body) = call(&s, post(format!("[{}]", items.join(",")))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(s.queue.calls(), 3, "ten groups per call");
}

#[tokio::test(start_paused = true)]
async fn standard_queue_calls_run_concurrently() {
    let s = state_with(
        MemQueue {
            latency: Duration::from_millis(50),
            ..Default::default()
        },
        MemRecords::default(),
    );
    let items: Vec<String> = (0..45)
        .map(|i| format!(r#"{{"messageGroupId":"tenant","n":{i}}}"#))
        .collect();
    let (status, _) = call(&s, post(format!("[{}]", items.join(",")))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (most, _) = *s.queue.most_in_flight.lock().expect("lock");
    assert_eq!(
        most, 5,
        "a fair-queue group does not serialise a standard queue"
    );
}

#[tokio::test]
async fn fifo_a_failed_call_holds_back_the_rest_of_its_group_and_other_groups_go_on() {
    // Group a's second call (a-10 .. a-19) fails whole.
    let s = fifo_with(MemQueue {
        fail_calls_on: Some(("a-12", ErrorClass::Retryable)),
        ..Default::default()
    });
    let (status, body) = call(&s, post(interleaved(&["a", "b"], 25, |_, _| ""))).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(ns(&s.queue.sent_in("a")), want("a", 0..10));
    assert_eq!(
        ns(&s.queue.sent_in("b")),
        want("b", 0..25),
        "group b goes on"
    );
    // a-i is message 2i of the request.
    let mut expected: Vec<(usize, String)> = (10..20)
        .map(|i| (2 * i, "queue_unavailable".to_owned()))
        .collect();
    expected.extend((20..25).map(|i| (2 * i, "held_back_for_order".to_owned())));
    assert_eq!(failed_codes(&r), expected);
    assert!(r.failed.iter().all(|f| f.retryable));
    let held = &r.failed[10];
    assert!(
        held.message.contains("from index 20 on"),
        "{}",
        held.message
    );
}

#[tokio::test]
async fn fifo_a_failed_tail_is_sent_again_before_the_groups_next_call() {
    let s = fifo_with(MemQueue::default());
    // a-7 .. a-9 fail once: the tail of a's first call.
    let body = interleaved(&["a"], 25, |_, i| {
        if (7..10).contains(&i) {
            r#","fail-once":true"#
        } else {
            ""
        }
    });
    let (status, body) = call(&s, post(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(ns(&s.queue.sent_in("a")), want("a", 0..25));
    assert_eq!(
        *s.queue.calls.lock().expect("lock"),
        vec![10, 10, 8],
        "10, then the 3 again leading the next call"
    );
}

#[tokio::test]
async fn fifo_an_entry_failed_between_taken_ones_is_reported_not_sent_again() {
    let s = fifo_with(MemQueue::default());
    // a-5 fails while a-6 .. a-9 of the same call are taken.
    let body = interleaved(
        &["a"],
        15,
        |_, i| {
            if i == 5 {
                r#","fail-once":true"#
            } else {
                ""
            }
        },
    );
    let (status, body) = call(&s, post(body)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    let mut expected = vec![(5, "group_order_broken".to_owned())];
    expected.extend((10..15).map(|i| (i, "held_back_for_order".to_owned())));
    assert_eq!(failed_codes(&r), expected);
    assert!(r.failed.iter().all(|f| f.retryable));
    let mut taken = want("a", 0..5);
    taken.extend(want("a", 6..10));
    assert_eq!(
        ns(&s.queue.sent_in("a")),
        taken,
        "a-5 was not sent behind a-9"
    );
}

#[tokio::test]
async fn every_answer_of_an_unknown_outcome_says_the_message_may_be_in_the_queue() {
    for class in [ErrorClass::OutcomeUnknown] {
        let s = failing(class, "Timeout", "no answer");
        let (status, body) = call(&s, post(r#"[{"a":1},{"b":2}]"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let r: EnqueueResponse = serde_json::from_value(body).expect("response");
        for f in &r.failed {
            assert_eq!(f.code, "queue_outcome_unknown");
            assert!(f.retryable);
            assert!(
                f.message
                    .contains("may be in the queue; resend with the same Idempotency-Key"),
                "{}",
                f.message
            );
        }
    }
    // An entry SQS answered neither way: unknown too, never "may succeed".
    let s = state();
    let (_, body) = call(&s, post(r#"[{"ok":1},{"vanish":1}]"#)).await;
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(
        failed_codes(&r),
        vec![(1, "queue_outcome_unknown".to_owned())]
    );
    assert_eq!(s.queue.calls(), 1, "not sent again: it may be in the queue");
}

#[tokio::test]
async fn message_attributes_count_toward_the_size_limit() {
    let s = state();
    // 1 MiB less 20 bytes: fits alone, not with its key attribute
    // ("idempotency-key" + "String" + "k" = 22 bytes).
    let body = format!(r#"{{"x":"{}"}}"#, "a".repeat(1024 * 1024 - 28));
    assert_eq!(body.len(), 1024 * 1024 - 20);
    let (status, answer) = call(&s, post_with(body.clone(), &[("Idempotency-Key", "k")])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(error_code(&answer), "message_too_large");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("idempotency-key")),
        "{answer}"
    );
    assert_eq!(s.queue.calls(), 0);
    let (status, _) = call(&s, post(body)).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "without the attribute it fits"
    );
}

#[tokio::test]
async fn calls_are_cut_at_one_mebibyte_attributes_included() {
    let mut config = Config::for_tests();
    config.max_request_bytes = 3 * 1024 * 1024;
    let s = Arc::new(AppState {
        queue: MemQueue::default(),
        records: MemRecords::default(),
        config,
    });
    // Two bodies fit one call (1,048,540 bytes), not with their keys (+48).
    let body = format!(r#"{{"x":"{}"}}"#, "a".repeat(524_270 - 8));
    let (status, answer) = call(
        &s,
        post_with(format!("[{body},{body}]"), &[("Idempotency-Key", "k")]),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(s.queue.calls(), 2);
}

#[tokio::test]
async fn a_message_sqs_refuses_for_its_size_is_413_not_500() {
    let s = state();
    let (status, body) = call(&s, post(r#"[{"too-big-for-sqs":1}]"#)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body.clone()).expect("response");
    assert_eq!(failed_codes(&r), vec![(0, "message_too_large".to_owned())]);
    assert!(!r.failed[0].retryable);
    assert!(r.error.is_none(), "{body}");
    // A whole call SQS refused for its size, likewise.
    let s = failing(ErrorClass::TooLarge, "BatchRequestTooLong", "too long");
    let (status, body) = call(&s, post(r#"[{"a":1},{"b":2}]"#)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_long_group_cut_at_the_deadline_says_what_may_be_in_and_what_never_went() {
    let mut config = fifo_config();
    config.request_timeout = Duration::from_millis(2_500);
    let s = Arc::new(AppState {
        queue: MemQueue {
            latency: Duration::from_secs(1),
            ..Default::default()
        },
        records: MemRecords::default(),
        config,
    });
    let started = tokio::time::Instant::now();
    let (status, body) = call(&s, post(interleaved(&["a"], 40, |_, _| ""))).await;
    assert!(started.elapsed() < Duration::from_millis(2_500));
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let r: EnqueueResponse = serde_json::from_value(body).expect("response");
    assert_eq!(r.accepted.len(), 20, "two calls of a second each");
    let mut expected: Vec<(usize, String)> = (20..30)
        .map(|i| (i, "queue_outcome_unknown".to_owned()))
        .collect();
    expected.extend((30..40).map(|i| (i, "held_back_for_order".to_owned())));
    assert_eq!(failed_codes(&r), expected);
}
