"""An HTTP/1.1 proxy on 127.0.0.1 that adds a fixed delay to every request.

It sits between the functions and the emulator (the functions'
AWS_ENDPOINT_URL points here) so that each AWS call costs what a round trip
to a real AWS endpoint costs, and so that batch latency depends on how many
calls a function makes and how many it keeps in flight.

Each client connection gets its own upstream connection (keep-alive on both
sides); requests are parsed just enough to find where each one ends
(Content-Length or chunked), delayed, forwarded, and the response relayed.
`Expect: 100-continue` is answered here, so the delay is paid once.

With --backend stub, S3 PutObject and DynamoDB BatchWriteItem are answered
by the proxy itself (success, after the delay) instead of by the emulator:
a backend with AWS-like behaviour for latency runs, where each request costs
the delay and nothing else, whatever the concurrency (an emulator on a shared
core serves requests one after another). Nothing is stored in that mode.

Two paths are answered by the proxy itself and never forwarded:
  GET  /__proxy/stats[?reset=1]
                       -> {"requests": n, "connections": n, "by_kind": {...}, "upstream_ms": {...},
                           "max_in_flight": n, "delay_ms": d}; reset=1 restarts
                          the max_in_flight count
  POST /__proxy/fail   -> body: JSON list of substrings; S3 PUTs whose path
                          contains one of them are answered 403 AccessDenied
                          (a failure the SDKs do not retry), to check partial
                          batch failure reporting.

Run: python -m harness.latency_proxy --upstream 127.0.0.1:4599 --delay-ms 20 [--backend stub]
It prints "READY <port>" on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import hashlib
import signal
import sys
import time
import zlib
from collections import Counter

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
IDLE_TIMEOUT_S = 120.0
UPSTREAM_TIMEOUT_S = 60.0


class ProxyError(Exception):
    pass


class Stats:
    def __init__(self, delay_ms: float):
        self.delay_ms = delay_ms
        self.requests = 0
        self.connections = 0
        self.by_kind: Counter[str] = Counter()
        self.upstream_ms: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_substrings: list[str] = []

    def snapshot(self) -> dict:
        return {
            "requests": self.requests,
            "connections": self.connections,
            "by_kind": dict(self.by_kind),
            "upstream_ms": {k: round(v, 3) for k, v in self.upstream_ms.items()},
            "max_in_flight": self.max_in_flight,
            "delay_ms": self.delay_ms,
        }


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return start, headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _build_head(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """One message head (through the blank line), or None at a clean EOF."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return None
        raise ProxyError("connection closed inside a message head") from error
    except asyncio.LimitOverrunError as error:
        raise ProxyError("message head too large") from error
    return head


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    total = 0
    for _ in range(1_000_000):
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers, then the blank line that ends the message.
            for _ in range(1000):
                line = await reader.readuntil(b"\r\n")
                parts.append(line)
                if line == b"\r\n":
                    return b"".join(parts)
            raise ProxyError("too many trailers")
        total += size
        if total > MAX_BODY:
            raise ProxyError("chunked body too large")
        parts.append(await reader.readexactly(size + 2))
    raise ProxyError("too many chunks")


async def _read_body(reader: asyncio.StreamReader, headers, *, until_eof: bool) -> bytes:
    encoding = (_header(headers, "transfer-encoding") or "").lower()
    if "chunked" in encoding:
        return await _read_chunked(reader)
    length = _header(headers, "content-length")
    if length is not None:
        n = int(length)
        if n > MAX_BODY:
            raise ProxyError("body too large")
        return await reader.readexactly(n)
    if until_eof:
        parts = []
        total = 0
        for _ in range(1_000_000):
            part = await reader.read(65536)
            if not part:
                return b"".join(parts)
            total += len(part)
            if total > MAX_BODY:
                raise ProxyError("body too large")
            parts.append(part)
        raise ProxyError("body too long")
    return b""


def _kind(method: str, target: str, headers) -> str:
    amz_target = _header(headers, "x-amz-target")
    if amz_target:
        return amz_target.rsplit(".", 1)[-1]
    path = target.split("?", 1)[0]
    segments = [s for s in path.split("/") if s]
    if method == "PUT" and len(segments) >= 2:
        return "S3 PutObject"
    if method == "GET" and len(segments) >= 2:
        return "S3 GetObject"
    return f"S3 {method} {'/'.join(segments[:1]) or '/'}"


async def _local_reply(writer, status: str, body: bytes, content_type: str = "application/json"):
    writer.write(
        (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        + body
    )
    await writer.drain()


ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied (injected by the bench proxy)</Message></Error>"
)


