#!/usr/bin/env python3
"""A provided.al2023 test double for stream event source mappings (Kinesis,
DynamoDB Streams, SQS): it polls the Lambda Runtime API, logs every event it
receives and answers with a scripted (partial batch) response.

Zipped as `bootstrap` (mode 0755) by tools::streams; the emulator
runs it as a local process. Standard library only.

Environment:
  DOUBLE_LOG      absolute path of a JSON-lines log; one line per invocation:
                  {"n", "action", "kind", "response", "t_ms", "pid",
                   "requestId", "deadlineMs", "event"}. Required.
  DOUBLE_SCRIPT   comma-separated actions: the n-th invocation of the function
                  (counted in the log, across processes) does the n-th action.
  DOUBLE_DEFAULT  the action once the script is used up (default `ok`).

Actions:
  ok              {"batchItemFailures": []}
  fail:TEXT       report every record whose payload contains TEXT (Kinesis:
                  the base64-decoded data; DynamoDB: the JSON of Keys and
                  NewImage; SQS: the body), by its sequence number (message id)
  fail-all        report every record of the batch
  unknown         one itemIdentifier that is not in the batch
  empty           one empty itemIdentifier
  null-list       {"batchItemFailures": null}
  null-id         {"batchItemFailures": [{"itemIdentifier": null}]}
  garbage         a response that is not JSON
  error           a function error (POST .../error)
  exit            the process exits without answering (a crash)
  sleep:SECONDS   sleep, then answer `ok` (past the timeout: a time-out)

Why hand-written: it is the function under test's stand-in, 100 lines against
the Runtime API's two calls; no library answers with scripted failures.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import sys
import time
import urllib.request

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = f"http://{API}/2018-06-01/runtime/invocation"
LOG = os.environ["DOUBLE_LOG"]
SCRIPT = [a.strip() for a in os.environ.get("DOUBLE_SCRIPT", "").split(",") if a.strip()]
DEFAULT = os.environ.get("DOUBLE_DEFAULT", "ok")


def record_id_and_payload(record: dict) -> tuple[str, str]:
    """(the id a partial batch response names, the text `fail:` searches)."""
    if "kinesis" in record:
        k = record["kinesis"]
        data = base64.b64decode(k.get("data") or "").decode("utf-8", "replace")
        return k.get("sequenceNumber", ""), data
    if "dynamodb" in record:
        d = record["dynamodb"]
        text = json.dumps({"Keys": d.get("Keys"), "NewImage": d.get("NewImage")}, sort_keys=True)
        return d.get("SequenceNumber", ""), text
    return record.get("messageId", ""), record.get("body", "")


def answer(action: str, event: dict):
    """(kind, body): kind is `response`, `error` or `exit`."""
    records = event.get("Records") or []
    if action == "ok" or action.startswith("sleep:"):
        return "response", {"batchItemFailures": []}
    if action.startswith("fail:"):
        text = action[len("fail:"):]
        ids = [i for i, payload in map(record_id_and_payload, records) if text in payload]
        return "response", {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
    if action == "fail-all":
        ids = [record_id_and_payload(r)[0] for r in records]
        return "response", {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
    if action == "unknown":
        return "response", {"batchItemFailures": [{"itemIdentifier": "99999999999999999999999999999999"}]}
    if action == "empty":
        return "response", {"batchItemFailures": [{"itemIdentifier": ""}]}
    if action == "null-list":
        return "response", {"batchItemFailures": None}
    if action == "null-id":
        return "response", {"batchItemFailures": [{"itemIdentifier": None}]}
    if action == "garbage":
        return "response", "this is not JSON"
    if action == "error":
        return "error", {"errorType": "DoubleError", "errorMessage": "scripted function error"}
    if action == "exit":
        return "exit", None
    raise SystemExit(f"stream_bootstrap: unknown action {action!r} in DOUBLE_SCRIPT/DOUBLE_DEFAULT")


def log_invocation(entry: dict) -> tuple[str, object]:
    """Numbers the invocation by the lines already logged, picks its action
    and answer, and appends the entry with both, under a lock; (kind, body)."""
    with open(LOG, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = sum(1 for _ in f)
        action = SCRIPT[n] if n < len(SCRIPT) else DEFAULT
        kind, body = answer(action, entry["event"])
        f.write(json.dumps({"n": n, "action": action, "kind": kind, "response": body, **entry}) + "\n")
        f.flush()
    if action.startswith("sleep:"):
        time.sleep(float(action[len("sleep:"):]))
    return kind, body


def main() -> None:
    while True:
        with urllib.request.urlopen(f"{BASE}/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline = r.headers.get("Lambda-Runtime-Deadline-Ms")
            event = json.loads(r.read())
        kind, body = log_invocation({"t_ms": int(time.time() * 1000), "pid": os.getpid(),
                                     "requestId": request_id, "deadlineMs": deadline, "event": event})
        if kind == "exit":
            sys.exit(1)
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if kind == "error":
            headers["Lambda-Runtime-Function-Error-Type"] = "DoubleError"
        req = urllib.request.Request(f"{BASE}/{request_id}/{kind}", data=data, headers=headers, method="POST")
        urllib.request.urlopen(req).read()


if __name__ == "__main__":
    main()
