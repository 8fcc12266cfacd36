//! The proxy as the bench uses it: the delay, keep-alive, `Expect:
//! 100-continue`, chunked bodies, the stub backend, the statistics and the
//! S3 deny list, against an echo upstream on 127.0.0.1; and the binary's
//! readiness line, head log and SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tools::proxy::{Backend, FaultProxy, Options, Stats};

/// An upstream that answers each request with what it received.
struct Echo {
    url: String,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    /// `hold`: every request waits until this many are being answered at once.
    async fn start(hold: Option<usize>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let barrier = hold.map(|n| Arc::new(tokio::sync::Barrier::new(n)));
        let (r, c) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                let (r, barrier) = (r.clone(), barrier.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (r, barrier) = (r.clone(), barrier.clone());
                            async move {
                                r.fetch_add(1, Ordering::Relaxed);
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await?.to_bytes();
                                if let Some(b) = barrier {
                                    b.wait().await;
                                }
                                let seen = json!({
                                    "method": parts.method.as_str(),
                                    "path": parts.uri.path(),
                                    "length": body.len(),
                                    "expect": parts.headers.contains_key("expect"),
                                });
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                    seen.to_string(),
                                ))))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            url,
            requests,
            connections,
            task,
        })
    }
}

fn options(delay_ms: u64, backend: Backend) -> Options {
    Options {
        delay: Duration::from_millis(delay_ms),
        backend,
        log_heads: false,
    }
}

async fn stats(client: &reqwest::Client, proxy: &str, reset: bool) -> Result<Stats> {
    let query = if reset { "?reset=1" } else { "" };
    let v: Value = client
        .get(format!("{proxy}/__proxy/stats{query}"))
        .send()
        .await?
        .json()
        .await?;
    Ok(Stats {
        requests: v["requests"].as_u64().context("requests")?,
        connections: v["connections"].as_u64().context("connections")?,
        by_kind: serde_json::from_value(v["by_kind"].clone())?,
        upstream_ms: serde_json::from_value(v["upstream_ms"].clone())?,
        max_in_flight: v["max_in_flight"].as_u64().context("max_in_flight")?,
        delay_ms: v["delay_ms"].as_f64().context("delay_ms")?,
    })
}

/// Reads one HTTP/1.1 message head (through the blank line).
fn read_head(stream: &mut impl BufRead) -> Result<String> {
    let mut head = String::new();
    for _ in 0..100 {
        let mut line = String::new();
        ensure!(stream.read_line(&mut line)? > 0, "closed inside a head");
        head.push_str(&line);
        if line == "\r\n" {
            return Ok(head);
        }
    }
    anyhow::bail!("head too long: {head}")
}

/// Reads one response with a Content-Length body: (head, body).
fn read_response(stream: &mut impl BufRead) -> Result<(String, Vec<u8>)> {
    let head = read_head(stream)?;
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .context("no content-length")?;
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((head, body))
}

fn raw_connection(addr: std::net::SocketAddr) -> Result<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok((stream, reader))
}

