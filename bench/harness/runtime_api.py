"""The Lambda Runtime API, played on 127.0.0.1 for one function process.

Endpoints (as Lambda's documentation describes them):
  GET  /2018-06-01/runtime/invocation/next            long poll for the next event
  POST /2018-06-01/runtime/invocation/{id}/response   the function's result
  POST /2018-06-01/runtime/invocation/{id}/error      the function failed
  POST /2018-06-01/runtime/init/error                 the function failed to start

The event is delivered with the headers Lambda sends:
Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms,
Lambda-Runtime-Invoked-Function-Arn, Lambda-Runtime-Trace-Id.

Timing: `first_next_at` is when the process first asked for work (the end of
its init); an invocation runs from just before the event is written to the
function to when its response body has been read, as Lambda's Duration does.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
POLL_SLICE_S = 0.25


@dataclass
class Invocation:
    request_id: str
    body: bytes
    deadline_ms: int
    trace_id: str
    delivered_at: float | None = None
    finished_at: float | None = None
    outcome: str | None = None  # "response" | "error"
    result: bytes = b""
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def duration_ms(self) -> float | None:
        if self.delivered_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.delivered_at) * 1000.0


class RuntimeApi:
    """One Runtime API endpoint serving one function process."""

    def __init__(self, function_arn: str, timeout_s: float = 60.0):
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self._lock = threading.Condition()
        self._pending: Invocation | None = None
        self._current: Invocation | None = None
        self._waiting_next = 0
        self._closed = False
        self.first_next_at: float | None = None
        self.next_calls = 0
        self.init_error: bytes | None = None
        self.protocol_errors: list[str] = []
        self._server = _Server(("127.0.0.1", 0), self._make_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> "RuntimeApi":
        self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- used by the benchmark driver ------------------------------------

    def wait_ready(self, timeout_s: float, alive=lambda: True) -> bool:
        """Wait until the function has asked for its first event (or failed init)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.first_next_at is None and self.init_error is None:
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return False
                self._lock.wait(min(left, POLL_SLICE_S))
        return self.init_error is None

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the function is blocked in `next` again (its work is done)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._waiting_next == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, POLL_SLICE_S))
        return True

    def invoke(self, event: bytes, timeout_s: float | None = None, alive=lambda: True) -> Invocation:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        now_ms = int(time.time() * 1000)
        inv = Invocation(
            request_id=str(uuid.uuid4()),
            body=event,
            deadline_ms=now_ms + int(timeout_s * 1000),
            trace_id=_trace_id(),
        )
        with self._lock:
            if self._pending is not None or self._current is not None:
                raise RuntimeError("an invocation is already in flight")
            self._pending = inv
            self._lock.notify_all()
        deadline = time.monotonic() + timeout_s
        while not inv.done.wait(POLL_SLICE_S):
            if time.monotonic() > deadline or not alive():
                with self._lock:
                    if self._pending is inv:
                        self._pending = None
                    if self._current is inv:
                        self._current = None
                inv.outcome = inv.outcome or ("timeout" if alive() else "crashed")
                break
        return inv

    # -- HTTP side ---------------------------------------------------------

    def _next(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.next_calls += 1
            if self.first_next_at is None:
                self.first_next_at = time.perf_counter()
            if self._current is not None:
                # A new `next` before a response: the previous invocation is abandoned.
                self.protocol_errors.append(f"next before response to {self._current.request_id}")
                self._current.outcome = "abandoned"
                self._current.done.set()
                self._current = None
            self._waiting_next += 1
            self._lock.notify_all()
            try:
                while self._pending is None and not self._closed:
                    self._lock.wait(POLL_SLICE_S)
                if self._closed:
                    return
                inv = self._pending
                self._pending = None
                self._current = inv
            finally:
                self._waiting_next -= 1
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(inv.body)))
        handler.send_header("Lambda-Runtime-Aws-Request-Id", inv.request_id)
        handler.send_header("Lambda-Runtime-Deadline-Ms", str(inv.deadline_ms))
        handler.send_header("Lambda-Runtime-Invoked-Function-Arn", self.function_arn)
        handler.send_header("Lambda-Runtime-Trace-Id", inv.trace_id)
        inv.delivered_at = time.perf_counter()
        handler.end_headers()
        handler.wfile.write(inv.body)
        handler.wfile.flush()

    def _finish(self, request_id: str, outcome: str, body: bytes, error_type: str | None) -> bool:
        finished = time.perf_counter()
        with self._lock:
            inv = self._current
            if inv is None or inv.request_id != request_id:
                self.protocol_errors.append(f"{outcome} for unknown request id {request_id}")
                return False
            self._current = None
        inv.finished_at = finished
        inv.outcome = outcome
        inv.result = body
        inv.error_type = error_type
        inv.done.set()
        return True

    def _init_error(self, body: bytes) -> None:
        with self._lock:
            self.init_error = body or b"{}"
            self._lock.notify_all()

    def _make_handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY,
            # Nagle + the client's delayed ACK add ~40 ms to an invocation.
            disable_nagle_algorithm = True

            def log_message(self, format, *args):  # noqa: A002 - quiet
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    return self.rfile.read(length)
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    for _ in range(1_000_000):
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return b""

            def _reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                if self.path == f"{PREFIX}/invocation/next":
                    api._next(self)
                else:
                    self._reply(404, {"errorType": "NotFound"})

            def do_POST(self):  # noqa: N802
                body = self._body()
                parts = self.path.split("/")
                # /2018-06-01/runtime/invocation/{id}/response|error
                if self.path == f"{PREFIX}/init/error":
                    api._init_error(body)
                    self._reply(202, {"status": "OK"})
                elif len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                    if api._finish(parts[4], parts[5], body, error_type):
                        self._reply(202, {"status": "OK"})
                    else:
                        self._reply(400, {"errorType": "InvalidRequestID"})
                else:
                    self._reply(404, {"errorType": "NotFound"})

        return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A function process killed mid-request resets its connection: expected.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _trace_id() -> str:
    epoch = f"{int(time.time()):08x}"
    return f"Root=1-{epoch}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"
