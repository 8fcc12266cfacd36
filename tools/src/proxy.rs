//! A fault-injecting HTTP proxy between the functions and the emulator.
//!
//! It forwards every request to the emulator, except that for a chosen
//! operation and share of requests it answers with an error, drops the
//! connection, waits, or forwards only part of a batch and reports the rest
//! as `UnprocessedItems` / `Failed`, as AWS itself does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

/// The operations faults can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// S3 PutObject.
    S3PutObject,
    /// DynamoDB BatchWriteItem.
    DynamoBatchWriteItem,
    /// DynamoDB GetItem.
    DynamoGetItem,
    /// SQS SendMessageBatch.
    SqsSendMessageBatch,
    /// Anything else.
    Other,
}

/// What to do to a request that draws a fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// S3 503 SlowDown.
    S3SlowDown,
    /// S3 500 InternalError.
    S3InternalError,
    /// DynamoDB 400 ProvisionedThroughputExceededException.
    DynamoThroughputExceeded,
    /// DynamoDB 400 ThrottlingException.
    DynamoThrottling,
    /// DynamoDB 500 InternalServerError.
    DynamoInternalError,
    /// Forward the BatchWriteItem with this share of its requests held back,
    /// and return those as UnprocessedItems.
    Unprocessed(f64),
    /// SQS 500 InternalError for the whole call.
    SqsInternalError,
    /// Forward the SendMessageBatch with this share of entries held back, and
    /// return those in `Failed` (retryable).
    SqsPartialFailed(f64),
    /// Close the connection without an answer.
    Reset,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Never answer (a half-open connection): the request hangs until the
    /// client gives up and closes the connection.
    Stall,
    /// Forward the request, wait for the upstream's answer, then close the
    /// connection without passing it on: the call took effect, but the
    /// caller cannot know.
    DropResponse,
}

/// A fault for a share of one operation's requests, at most `limit` times.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which operation.
    pub op: Op,
    /// What to do.
    pub fault: Fault,
    /// Share of that operation's requests that draw the fault (0 to 1).
    pub share: f64,
    /// Most faults this rule injects (None: no limit).
    pub limit: Option<u64>,
    /// Only requests whose body contains this text (None: every request).
    pub body_contains: Option<String>,
}

impl Rule {
    /// A rule with no limit.
    pub fn new(op: Op, fault: Fault, share: f64) -> Self {
        Self {
            op,
            fault,
            share,
            limit: None,
            body_contains: None,
        }
    }

    /// At most `limit` faults.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only for requests whose body contains `text`.
    pub fn when_body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_owned());
        self
    }
}