#[tokio::test]
async fn calls_are_delayed_and_relayed_on_keep_alive_connections() -> Result<()> {
    let echo = Echo::start(None).await?;
    let proxy =
        FaultProxy::start_with(0, &echo.url, vec![], options(30, Backend::Upstream)).await?;
    let client = reqwest::Client::new();
    for i in 0..3 {
        let t0 = Instant::now();
        let seen: Value = client
            .put(format!("{}/bucket/key{i}.json", proxy.url()))
            .body(vec![b'x'; 100 + i])
            .send()
            .await?
            .json()
            .await?;
        ensure!(
            t0.elapsed() >= Duration::from_millis(30),
            "the delay is paid"
        );
        ensure!(
            seen == json!({"method": "PUT", "path": format!("/bucket/key{i}.json"), "length": 100 + i, "expect": false}),
            "{seen}"
        );
    }
    let s = stats(&client, &proxy.url(), false).await?;
    ensure!(s.requests == 3 && s.delay_ms == 30.0, "{s:?}");
    ensure!(s.by_kind.get("S3 PutObject") == Some(&3), "{s:?}");
    ensure!(s.upstream_ms.contains_key("S3 PutObject"), "{s:?}");
    // One client connection carried the three calls, and one upstream connection.
    ensure!(s.connections == 1, "{s:?}");
    ensure!(echo.connections.load(Ordering::Relaxed) == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_by_the_proxy_before_the_delay_and_not_forwarded() -> Result<()>
{
    let echo = Echo::start(None).await?;
    let proxy =
        FaultProxy::start_with(0, &echo.url, vec![], options(50, Backend::Upstream)).await?;
    let addr = proxy.addr;
    let (continued, seen, after_body) = tokio::task::spawn_blocking(move || -> Result<_> {
        let (mut stream, mut reader) = raw_connection(addr)?;
        stream.write_all(
            b"PUT /bucket/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )?;
        // The body is only sent once the proxy says so, as the SDKs do.
        let continued = read_head(&mut reader)?;
        let t0 = Instant::now();
        stream.write_all(b"hello")?;
        let (_, body) = read_response(&mut reader)?;
        Ok((continued, serde_json::from_slice::<Value>(&body)?, t0.elapsed()))
    })
    .await??;
    ensure!(
        continued.starts_with("HTTP/1.1 100 Continue"),
        "{continued}"
    );
    ensure!(seen["length"] == 5 && seen["expect"] == false, "{seen}");
    ensure!(
        after_body >= Duration::from_millis(50),
        "the delay comes after the body"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_forwarded_whole() -> Result<()> {
    let echo = Echo::start(None).await?;
    let proxy = FaultProxy::start_with(0, &echo.url, vec![], options(0, Backend::Upstream)).await?;
    let addr = proxy.addr;
    let seen = tokio::task::spawn_blocking(move || -> Result<Value> {
        let (mut stream, mut reader) = raw_connection(addr)?;
        stream.write_all(
            b"PUT /bucket/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n",
        )?;
        let (_, body) = read_response(&mut reader)?;
        Ok(serde_json::from_slice(&body)?)
    })
    .await??;
    ensure!(seen["length"] == 8, "{seen}");
    Ok(())
}

/// CRC32 (IEEE, as zlib), bit by bit: the test's own reference for the
/// stub's `x-amz-crc32`.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn stub_backend_answers_put_object_and_batch_write_item_itself() -> Result<()> {
    let echo = Echo::start(None).await?;
    let proxy = FaultProxy::start_with(0, &echo.url, vec![], options(5, Backend::Stub)).await?;
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{}/bucket/records/a.json", proxy.url()))
        .body("{}")
        .send()
        .await?;
    ensure!(put.status() == 200, "{}", put.status());
    let etag = put.headers()["etag"].to_str()?.to_owned();
    ensure!(etag.len() == 34 && etag.starts_with('"'), "{etag}");
    ensure!(put.headers().contains_key("x-amz-request-id"));
    let write = client
        .post(proxy.url())
        .header("x-amz-target", "DynamoDB_20120810.BatchWriteItem")
        .body(r#"{"RequestItems":{}}"#)
        .send()
        .await?;
    ensure!(write.headers().contains_key("x-amzn-requestid"));
    let crc: u32 = write.headers()["x-amz-crc32"].to_str()?.parse()?;
    let body = write.bytes().await?;
    ensure!(&body[..] == br#"{"UnprocessedItems":{}}"#);
    ensure!(crc == crc32(&body), "x-amz-crc32 {crc} is not the body's");
    ensure!(
        echo.requests.load(Ordering::Relaxed) == 0,
        "nothing forwarded"
    );
    // Everything else still goes upstream.
    let get: Value = client
        .get(format!("{}/bucket/records/a.json", proxy.url()))
        .send()
        .await?
        .json()
        .await?;
    ensure!(get["method"] == "GET", "{get}");
    let s = stats(&client, &proxy.url(), false).await?;
    let kinds: Vec<(&str, u64)> = s.by_kind.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    ensure!(
        kinds
            == [
                ("BatchWriteItem", 1),
                ("S3 GetObject", 1),
                ("S3 PutObject", 1)
            ],
        "{s:?}"
    );
    ensure!(
        s.upstream_ms.keys().collect::<Vec<_>>() == ["S3 GetObject"],
        "{s:?}"
    );
    Ok(())
}

#[tokio::test]
async fn denied_puts_get_access_denied_until_the_list_is_cleared() -> Result<()> {
    let echo = Echo::start(None).await?;
    let proxy = FaultProxy::start_with(0, &echo.url, vec![], options(0, Backend::Upstream)).await?;
    let client = reqwest::Client::new();
    let fail = |list: &'static str| {
        client
            .post(format!("{}/__proxy/fail", proxy.url()))
            .body(list)
            .send()
    };
    let put = |key: &str| {
        client
            .put(format!("{}/bucket/records/{key}.json", proxy.url()))
            .body("{}")
            .send()
    };
    ensure!(fail(r#"["doomed"]"#).await?.status() == 200);
    let denied = put("doomed").await?;
    ensure!(denied.status() == 403, "{}", denied.status());
    ensure!(denied.text().await?.contains("<Code>AccessDenied</Code>"));
    ensure!(put("fine").await?.status() == 200);
    ensure!(fail("not json").await?.status() == 400);
    ensure!(fail("[]").await?.status() == 200);
    ensure!(put("doomed").await?.status() == 200);
    ensure!(
        echo.requests.load(Ordering::Relaxed) == 2,
        "the denied put is not forwarded"
    );
    Ok(())
}

#[tokio::test]
async fn max_in_flight_counts_calls_at_once_and_restarts_on_reset() -> Result<()> {
    // The upstream holds every request until four are in flight together.
    let echo = Echo::start(Some(4)).await?;
    let proxy = FaultProxy::start_with(0, &echo.url, vec![], options(0, Backend::Upstream)).await?;
    let client = reqwest::Client::new();
    let calls = (0..4).map(|i| {
        client
            .put(format!("{}/bucket/k{i}", proxy.url()))
            .body("x")
            .send()
    });
    for answer in futures::future::join_all(calls).await {
        ensure!(answer?.status() == 200);
    }
    let s = stats(&client, &proxy.url(), false).await?;
    ensure!(s.max_in_flight == 4 && s.connections == 4, "{s:?}");
    // A reset restarts the count from the calls in flight now (none).
    let s = stats(&client, &proxy.url(), true).await?;
    ensure!(s.max_in_flight == 0 && s.requests == 4, "{s:?}");
    Ok(())
}

#[tokio::test]
async fn the_upstream_must_be_on_the_loopback_interface() -> Result<()> {
    for refused in [
        "http://10.0.0.1:4566",
        "https://127.0.0.1:4566",
        "http://s3.amazonaws.com",
    ] {
        ensure!(
            FaultProxy::start(refused, vec![]).await.is_err(),
            "{refused}"
        );
    }
    for accepted in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
        FaultProxy::start(accepted, vec![]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_says_ready_logs_first_heads_and_stops_on_sigterm() -> Result<()> {
    let echo = Echo::start(None).await?;
    let dir = std::env::temp_dir().join(format!("fault-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let stderr_path = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
        .args(["--upstream", echo.url.trim_start_matches("http://")])
        .args(["--backend", "stub", "--delay-ms", "1", "--log-heads"])
        .args(["--report-secs", "0", "--seconds", "60"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut ready = String::new();
    stdout.read_line(&mut ready)?;
    let port: u16 = ready
        .strip_prefix("READY ")
        .with_context(|| format!("said {ready:?}"))?
        .trim()
        .parse()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for agent in [
        "aws-sdk-rust/1.3 os/linux",
        "aws-sdk-rust/1.3 os/linux",
        "Boto3/1.44 md/x",
    ] {
        let put = client
            .put(format!("{url}/bucket/records/x.json"))
            .header("user-agent", agent)
            .body("{}")
            .send()
            .await?;
        ensure!(put.status() == 200);
    }
    let s = stats(&client, &url, false).await?;
    ensure!(s.requests == 3 && s.delay_ms == 1.0, "{s:?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        exited = child.try_wait()?;
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(exit) = exited else {
        child.kill()?;
        anyhow::bail!("fault-proxy did not stop on SIGTERM");
    };
    ensure!(exit.success(), "{exit}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest)?;
    ensure!(rest.contains("fault-proxy final injected/seen"), "{rest}");
    let log = std::fs::read_to_string(&stderr_path)?;
    let _ = std::fs::remove_dir_all(&dir);
    // One head per (kind, SDK): the Rust SDK's second put is not logged.
    ensure!(
        log.matches("--- first S3 PutObject request (2 body bytes)")
            .count()
            == 2,
        "{log}"
    );
    ensure!(log.contains("user-agent: Boto3/1.44 md/x"), "{log}");
    Ok(())
}
