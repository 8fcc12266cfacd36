"""SQS batch -> S3 object + DynamoDB item per message, with plain boto3.

The Python peer of the Rust `consumer` crate, written the way a typical user
would: clients built once at import, S3 puts fanned out over a thread pool,
then the DynamoDB items written with BatchWriteItem in chunks of 25 (the
chunks also go through the pool). Concurrency: MAX_CONCURRENCY threads
(default 16) and a botocore connection pool of the same size.
"""

import json
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import boto3
from botocore.config import Config

NAMESPACE = uuid.UUID("b421b0b8-fab7-4ead-b809-fc2dff9d3b1a")
BUCKET = os.environ["BUCKET_NAME"]
TABLE = os.environ["TABLE_NAME"]
PREFIX = os.environ.get("RECORDS_PREFIX", "records/")
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL") or None
MAX_CONCURRENCY = int(os.environ.get("MAX_CONCURRENCY", "16"))
# BatchWriteItem takes at most 25 requests.
CHUNK = 25
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 0.025
BACKOFF_CAP_S = 1.0

_config = Config(
    max_pool_connections=MAX_CONCURRENCY,
    # The emulator has no virtual-host DNS names; AWS itself takes either.
    s3={"addressing_style": "path"} if ENDPOINT else None,
)
_session = boto3.session.Session()
s3 = _session.client("s3", endpoint_url=ENDPOINT, config=_config)
dynamodb = _session.client("dynamodb", endpoint_url=ENDPOINT, config=_config)
_pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENCY)


def _rfc3339_ms(epoch_ms):
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _now_ms():
    return time.time_ns() // 1_000_000


def _received_ms(attributes):
    for name in ("ApproximateFirstReceiveTimestamp", "SentTimestamp"):
        value = (attributes or {}).get(name)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
    return _now_ms()


def _reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def _parse_body(body):
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        return body


def _store_object(record):
    """S3 put for one message; returns its DynamoDB item."""
    message_id = record["messageId"]
    body = record.get("body") or ""
    record_id = str(uuid.uuid5(NAMESPACE, message_id))
    key = f"{PREFIX}{record_id}.json"
    received_at = _rfc3339_ms(_received_ms(record.get("attributes")))
    document = {
        "id": record_id,
        "messageId": message_id,
        "receivedAt": received_at,
        "body": _parse_body(body),
    }
    payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    s3.put_object(Bucket=BUCKET, Key=key, Body=payload, ContentType="application/json")
    return {
        "id": {"S": record_id},
        "messageId": {"S": message_id},
        "s3Key": {"S": key},
        "receivedAt": {"S": received_at},
        "bodyBytes": {"N": str(len(body.encode("utf-8", "surrogatepass")))},
    }


def _chunks(items):
    """Chunks of at most 25 with no id twice in a chunk (duplicates go later)."""
    chunks = []
    for message_id, item in items:
        for chunk in chunks:
            if len(chunk) < CHUNK and item["id"]["S"] not in chunk:
                chunk[item["id"]["S"]] = (message_id, item)
                break
        else:
            chunks.append({item["id"]["S"]: (message_id, item)})
    return [list(c.values()) for c in chunks]


def _write_chunk(chunk):
    """BatchWriteItem with bounded retries; returns the message ids not written."""
    owners = {}
    requests = []
    for message_id, item in chunk:
        owners[item["id"]["S"]] = message_id
        requests.append({"PutRequest": {"Item": item}})
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
        try:
            response = dynamodb.batch_write_item(RequestItems={TABLE: requests})
        except Exception as error:  # noqa: BLE001 - the SDK already retried
            print(f"BatchWriteItem failed: {error!r}")
            return [owners[r["PutRequest"]["Item"]["id"]["S"]] for r in requests]
        requests = (response.get("UnprocessedItems") or {}).get(TABLE) or []
        if not requests:
            return []
    return [owners[r["PutRequest"]["Item"]["id"]["S"]] for r in requests]


def handler(event, context):
    records = event.get("Records") or []
    failed = set()
    stored = []

    futures = [(r["messageId"], _pool.submit(_store_object, r)) for r in records]
    for message_id, future in futures:
        try:
            stored.append((message_id, future.result()))
        except Exception as error:  # noqa: BLE001 - one message must not fail the batch
            print(f"S3 put failed for {message_id}: {error!r}")
            failed.add(message_id)

    stored_at = _rfc3339_ms(_now_ms())
    for _, item in stored:
        item["storedAt"] = {"S": stored_at}
    for leftovers in _pool.map(_write_chunk, _chunks(stored)):
        failed.update(leftovers)

    return {
        "batchItemFailures": [
            {"itemIdentifier": r["messageId"]} for r in records if r["messageId"] in failed
        ]
    }
