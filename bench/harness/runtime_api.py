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

Concurrency: `invoke` hands out one event and waits for its answer, one at a
time. For a process that runs several invocations at once (Lambda Managed
Instances: AWS_LAMBDA_MAX_CONCURRENCY long-poll loops in one process), make
the endpoint with `concurrency=N` and use `invoke_many` (or `submit` + `wait`):
the events are queued and each `next` long poll takes the next one.
`max_in_flight` is the most invocations delivered and not yet answered at any
one moment. A `next` that arrives while `concurrency` invocations are already
in flight means one of them was given up: the oldest is marked "abandoned".
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections import deque
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
    """One Runtime API endpoint serving one function process.

    concurrency: how many invocations the process may hold at once (1 on
    classic Lambda; AWS_LAMBDA_MAX_CONCURRENCY on Managed Instances).
    """

    def __init__(self, function_arn: str, timeout_s: float = 60.0, concurrency: int = 1):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._lock = threading.Condition()
        self._queue: deque[Invocation] = deque()  # submitted, not yet delivered
        self._in_flight: dict[str, Invocation] = {}  # delivered, not yet answered (oldest first)
        self._waiting_next = 0
        self.max_in_flight = 0
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
            while self._waiting_next == 0 or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, POLL_SLICE_S))
        return True

    def wait_pollers(self, n: int, timeout_s: float, alive=lambda: True) -> bool:
        """Wait until `n` `next` long polls are open at once (all of a
        concurrent process's loops are asking for work)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._waiting_next < n:
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return False
                self._lock.wait(min(left, POLL_SLICE_S))
        return True

    def reset_max_in_flight(self) -> None:
        """Restart the `max_in_flight` count from what is in flight now."""
        with self._lock:
            self.max_in_flight = len(self._in_flight)

    def invoke(self, event: bytes, timeout_s: float | None = None, alive=lambda: True) -> Invocation:
        """Hand out one event and wait for its answer; nothing else may be in flight."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if self._queue or self._in_flight:
                raise RuntimeError("an invocation is already in flight")
            inv = self._submit_locked(event, timeout_s)
        self.wait([inv], timeout_s, alive)
        return inv

    def invoke_many(self, events: list[bytes], timeout_s: float | None = None, alive=lambda: True) -> list[Invocation]:
        """Queue all `events` at once, each `next` taking the next one, and wait
        for every answer (or until `timeout_s`). Returned in the order given."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            invs = [self._submit_locked(event, timeout_s) for event in events]
        self.wait(invs, timeout_s, alive)
        return invs

    def submit(self, event: bytes, timeout_s: float | None = None) -> Invocation:
        """Queue one event without waiting; `wait` for it (or `inv.done`) later."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            return self._submit_locked(event, timeout_s)

    def wait(self, invs: list[Invocation], timeout_s: float | None = None, alive=lambda: True) -> bool:
        """Wait for every invocation in `invs` to end. Those still queued or in
        flight after `timeout_s` (or once the process has died) are taken back
        and end as "timeout" (or "crashed"). True if all were answered in time."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        # Bounded: each pass waits a whole slice or sees one more invocation end.
        for _ in range(int(timeout_s / POLL_SLICE_S) + len(invs) + 2):
            if all(inv.done.is_set() for inv in invs):
                return True
            if time.monotonic() > deadline or not alive():
                break
            # One may end between the check above and this line: then there
            # is nobody left to wait for in this pass.
            pending = next((inv for inv in invs if not inv.done.is_set()), None)
            if pending is not None:
                pending.done.wait(POLL_SLICE_S)
        outcome = "timeout" if alive() else "crashed"
        with self._lock:
            unanswered = {inv.request_id for inv in invs if not inv.done.is_set()}
            self._queue = deque(q for q in self._queue if q.request_id not in unanswered)
            for inv in invs:
                if inv.request_id in unanswered:
                    self._in_flight.pop(inv.request_id, None)
                    inv.outcome = inv.outcome or outcome
                    inv.done.set()
            self._lock.notify_all()
        return False

    def _submit_locked(self, event: bytes, timeout_s: float) -> Invocation:
        if self._closed:
            raise RuntimeError("the Runtime API is closed")
        inv = Invocation(
            request_id=str(uuid.uuid4()),
            body=event,
            deadline_ms=int(time.time() * 1000) + int(timeout_s * 1000),
            trace_id=_trace_id(),
        )
        self._queue.append(inv)
        self._lock.notify_all()
        return inv

    # -- HTTP side ---------------------------------------------------------

    def _next(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.next_calls += 1
            if self.first_next_at is None:
                self.first_next_at = time.perf_counter()
            if len(self._in_flight) >= self.concurrency:
                # A new `next` with every slot taken: the oldest invocation was given up.
                _, oldest = next(iter(self._in_flight.items()))
                del self._in_flight[oldest.request_id]
                self.protocol_errors.append(f"next before response to {oldest.request_id}")
                oldest.outcome = "abandoned"
                oldest.done.set()
            self._waiting_next += 1
            self._lock.notify_all()
            try:
                while not self._queue and not self._closed:
                    self._lock.wait(POLL_SLICE_S)
                if self._closed:
                    return
                inv = self._queue.popleft()
                self._in_flight[inv.request_id] = inv
                self.max_in_flight = max(self.max_in_flight, len(self._in_flight))
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
            inv = self._in_flight.pop(request_id, None)
            if inv is None:
                self.protocol_errors.append(f"{outcome} for unknown request id {request_id}")
                return False
            inv.finished_at = finished
            inv.outcome = outcome
            inv.result = body
            inv.error_type = error_type
            inv.done.set()
            self._lock.notify_all()
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
