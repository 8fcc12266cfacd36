//! A fake Lambda Runtime API on 127.0.0.1, and a function binary run
//! against it as Lambda runs a `provided.al2023` bootstrap: the way to test
//! what a function answers where the local emulator does not do what AWS
//! does with the answer (it ignores `batchItemFailures` on stream mappings;
//! infra/EMULATOR-GAPS.md).
//!
//! The endpoints, as Lambda's documentation describes them:
//!
//! ```text
//! GET  /2018-06-01/runtime/invocation/next           long poll; the event, with
//!                                                    Lambda-Runtime-Aws-Request-Id,
//!                                                    Lambda-Runtime-Deadline-Ms,
//!                                                    Lambda-Runtime-Invoked-Function-Arn,
//!                                                    Lambda-Runtime-Trace-Id
//! POST /2018-06-01/runtime/invocation/{id}/response  the function's result (202)
//! POST /2018-06-01/runtime/invocation/{id}/error     the function failed (202)
//! POST /2018-06-01/runtime/init/error                the function failed to start (202)
//! ```
//!
//! Events are queued and each `next` takes the oldest, so a process polling
//! several times at once (`lambda_runtime::run_concurrent`) gets several.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

const PREFIX: &str = "/2018-06-01/runtime";

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../response`: the body, as JSON (a body that is not JSON comes
    /// as a JSON string of its text).
    Response(Value),
    /// `POST .../error`: an invocation error.
    Error(FunctionError),
}

/// An invocation error as the function posted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// The body's `errorType` (what Lambda records, and what the event
    /// source mapping sees).
    pub error_type: String,
    /// The body's `errorMessage`.
    pub error_message: String,
    /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
    pub header: Option<String>,
}

impl Outcome {
    /// The response body, or an error naming what came instead.
    pub fn response(&self) -> Result<&Value> {
        match self {
            Outcome::Response(body) => Ok(body),
            Outcome::Error(e) => bail!(
                "an invocation error ({}: {}) instead of a response",
                e.error_type,
                e.error_message
            ),
        }
    }

    /// The invocation error, or an error naming the response that came instead.
    pub fn error(&self) -> Result<&FunctionError> {
        match self {
            Outcome::Error(e) => Ok(e),
            Outcome::Response(body) => bail!("a response ({body}) instead of an invocation error"),
        }
    }
}

struct Queued {
    request_id: String,
    deadline_ms: u64,
    event: Bytes,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    /// Invocations handed out or queued, by request id, until answered.
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Bodies of `POST /init/error`.
    init_errors: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake Runtime API; it stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Starts one on a free port of 127.0.0.1.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the fake Runtime API to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:<port>`).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` with a deadline `timeout` from now; the function's
    /// answer, once it comes. Waiting is the caller's to bound.
    pub fn submit(&self, event: &Value, timeout: Duration) -> oneshot::Receiver<Outcome> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let deadline_ms = u64::try_from(now_ms + timeout.as_millis()).unwrap_or(u64::MAX);
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), tx);
        lock(&self.shared.queue).push_back(Queued {
            request_id,
            deadline_ms,
            event: Bytes::from(event.to_string()),
        });
        self.shared.queued.notify_one();
        rx
    }

    /// What the function posted to `/init/error`, if anything.
    pub fn init_errors(&self) -> Vec<String> {
        lock(&self.shared.init_errors).clone()
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        // Registered before the queue is looked at, so a push in between
        // is not missed (notify_one keeps a permit when nobody waits).
        let notified = shared.queued.notified();
        let queued = lock(&shared.queue).pop_front();
        if let Some(q) = queued {
            return (
                [
                    ("lambda-runtime-aws-request-id", q.request_id),
                    ("lambda-runtime-deadline-ms", q.deadline_ms.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:000000000000:function:local".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                    ),
                    ("content-type", "application/json".to_owned()),
                ],
                q.event,
            )
                .into_response();
        }
        notified.await;
    }
}

fn answer(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match lock(&shared.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        // Lambda answers 400 InvalidRequestID; an answer given twice is
        // a bug of the function under test, and its test sees no second.
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    answer(&shared, &id, Outcome::Response(body))
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| parsed[name].as_str().unwrap_or_default().to_owned();
    let header = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let outcome = Outcome::Error(FunctionError {
        error_type: field("errorType"),
        error_message: field("errorMessage"),
        header,
    });
    answer(&shared, &id, outcome)
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    lock(&shared.init_errors).push(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// A function binary run as Lambda runs a bootstrap, against its own
/// [`RuntimeApi`], one invocation at a time; killed when dropped.
pub struct LocalFunction {
    api: RuntimeApi,
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalFunction {
    /// Starts `binary` with the environment Lambda gives a function (128 MB,
    /// version `$LATEST`, JSON logs at INFO) plus `env`, and nothing of the
    /// caller's environment.
    pub async fn start(binary: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let api = RuntimeApi::start().await?;
        let name = binary
            .file_name()
            .map_or("function".into(), |n| n.to_string_lossy());
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name.as_ref())
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env("AWS_REGION", "us-east-1")
            .env("TZ", ":UTC")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|p| Box::new(p) as _),
            child.stderr.take().map(|p| Box::new(p) as _),
        ];
        for mut pipe in pipes.into_iter().flatten() {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    lock(&output).push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }));
        }
        Ok(Self {
            api,
            child,
            output,
            readers,
        })
    }

    /// Invokes the function with `event` and a deadline `timeout` from now;
    /// what it answered. Fails if it exits or has not answered by the
    /// deadline plus a second.
    pub async fn invoke(&mut self, event: &Value, timeout: Duration) -> Result<Outcome> {
        let mut answer = self.api.submit(event, timeout);
        let give_up = tokio::time::Instant::now() + timeout + Duration::from_secs(1);
        loop {
            tokio::select! {
                outcome = &mut answer => return outcome.map_err(|_| anyhow!("the fake Runtime API stopped")),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the function exited ({status}) without answering; init errors {:?}; output:\n{}",
                    self.api.init_errors(),
                    self.output()
                );
            }
            if tokio::time::Instant::now() >= give_up {
                bail!(
                    "no answer within {timeout:?} and a second; output:\n{}",
                    self.output()
                );
            }
        }
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Stops the function and waits for its output to be read to the end.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

/// The executables of `package`'s examples, by name, built (dev profile,
/// `--locked`) by the cargo running the tests, in its target dir: cargo
/// decides what is stale, so a test never runs an old build. Built once per
/// process. `cargo test --workspace` has built them already and this only
/// checks; `cargo test -p tools` builds them here.
pub fn example_binaries(package: &str) -> Result<HashMap<String, PathBuf>> {
    static BUILT: OnceLock<Mutex<HashMap<String, HashMap<String, PathBuf>>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = lock(built);
    if let Some(found) = built.get(package) {
        return Ok(found.clone());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(crate::repo_root())
        .args(["build", "--locked", "--examples", "-p", package])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !out.status.success() {
        bail!(
            "cargo build --examples -p {package} failed ({}); its errors are above",
            out.status
        );
    }
    let mut found = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_example = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
        if message["reason"] == "compiler-artifact" && is_example {
            if let (Some(name), Some(exe)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                found.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
    }
    if found.is_empty() {
        bail!("cargo build --examples -p {package} named no example executable");
    }
    built.insert(package.to_owned(), found.clone());
    Ok(found)
}

/// The executable of `package`'s example `name` (see [`example_binaries`]).
pub fn example_binary(package: &str, name: &str) -> Result<PathBuf> {
    example_binaries(package)?
        .remove(name)
        .ok_or_else(|| anyhow!("{package} has no example {name}"))
}