def _stub_reply(kind: str, body: bytes) -> bytes | None:
    """A successful AWS answer for the calls the consumer makes, or None."""
    request_id = hashlib.md5(body + str(time.perf_counter_ns()).encode()).hexdigest()
    if kind == "S3 PutObject":
        etag = hashlib.md5(body).hexdigest()
        return (
            f"HTTP/1.1 200 OK\r\nx-amz-request-id: {request_id[:16].upper()}\r\n"
            f'ETag: "{etag}"\r\nContent-Length: 0\r\n\r\n'
        ).encode("latin-1")
    if kind == "BatchWriteItem":
        payload = b'{"UnprocessedItems":{}}'
        return (
            f"HTTP/1.1 200 OK\r\nx-amzn-RequestId: {request_id}\r\n"
            f"Content-Type: application/x-amz-json-1.0\r\nx-amz-crc32: {zlib.crc32(payload)}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode("latin-1") + payload
    return None


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int, delay_ms: float, backend: str = "emulator",
                 log_heads: bool = False):
        self.log_heads = log_heads
        self._logged: set[tuple[str, str]] = set()
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = delay_ms / 1000.0
        self.backend = backend
        self.stats = Stats(delay_ms)

    async def _open_upstream(self):
        return await asyncio.wait_for(asyncio.open_connection(*self.upstream), UPSTREAM_TIMEOUT_S)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        counted = False  # a connection is counted at its first proxied request
        up_reader = up_writer = None
        try:
            # Bounded: one iteration per request on this keep-alive connection.
            for _ in range(10_000_000):
                head = await _read_head(reader, IDLE_TIMEOUT_S)
                if head is None:
                    return
                start, headers = _parse_head(head)
                method, target, _version = (start.split(" ", 2) + ["", ""])[:3]

                if target.startswith("/__proxy/"):
                    body = await _read_body(reader, headers, until_eof=False)
                    await self._control(writer, method, target, body)
                    continue

                expect = (_header(headers, "expect") or "").lower()
                if expect == "100-continue":
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                body = await _read_body(reader, headers, until_eof=False)

                kind = _kind(method, target, headers)
                if not counted:
                    counted = True
                    self.stats.connections += 1
                client = (_header(headers, "user-agent") or "?").split(" ", 1)[0]
                if self.log_heads and (kind, client) not in self._logged:
                    # The first request of each kind from each SDK, to see what it sends.
                    self._logged.add((kind, client))
                    sys.stderr.write(f"--- first {kind} request ({len(body)} body bytes)\n"
                                     + head.decode("latin-1"))
                    sys.stderr.flush()
                self.stats.requests += 1
                self.stats.by_kind[kind] += 1
                self.stats.in_flight += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
                try:
                    up_reader, up_writer, close = await self._exchange(
                        writer, method, target, kind, start, headers, body, up_reader, up_writer
                    )
                finally:
                    self.stats.in_flight -= 1
                client_close = (_header(headers, "connection") or "").lower() == "close"
                if close or client_close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, ProxyError, ValueError):
            return
        finally:
            if up_writer is not None:
                up_writer.close()
            writer.close()

    async def _exchange(self, writer, method, target, kind, start, headers, body, up_reader, up_writer):
        """Delay, then answer one request (locally or from upstream); returns the
        upstream connection to keep and whether to close the client's."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if method == "PUT" and any(s in target for s in self.stats.fail_substrings):
            await _local_reply(writer, "403 Forbidden", ACCESS_DENIED, "application/xml")
            return up_reader, up_writer, False
        if self.backend == "stub":
            stub = _stub_reply(kind, body)
            if stub is not None:
                writer.write(stub)
                await writer.drain()
                return up_reader, up_writer, False

        request = _build_head(start, headers) + body
        response, close = b"", False
        sent_at = time.perf_counter()
        # A pooled upstream connection may have been closed while idle:
        # retry once on a fresh one.
        for attempt in range(2):
            if up_writer is None:
                up_reader, up_writer = await self._open_upstream()
            try:
                up_writer.write(request)
                await up_writer.drain()
                response, close = await self._read_response(up_reader, method)
                break
            except (ConnectionError, asyncio.IncompleteReadError, ProxyError):
                up_writer.close()
                up_reader = up_writer = None
                if attempt == 1:
                    raise
        self.stats.upstream_ms[kind] += (time.perf_counter() - sent_at) * 1000.0
        writer.write(response)
        await writer.drain()
        return up_reader, up_writer, close

    async def _read_response(self, up_reader, method: str) -> tuple[bytes, bool]:
        # Bounded: skip at most a few interim (1xx) responses.
        for _ in range(10):
            head = await _read_head(up_reader, UPSTREAM_TIMEOUT_S)
            if head is None:
                raise ProxyError("upstream closed the connection")
            start, headers = _parse_head(head)
            status = int(start.split(" ", 2)[1])
            if 100 <= status < 200:
                continue
            close = (_header(headers, "connection") or "").lower() == "close"
            if method == "HEAD" or status in (204, 304):
                return head, close
            framed = _header(headers, "content-length") is not None or "chunked" in (
                _header(headers, "transfer-encoding") or ""
            ).lower()
            body = await asyncio.wait_for(
                _read_body(up_reader, headers, until_eof=not framed), UPSTREAM_TIMEOUT_S
            )
            return head + body, close or not framed
        raise ProxyError("too many interim responses")

    async def _control(self, writer, method: str, target: str, body: bytes):
        if method == "GET" and target.startswith("/__proxy/stats"):
            if "reset=1" in target:
                self.stats.max_in_flight = self.stats.in_flight
            await _local_reply(writer, "200 OK", json.dumps(self.stats.snapshot()).encode())
        elif method == "POST" and target.startswith("/__proxy/fail"):
            substrings = json.loads(body or b"[]")
            self.stats.fail_substrings = [str(s) for s in substrings]
            await _local_reply(writer, "200 OK", b"{}")
        else:
            await _local_reply(writer, "404 Not Found", b"{}")


async def serve(listen_port: int, upstream: tuple[str, int], delay_ms: float, backend: str = "emulator", ready=None,
                log_heads: bool = False):
    proxy = Proxy(upstream[0], upstream[1], delay_ms, backend, log_heads)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen_port, limit=MAX_HEAD)
    port = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: any)")
    parser.add_argument("--upstream", required=True, help="host:port of the emulator")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--backend", choices=["emulator", "stub"], default="emulator",
                        help="stub: answer PutObject/BatchWriteItem here, without the emulator")
    parser.add_argument("--log-heads", action="store_true",
                        help="write the head of the first request of each kind from each SDK to stderr")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the upstream must be on the loopback interface")

    def ready(bound: int):
        print(f"READY {bound}", flush=True)

    asyncio.run(serve(args.port, (host, int(port)), args.delay_ms, args.backend, ready, args.log_heads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
