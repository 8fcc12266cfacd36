//! The producer's request parsing, alone and through the whole router.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use pipeline_core::{EnqueueResponse, ErrorBody, StoredRecord, MAX_SQS_MESSAGE_BYTES};
use producer::{app, AppState, Config, Entry, EntryResult, Error, Queue, Records, SendError};
use tower::ServiceExt;

const MAX_MESSAGES: usize = 20;

#[derive(Default)]
struct Sent(Mutex<usize>);

impl Queue for Sent {
    async fn send_batch(
        &self,
        entries: &[Entry],
        _budget: Duration,
    ) -> Result<Vec<EntryResult>, SendError> {
        assert!(
            !entries.is_empty() && entries.len() <= 10,
            "batch of {}",
            entries.len()
        );
        *self.0.lock().expect("lock") += entries.len();
        Ok(entries
            .iter()
            .map(|e| (e.id.clone(), Ok(format!("m-{}", e.id))))
            .collect())
    }
}

struct NoRecords;

impl Records for NoRecords {
    async fn get(&self, _id: &str) -> Result<Option<StoredRecord>, Error> {
        Ok(None)
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the Content-Type ('0' JSON, '1' text/plain,
    // '2' JSON with a charset, '3' none); the rest is the body.
    let (selector, body) = data
        .split_first()
        .map_or((b'0', data), |(s, rest)| (*s, rest));
    let content_type = [
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
        "",
    ][usize::from(selector) % 4];

    // Parsing alone: never panics; what it accepts is within the limits.
    if let Ok(messages) = producer::parse_messages(body, MAX_MESSAGES) {
        assert!(!messages.is_empty() && messages.len() <= MAX_MESSAGES);
        for m in &messages {
            assert!(m.starts_with('{') && m.len() <= MAX_SQS_MESSAGE_BYTES);
            assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(m).is_ok(),
                "{m}"
            );
        }
    }

    // Through the router: 2xx with every sent message acknowledged, or 4xx
    // with a JSON error and nothing sent.
    let mut config = Config::for_tests();
    config.max_messages = MAX_MESSAGES;
    let state = Arc::new(AppState {
        queue: Sent::default(),
        records: NoRecords,
        config,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut request = Request::post("/messages");
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(body.to_vec())).expect("request");
        let response = app(state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let sent = *state.queue.0.lock().expect("lock");
        if status.is_success() {
            let answer: EnqueueResponse = serde_json::from_slice(&bytes).expect("JSON answer");
            assert_eq!(
                answer.accepted.len(),
                sent,
                "every sent message is acknowledged, and only those"
            );
            assert!(answer.failed.is_empty());
        } else {
            assert!(status.is_client_error(), "status {status}");
            let error: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error");
            assert!(!error.message.is_empty());
            assert_eq!(sent, 0, "nothing is sent for a rejected request");
        }
    });
});
