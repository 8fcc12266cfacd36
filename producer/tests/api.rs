//! The producer API through `app(state).oneshot(..)`, with in-memory stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pipeline_core::{record_id, EnqueueResponse, ErrorBody, StoredRecord};
use producer::{app, AppState, Config, Entry, EntryFailure, EntryResult, Error, Queue, Records};
use tower::ServiceExt;

/// Records every entry it is asked to send; bodies containing a marker fail.
#[derive(Default)]
struct MemQueue {
    sent: Mutex<Vec<String>>,
    calls: Mutex<Vec<usize>>,
    attempts: Mutex<HashMap<String, u32>>,
    down: bool,
}

impl MemQueue {
    fn sent(&self) -> Vec<String> {
        self.sent.lock().expect("lock").clone()
    }
}

impl Queue for MemQueue {
    async fn send_batch(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, Error> {
        self.calls.lock().expect("lock").push(entries.len());
        assert!(entries.len() <= 10, "SQS takes at most 10 entries");
        if self.down {
            return Err(Error::Queue("connection refused".into()));
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
                message: "injected".into(),
                sender_fault,
            };
            if e.body.contains("fail-always") || (e.body.contains("fail-once") && tries == 1) {
                out.push((e.id.clone(), Err(fail("InternalError", false))));
            } else if e.body.contains("sender-fault") {
                out.push((e.id.clone(), Err(fail("InvalidMessageContents", true))));
            } else if e.body.contains("vanish") {
                // Neither in Successful nor in Failed.
            } else {
                let mut sent = self.sent.lock().expect("lock");
                sent.push(e.body.clone());
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
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
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
