//! A fault-injecting HTTP proxy between the functions and the emulator.
//!
//! It forwards every request to the emulator, except that for a chosen
//! operation and share of requests it answers with an error, drops the
//! connection, waits, or forwards only part of a batch and reports the rest
//! as `UnprocessedItems` / `Failed`, as AWS itself does.
//!
//! For the bench it also adds a fixed delay to every call (an AWS-like round
//! trip), can answer S3 PutObject and DynamoDB BatchWriteItem itself
//! ([`Backend::Stub`]), counts calls by kind, and serves a control path:
//!
//! ```text
//! GET  /__proxy/stats[?reset=1]  -> Stats as JSON; reset=1 restarts max_in_flight
//! POST /__proxy/fail             <- JSON list of substrings: S3 PUTs whose path
//!                                   contains one are answered 403 AccessDenied
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{header, Method, Request, Response, StatusCode};
use serde::Serialize;
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
    /// S3 403 AccessDenied (the SDKs do not retry it).
    S3AccessDenied,
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

/// What answers the calls no rule faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The upstream (the emulator).
    #[default]
    Upstream,
    /// The proxy itself answers S3 PutObject and DynamoDB BatchWriteItem
    /// with success and stores nothing; everything else is forwarded.
    Stub,
}

/// How the proxy treats every call, apart from its rules.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Added to every call before it is answered or forwarded.
    pub delay: Duration,
    /// What answers.
    pub backend: Backend,
    /// Write the head of the first request of each kind from each SDK
    /// (the user agent's first token) to stderr.
    pub log_heads: bool,
}

/// Per-call statistics, the JSON of `GET /__proxy/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Calls proxied (the control path not counted).
    pub requests: u64,
    /// Client connections that carried at least one proxied call.
    pub connections: u64,
    /// Calls by kind: `S3 PutObject`, `BatchWriteItem` (the `X-Amz-Target`
    /// operation), `S3 GetObject`, `S3 <METHOD> <bucket>`.
    pub by_kind: BTreeMap<String, u64>,
    /// Milliseconds the upstream took, summed by kind (stubbed calls: none).
    pub upstream_ms: BTreeMap<String, f64>,
    /// The most calls in flight at once (since the last reset).
    pub max_in_flight: u64,
    /// The delay added to each call.
    pub delay_ms: f64,
}

#[derive(Default)]
struct Counters {
    seen: HashMap<Op, u64>,
    /// Requests of each operation being handled now, and the most at once.
    in_flight: HashMap<Op, (u64, u64)>,
    /// All requests being handled now, and the most at once since the reset.
    all_in_flight: (u64, u64),
    injected: HashMap<Op, u64>,
    fired: Vec<u64>,
    /// Requests each rule was asked about (those earlier rules let through).
    considered: Vec<u64>,
    requests: u64,
    connections: u64,
    by_kind: BTreeMap<String, u64>,
    upstream_ms: BTreeMap<String, f64>,
    /// (kind, client) pairs whose first request head was logged.
    logged: HashSet<(String, String)>,
}