#[derive(Default)]
struct Counters {
    seen: HashMap<Op, u64>,
    /// Requests of each operation being handled now, and the most at once.
    in_flight: HashMap<Op, (u64, u64)>,
    injected: HashMap<Op, u64>,
    fired: Vec<u64>,
    /// Requests each rule was asked about (those earlier rules let through).
    considered: Vec<u64>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    counters: Mutex<Counters>,
    client: reqwest::Client,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream`
    /// with `rules`.
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> Result<Self> {
        Self::start_on(0, upstream, rules).await
    }

    /// Starts a proxy on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(port: u16, upstream: &str, rules: Vec<Rule>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let n = rules.len();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rules: Mutex::new(rules),
            counters: Mutex::new(Counters {
                fired: vec![0; n],
                considered: vec![0; n],
                ..Default::default()
            }),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        });
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The proxy's URL, to use as an endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rules (e.g. none, to let everything through).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let n = rules.len();
        *lock(&self.shared.rules) = rules;
        let mut counters = lock(&self.shared.counters);
        counters.fired = vec![0; n];
        counters.considered = vec![0; n];
    }

    /// Requests of `op` seen so far.
    pub fn seen(&self, op: Op) -> u64 {
        lock(&self.shared.counters)
            .seen
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// The most requests of `op` the proxy was handling at once.
    pub fn max_in_flight(&self, op: Op) -> u64 {
        lock(&self.shared.counters)
            .in_flight
            .get(&op)
            .map_or(0, |(_, max)| *max)
    }

    /// Faults injected into `op` so far.
    pub fn injected(&self, op: Op) -> u64 {
        lock(&self.shared.counters)
            .injected
            .get(&op)
            .copied()
            .unwrap_or(0)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn classify(method: &hyper::Method, path: &str, target: Option<&str>) -> Op {
    match target {
        Some(t) if t.ends_with(".BatchWriteItem") => Op::DynamoBatchWriteItem,
        Some(t) if t.ends_with(".GetItem") => Op::DynamoGetItem,
        Some(t) if t.ends_with(".SendMessageBatch") => Op::SqsSendMessageBatch,
        Some(_) => Op::Other,
        // Path-style S3: PUT /bucket/key is PutObject.
        None if method == hyper::Method::PUT && path.trim_start_matches('/').contains('/') => {
            Op::S3PutObject
        }
        None => Op::Other,
    }
}

/// Picks the fault for this request. Each rule takes an even share of the
/// requests of its operation that earlier rules let through (deterministic,
/// so runs are repeatable, and two rules at 1% each fault 2% of calls).
fn draw(shared: &Shared, op: Op, body: &[u8]) -> Option<Fault> {
    let rules = lock(&shared.rules);
    let mut counters = lock(&shared.counters);
    *counters.seen.entry(op).or_insert(0) += 1;
    for (i, rule) in rules.iter().enumerate() {
        let body_matches = rule.body_contains.as_ref().is_none_or(|text| {
            body.windows(text.len().max(1))
                .any(|w| w == text.as_bytes())
        });
        if rule.op != op || !body_matches || rule.limit.is_some_and(|l| counters.fired[i] >= l) {
            continue;
        }
        counters.considered[i] += 1;
        let n = counters.considered[i] as f64;
        if (n * rule.share).floor() > ((n - 1.0) * rule.share).floor() {
            counters.fired[i] += 1;
            *counters.injected.entry(op).or_insert(0) += 1;
            return Some(rule.fault.clone());
        }
    }
    None
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Answer {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    answer(status, "application/xml", body)
}

fn json_error(status: StatusCode, kind: &str, message: &str) -> Answer {
    let body = json!({ "__type": kind, "message": message }).to_string();
    let mut response = answer(status, "application/x-amz-json-1.0", body);
    if let Ok(v) = format!("{};Receiver", kind.rsplit('#').next().unwrap_or(kind)).parse() {
        response.headers_mut().insert("x-amzn-query-error", v);
    }
    response
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Answer, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let op = classify(&parts.method, parts.uri.path(), target);
    let _in_flight = InFlight::enter(&shared, op);
    let fault = draw(&shared, op, &body);
    if let Some(error) = fault.as_ref().and_then(canned_error) {
        return Ok(error);
    }
    let body = match fault {
        Some(Fault::Reset) => {
            return Err(std::io::Error::other("connection reset by the fault proxy"))
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            body
        }
        Some(Fault::Stall) => std::future::pending().await,
        Some(Fault::DropResponse) => {
            let _ = forward(&shared, &parts, body).await?;
            return Err(std::io::Error::other(
                "response dropped by the fault proxy after the upstream answered",
            ));
        }
        Some(Fault::Unprocessed(share)) => return unprocessed(&shared, &parts, body, share).await,
        Some(Fault::SqsPartialFailed(share)) => {
            return partial_failed(&shared, &parts, body, share).await
        }
        // Answered by canned_error above.
        Some(_) | None => body,
    };
    forward(&shared, &parts, body).await
}

/// Counts a request of `op` as in flight while it lives.
struct InFlight<'a>(&'a Shared, Op);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, op: Op) -> Self {
        let mut counters = lock(&shared.counters);
        let (now, max) = counters.in_flight.entry(op).or_insert((0, 0));
        *now += 1;
        *max = (*max).max(*now);
        Self(shared, op)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some((now, _)) = lock(&self.0.counters).in_flight.get_mut(&self.1) {
            *now = now.saturating_sub(1);
        }
    }
}

/// The error answer of a fault that is just an error, as each service sends it.
fn canned_error(fault: &Fault) -> Option<Answer> {
    let ddb = |kind: &str| format!("com.amazonaws.dynamodb.v20120810#{kind}");
    let injected = "injected by the fault proxy";
    let (status, kind) = match fault {
        Fault::S3SlowDown => {
            return Some(s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ))
        }
        Fault::S3InternalError => {
            return Some(s3_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                injected,
            ))
        }
        Fault::DynamoThroughputExceeded => (
            StatusCode::BAD_REQUEST,
            ddb("ProvisionedThroughputExceededException"),
        ),
        Fault::DynamoThrottling => (StatusCode::BAD_REQUEST, ddb("ThrottlingException")),
        Fault::DynamoInternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ddb("InternalServerError"),
        ),
        Fault::SqsInternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.sqs#InternalError".to_owned(),
        ),
        _ => return None,
    };
    Some(json_error(status, &kind, injected))
}

async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Answer, std::io::Error> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", shared.upstream);
    let mut request = shared.client.request(parts.method.clone(), &url).body(body);
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = status;
    for (name, value) in &headers {
        if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
            out.headers_mut().insert(name, value.clone());
        }
    }
    Ok(out)
}

/// Splits `items` into (kept, held back), holding back about `share` of them
/// (at least one when share > 0).
fn split<T>(items: Vec<T>, share: f64) -> (Vec<T>, Vec<T>) {
    let hold = ((items.len() as f64 * share).ceil() as usize).min(items.len());
    let mut kept = items;
    let held = kept.split_off(kept.len() - hold);
    (kept, held)
}

async fn unprocessed(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    share: f64,
) -> Result<Answer, std::io::Error> {
    let mut request: Value = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    let mut held_back = serde_json::Map::new();
    if let Some(tables) = request["RequestItems"].as_object_mut() {
        for (table, writes) in tables.iter_mut() {
            let all = writes.as_array().cloned().unwrap_or_default();
            let (kept, held) = split(all, share);
            *writes = Value::Array(kept);
            if !held.is_empty() {
                held_back.insert(table.clone(), Value::Array(held));
            }
        }
        tables.retain(|_, w| w.as_array().is_some_and(|a| !a.is_empty()));
    }
    let nothing_left = request["RequestItems"]
        .as_object()
        .is_none_or(|t| t.is_empty());
    let mut response: Value = if nothing_left {
        json!({ "UnprocessedItems": {} })
    } else {
        match forward_json(shared, parts, &request).await? {
            Ok(value) => value,
            Err(failed) => return Ok(failed),
        }
    };
    let slot = response
        .as_object_mut()
        .ok_or_else(|| std::io::Error::other("BatchWriteItem answer is not an object"))?
        .entry("UnprocessedItems")
        .or_insert_with(|| json!({}));
    if let Some(map) = slot.as_object_mut() {
        for (table, writes) in held_back {
            let entry = map.entry(table).or_insert_with(|| json!([]));
            if let (Some(list), Some(more)) = (entry.as_array_mut(), writes.as_array()) {
                list.extend(more.iter().cloned());
            }
        }
    }
    Ok(answer(
        StatusCode::OK,
        "application/x-amz-json-1.0",
        response.to_string(),
    ))
}

/// Forwards a JSON request; the answer parsed, or the upstream's error as is.
async fn forward_json(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    request: &Value,
) -> Result<Result<Value, Answer>, std::io::Error> {
    let forwarded = forward(shared, parts, Bytes::from(request.to_string())).await?;
    if !forwarded.status().is_success() {
        return Ok(Err(forwarded));
    }
    let bytes = forwarded
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(Ok(
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)?
    ))
}

async fn partial_failed(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    share: f64,
) -> Result<Answer, std::io::Error> {
    let mut request: Value = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let (kept, held) = split(entries, share);
    let failed: Vec<Value> = held
        .iter()
        .map(|e| json!({ "Id": e["Id"], "SenderFault": false, "Code": "InternalError", "Message": "injected by the fault proxy" }))
        .collect();
    let mut response = if kept.is_empty() {
        json!({ "Successful": [] })
    } else {
        request["Entries"] = Value::Array(kept);
        match forward_json(shared, parts, &request).await? {
            Ok(value) => value,
            Err(failed) => return Ok(failed),
        }
    };
    let slot = response
        .as_object_mut()
        .ok_or_else(|| std::io::Error::other("SendMessageBatch answer is not an object"))?
        .entry("Failed")
        .or_insert_with(|| json!([]));
    if let Some(list) = slot.as_array_mut() {
        list.extend(failed);
    }
    Ok(answer(
        StatusCode::OK,
        "application/x-amz-json-1.0",
        response.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_spread_evenly() {
        let shared = Shared {
            upstream: String::new(),
            rules: Mutex::new(vec![
                Rule::new(Op::S3PutObject, Fault::S3SlowDown, 0.25),
                Rule::new(Op::S3PutObject, Fault::Reset, 0.25),
            ]),
            counters: Mutex::new(Counters {
                fired: vec![0, 0],
                considered: vec![0, 0],
                ..Default::default()
            }),
            client: reqwest::Client::new(),
        };
        let drawn: Vec<Option<Fault>> = (0..100)
            .map(|_| draw(&shared, Op::S3PutObject, b""))
            .collect();
        let count = |f: Fault| drawn.iter().filter(|d| **d == Some(f.clone())).count();
        assert_eq!(count(Fault::S3SlowDown), 25);
        assert_eq!(
            count(Fault::Reset),
            18,
            "a quarter of the 75 left, rounded down"
        );
        assert!(draw(&shared, Op::DynamoBatchWriteItem, b"").is_none());
    }

    #[test]
    fn split_holds_back_at_least_one() {
        let (kept, held) = split(vec![1, 2, 3, 4], 0.1);
        assert_eq!((kept, held), (vec![1, 2, 3], vec![4]));
        let (kept, held) = split(vec![1, 2], 1.0);
        assert_eq!((kept, held), (vec![], vec![1, 2]));
    }
}
