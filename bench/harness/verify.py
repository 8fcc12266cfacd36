"""Check what a function stored against the contract, so that no function is
timed doing less than the job. Every peer must pass the same checks."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import datetime, timezone

NAMESPACE = uuid.UUID("b421b0b8-fab7-4ead-b809-fc2dff9d3b1a")
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# The envelope written compactly, keys in the contract's order; the body follows.
ENVELOPE = re.compile(
    rb'^\{"id":"[0-9a-f-]{36}","messageId":"(?:[^"\\]|\\.)*","receivedAt":"[^"]*","body":'
)


def record_id(message_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, message_id))


def rfc3339_ms(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def expected_body(body: str):
    def reject(name):
        raise ValueError(name)

    try:
        return json.loads(body, parse_constant=reject)
    except ValueError:
        return body


def _received_ms(attributes: dict) -> int | None:
    for name in ("ApproximateFirstReceiveTimestamp", "SentTimestamp"):
        if name in attributes:
            return int(attributes[name])
    return None


def _body_style(stored: bytes, body: str) -> str:
    """How a JSON body was embedded: as it came, re-serialized compactly, or a string."""
    if stored.startswith(b'"') and not body.lstrip().startswith('"'):
        return "string"
    if stored == body.encode("utf-8"):
        return "verbatim"
    value = json.loads(stored)
    if stored == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"):
        return "compact"
    return "other"


def check_batch(event: dict, prefix: str, objects: dict, items: dict, failed: set[str],
                styles: Counter | None = None) -> list[str]:
    """Problems found for one batch (empty when all is well).

    objects: S3 key -> (content type, bytes) or None; items: id -> item or None;
    failed: message ids the function reported as failed (their records may be missing).
    styles, if given, counts how the bodies were embedded (see _body_style):
    the contract fixes the body's value, not its bytes.
    """
    problems: list[str] = []
    for record in event["Records"]:
        mid = record["messageId"]
        rid = record_id(mid)
        key = f"{prefix}{rid}.json"
        body = record["body"]
        received = rfc3339_ms(_received_ms(record["attributes"]))
        obj = objects.get(key)
        item = items.get(rid)
        if mid in failed:
            continue
        if obj is None:
            problems.append(f"{mid}: no S3 object at {key}")
        else:
            content_type, raw = obj
            if (content_type or "").split(";")[0].strip() != "application/json":
                problems.append(f"{mid}: ContentType {content_type!r}")
            try:
                doc = json.loads(raw.decode("utf-8"), object_pairs_hook=list)
            except ValueError as error:
                problems.append(f"{mid}: S3 object is not JSON: {error}")
                doc = None
            if doc is not None:
                keys = [k for k, _ in doc]
                if keys != ["id", "messageId", "receivedAt", "body"]:
                    problems.append(f"{mid}: S3 object keys {keys}")
                values = json.loads(raw.decode("utf-8"))
                if values.get("id") != rid:
                    problems.append(f"{mid}: S3 id {values.get('id')!r} != {rid}")
                if values.get("messageId") != mid:
                    problems.append(f"{mid}: S3 messageId {values.get('messageId')!r}")
                if values.get("receivedAt") != received:
                    problems.append(f"{mid}: S3 receivedAt {values.get('receivedAt')!r} != {received}")
                if values.get("body") != expected_body(body):
                    problems.append(f"{mid}: S3 body differs from the message body")
                envelope = ENVELOPE.match(raw)
                if envelope is None or not raw.endswith(b"}"):
                    problems.append(f"{mid}: S3 object is not compact JSON with keys id, messageId, receivedAt, body")
                elif styles is not None:
                    styles[_body_style(raw[envelope.end() : -1], body)] += 1
        if item is None:
            problems.append(f"{mid}: no DynamoDB item with id {rid}")
            continue
        expect = {
            "id": {"S": rid},
            "messageId": {"S": mid},
            "s3Key": {"S": key},
            "receivedAt": {"S": received},
            "bodyBytes": {"N": str(len(body.encode("utf-8")))},
        }
        for name, value in expect.items():
            if item.get(name) != value:
                problems.append(f"{mid}: item {name} = {item.get(name)!r}, want {value!r}")
        stored = item.get("storedAt", {}).get("S")
        if not stored or not RFC3339_MS.match(stored):
            problems.append(f"{mid}: item storedAt = {item.get('storedAt')!r}")
        extra = set(item) - set(expect) - {"storedAt"}
        if extra:
            problems.append(f"{mid}: item has extra attributes {sorted(extra)}")
    return problems


def check_response(event: dict, inv) -> tuple[set[str], list[str]]:
    """The failed message ids a response reports, and problems with the response itself."""
    problems: list[str] = []
    if inv.outcome != "response":
        return {r["messageId"] for r in event["Records"]}, [f"invocation ended with {inv.outcome}: {inv.result[:300]!r}"]
    try:
        payload = json.loads(inv.result or b"null")
    except ValueError:
        return set(), [f"response is not JSON: {inv.result[:200]!r}"]
    if not isinstance(payload, dict) or "batchItemFailures" not in payload:
        return set(), [f"response has no batchItemFailures: {inv.result[:200]!r}"]
    ids = {r["messageId"] for r in event["Records"]}
    failed = set()
    for entry in payload["batchItemFailures"] or []:
        item = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not item or item not in ids:
            problems.append(f"batchItemFailures entry {entry!r} is not a message of the batch")
        else:
            failed.add(item)
    return failed, problems