struct Shared {
    upstream: String,
    options: Options,
    rules: Mutex<Vec<Rule>>,
    /// S3 PUTs whose path contains one of these are denied.
    denied: Mutex<Vec<String>>,
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

/// Fails unless `upstream` is an http URL on the loopback interface: the
/// proxy is for the local emulator, never for a real endpoint.
fn check_loopback(upstream: &str) -> Result<()> {
    let url = reqwest::Url::parse(upstream).with_context(|| format!("upstream {upstream:?}"))?;
    let host = url.host_str().unwrap_or_default();
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if url.scheme() != "http" || !loopback {
        bail!("the upstream must be http:// on the loopback interface, got {upstream:?}");
    }
    Ok(())
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream`
    /// with `rules`.
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> Result<Self> {
        Self::start_on(0, upstream, rules).await
    }

    /// Starts a proxy on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(port: u16, upstream: &str, rules: Vec<Rule>) -> Result<Self> {
        Self::start_with(port, upstream, rules, Options::default()).await
    }

    /// Starts a proxy on 127.0.0.1:`port` (0: any free port) with `options`.
    pub async fn start_with(
        port: u16,
        upstream: &str,
        rules: Vec<Rule>,
        options: Options,
    ) -> Result<Self> {
        check_loopback(upstream)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let n = rules.len();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            options,
            rules: Mutex::new(rules),
            denied: Mutex::new(Vec::new()),
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
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors, say: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Small answers go out at once, not after a delayed ACK.
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    // A connection is counted at its first proxied call, so
                    // the control path's own connections are not.
                    let counted = Arc::new(AtomicBool::new(false));
                    let service = hyper::service::service_fn(move |req| {
                        handle(state.clone(), counted.clone(), req)
                    });
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

    /// S3 PUTs whose path contains one of `substrings` are answered 403
    /// AccessDenied from now on (an empty list: none). Replaces the last list.
    pub fn deny_s3_puts(&self, substrings: Vec<String>) {
        *lock(&self.shared.denied) = substrings;
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

    /// The per-call statistics; `reset_max_in_flight` restarts that count
    /// from the calls in flight now.
    pub fn stats(&self, reset_max_in_flight: bool) -> Stats {
        stats(&self.shared, reset_max_in_flight)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stats(shared: &Shared, reset_max_in_flight: bool) -> Stats {
    let mut c = lock(&shared.counters);
    if reset_max_in_flight {
        c.all_in_flight.1 = c.all_in_flight.0;
    }
    Stats {
        requests: c.requests,
        connections: c.connections,
        by_kind: c.by_kind.clone(),
        upstream_ms: c
            .upstream_ms
            .iter()
            .map(|(k, v)| (k.clone(), (v * 1000.0).round() / 1000.0))
            .collect(),
        max_in_flight: c.all_in_flight.1,
        delay_ms: shared.options.delay.as_secs_f64() * 1000.0,
    }
}

fn classify(method: &Method, path: &str, target: Option<&str>) -> Op {
    match target {
        Some(t) if t.ends_with(".BatchWriteItem") => Op::DynamoBatchWriteItem,
        Some(t) if t.ends_with(".GetItem") => Op::DynamoGetItem,
        Some(t) if t.ends_with(".SendMessageBatch") => Op::SqsSendMessageBatch,
        Some(_) => Op::Other,
        // Path-style S3: PUT /bucket/key is PutObject.
        None if method == Method::PUT && path.trim_start_matches('/').contains('/') => {
            Op::S3PutObject
        }
        None => Op::Other,
    }
}

/// The name a call is counted under: the `X-Amz-Target` operation, else the
/// S3 call read from the method and path-style path.
fn kind(method: &Method, path: &str, target: Option<&str>) -> String {
    if let Some(t) = target {
        return t.rsplit('.').next().unwrap_or(t).to_owned();
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let bucket = segments.next();
    let has_key = segments.next().is_some();
    match (method, has_key) {
        (&Method::PUT, true) => "S3 PutObject".to_owned(),
        (&Method::GET, true) => "S3 GetObject".to_owned(),
        _ => format!("S3 {method} {}", bucket.unwrap_or("/")),
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

/// Whether the deny list turns this S3 PUT down (counted as injected).
fn denied(shared: &Shared, op: Op, path: &str) -> bool {
    if op != Op::S3PutObject || !lock(&shared.denied).iter().any(|s| path.contains(s)) {
        return false;
    }
    *lock(&shared.counters).injected.entry(op).or_insert(0) += 1;
    true
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
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

/// One proxied call: its head, the operation faults see and the kind it is
/// counted under.
struct Call {
    parts: Parts,
    op: Op,
    kind: String,
}

async fn handle(
    shared: Arc<Shared>,
    counted: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Answer, std::io::Error> {
    let (parts, body) = req.into_parts();
    // Reading the body is what makes hyper answer `Expect: 100-continue`,
    // here and at once, so the delay below is paid once per call.
    let body = body
        .collect()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .to_bytes();
    if parts.uri.path().starts_with("/__proxy/") {
        return Ok(control(&shared, &parts, &body));
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let path = parts.uri.path();
    let call = Call {
        op: classify(&parts.method, path, target),
        kind: kind(&parts.method, path, target),
        parts,
    };
    let first_on_connection = !counted.swap(true, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&shared, &call, first_on_connection);
    if shared.options.log_heads {
        log_head(&shared, &call, body.len());
    }
    if !shared.options.delay.is_zero() {
        tokio::time::sleep(shared.options.delay).await;
    }
    if denied(&shared, call.op, call.parts.uri.path()) {
        return Ok(access_denied());
    }
    let fault = draw(&shared, call.op, &body);
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
            let _ = exchange(&shared, &call, body).await?;
            return Err(std::io::Error::other(
                "response dropped by the fault proxy after the upstream answered",
            ));
        }
        Some(Fault::Unprocessed(share)) => {
            return unprocessed(&shared, &call, json_body(&body)?, share).await
        }
        Some(Fault::SqsPartialFailed(share)) => {
            return partial_failed(&shared, &call, json_body(&body)?, share).await
        }
        // Answered by canned_error above.
        Some(_) | None => body,
    };
    exchange(&shared, &call, body).await
}

/// The control path: statistics and the S3 deny list.
fn control(shared: &Shared, parts: &Parts, body: &[u8]) -> Answer {
    let json_answer = |status, value: String| answer(status, "application/json", value);
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/__proxy/stats") => {
            let reset = parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "reset=1"));
            let stats = stats(shared, reset);
            json_answer(
                StatusCode::OK,
                serde_json::to_string(&stats).unwrap_or_default(),
            )
        }
        (&Method::POST, "/__proxy/fail") => {
            let list = if body.is_empty() {
                Ok(Vec::new())
            } else {
                serde_json::from_slice::<Vec<String>>(body)
            };
            match list {
                Ok(list) => {
                    *lock(&shared.denied) = list;
                    json_answer(StatusCode::OK, "{}".to_owned())
                }
                Err(e) => json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({ "error": format!("expected a JSON list of strings: {e}") }).to_string(),
                ),
            }
        }
        _ => json_answer(StatusCode::NOT_FOUND, "{}".to_owned()),
    }
}

/// Writes the head of the first call of each kind from each client to stderr.
fn log_head(shared: &Shared, call: &Call, body_len: usize) {
    let client = call
        .parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split(' ').next())
        .unwrap_or("?")
        .to_owned();
    if !lock(&shared.counters)
        .logged
        .insert((call.kind.clone(), client))
    {
        return;
    }
    let parts = &call.parts;
    let mut text = format!(
        "--- first {} request ({body_len} body bytes)\n{} {} {:?}\r\n",
        call.kind, parts.method, parts.uri, parts.version
    );
    for (name, value) in &parts.headers {
        text.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str("\r\n");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Counts a request as in flight while it lives (and the call as made).
struct InFlight<'a>(&'a Shared, Op);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, call: &Call, first_on_connection: bool) -> Self {
        let mut counters = lock(&shared.counters);
        let (now, max) = counters.in_flight.entry(call.op).or_insert((0, 0));
        *now += 1;
        *max = (*max).max(*now);
        let (now, max) = &mut counters.all_in_flight;
        *now += 1;
        *max = (*max).max(*now);
        counters.requests += 1;
        counters.connections += u64::from(first_on_connection);
        *counters.by_kind.entry(call.kind.clone()).or_insert(0) += 1;
        Self(shared, call.op)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut counters = lock(&self.0.counters);
        if let Some((now, _)) = counters.in_flight.get_mut(&self.1) {
            *now = now.saturating_sub(1);
        }
        counters.all_in_flight.0 = counters.all_in_flight.0.saturating_sub(1);
    }
}

fn access_denied() -> Answer {
    s3_error(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        "Access Denied (injected by the fault proxy)",
    )
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
        Fault::S3AccessDenied => return Some(access_denied()),
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

/// The stub's answer for the body of a BatchWriteItem.
const STUB_BATCH_WRITE: &str = r#"{"UnprocessedItems":{}}"#;
/// CRC32 of [`STUB_BATCH_WRITE`] (`zlib.crc32`), the `x-amz-crc32` DynamoDB
/// sends and the SDKs check.
const STUB_BATCH_WRITE_CRC32: &str = "4185382651";

/// A successful answer for the calls the stub backend takes, or None.
fn stub_answer(op: Op) -> Option<Answer> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match op {
        Op::S3PutObject => {
            let mut response = Response::new(Full::new(Bytes::new()));
            let h = response.headers_mut();
            // S3's ETag is the body's MD5 for a plain put; no SDK checks it
            // on PutObject, so a unique opaque value of the same shape does.
            h.insert(header::ETAG, format!("\"{id}\"").parse().ok()?);
            h.insert("x-amz-request-id", id[..16].to_uppercase().parse().ok()?);
            Some(response)
        }
        Op::DynamoBatchWriteItem => {
            let mut response = answer(
                StatusCode::OK,
                "application/x-amz-json-1.0",
                STUB_BATCH_WRITE,
            );
            let h = response.headers_mut();
            h.insert("x-amzn-requestid", id.parse().ok()?);
            h.insert("x-amz-crc32", STUB_BATCH_WRITE_CRC32.parse().ok()?);
            Some(response)
        }
        _ => None,
    }
}

/// The answer of the backend: the stub's for the calls it takes, else the
/// upstream's.
async fn exchange(shared: &Shared, call: &Call, body: Bytes) -> Result<Answer, std::io::Error> {
    if shared.options.backend == Backend::Stub {
        if let Some(stubbed) = stub_answer(call.op) {
            return Ok(stubbed);
        }
    }
    forward(shared, call, body).await
}

/// Request headers that belong to one hop, not to the call.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::EXPECT,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

async fn forward(shared: &Shared, call: &Call, body: Bytes) -> Result<Answer, std::io::Error> {
    let parts = &call.parts;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", shared.upstream);
    let mut request = shared.client.request(parts.method.clone(), &url).body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let sent = Instant::now();
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
    let took_ms = sent.elapsed().as_secs_f64() * 1000.0;
    *lock(&shared.counters)
        .upstream_ms
        .entry(call.kind.clone())
        .or_insert(0.0) += took_ms;
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = status;
    for (name, value) in &headers {
        // A HEAD answer's Content-Length is the object's size: keep it.
        let length_of_head = name == header::CONTENT_LENGTH && parts.method == Method::HEAD;
        if length_of_head || !hop_by_hop(name) {
            out.headers_mut().append(name, value.clone());
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

/// A JSON request body, parsed.
fn json_body(body: &Bytes) -> Result<Value, std::io::Error> {
    serde_json::from_slice(body).map_err(std::io::Error::other)
}

async fn unprocessed(
    shared: &Shared,
    call: &Call,
    mut request: Value,
    share: f64,
) -> Result<Answer, std::io::Error> {
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
    let forward = (!nothing_left).then_some(&request);
    let add = |slot: &mut Value| {
        if let Some(map) = slot.as_object_mut() {
            for (table, writes) in held_back {
                let entry = map.entry(table).or_insert_with(|| json!([]));
                if let (Some(list), Some(more)) = (entry.as_array_mut(), writes.as_array()) {
                    list.extend(more.iter().cloned());
                }
            }
        }
    };
    let empty = json!({ "UnprocessedItems": {} });
    forward_and_add(shared, call, forward, empty, "UnprocessedItems", add).await
}

/// Forwards `request`, or answers `empty` without a call when it is `None`;
/// hands the answer's `field` (`empty`'s when the answer has none) to `add`
/// and answers the result with 200. An upstream error is answered as is.
async fn forward_and_add(
    shared: &Shared,
    call: &Call,
    request: Option<&Value>,
    empty: Value,
    field: &str,
    add: impl FnOnce(&mut Value),
) -> Result<Answer, std::io::Error> {
    let init = empty[field].clone();
    let mut response = match request {
        None => empty,
        Some(request) => match forward_json(shared, call, request).await? {
            Ok(value) => value,
            Err(failed) => return Ok(failed),
        },
    };
    let slot = response
        .as_object_mut()
        .ok_or_else(|| {
            std::io::Error::other(format!("the answer to add {field} to is not an object"))
        })?
        .entry(field)
        .or_insert(init);
    add(slot);
    Ok(answer(
        StatusCode::OK,
        "application/x-amz-json-1.0",
        response.to_string(),
    ))
}

/// Forwards a JSON request; the answer parsed, or the upstream's error as is.
async fn forward_json(
    shared: &Shared,
    call: &Call,
    request: &Value,
) -> Result<Result<Value, Answer>, std::io::Error> {
    let forwarded = exchange(shared, call, Bytes::from(request.to_string())).await?;
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
    call: &Call,
    mut request: Value,
    share: f64,
) -> Result<Answer, std::io::Error> {
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    let (kept, held) = split(entries, share);
    let failed: Vec<Value> = held
        .iter()
        .map(|e| json!({ "Id": e["Id"], "SenderFault": false, "Code": "InternalError", "Message": "injected by the fault proxy" }))
        .collect();
    let forward = !kept.is_empty();
    request["Entries"] = Value::Array(kept);
    let add = |slot: &mut Value| {
        if let Some(list) = slot.as_array_mut() {
            list.extend(failed);
        }
    };
    let empty = json!({ "Successful": [], "Failed": [] });
    forward_and_add(
        shared,
        call,
        forward.then_some(&request),
        empty,
        "Failed",
        add,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_spread_evenly() {
        let shared = Shared {
            upstream: String::new(),
            options: Options::default(),
            denied: Mutex::new(Vec::new()),
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
