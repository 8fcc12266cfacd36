"""What every Python peer does the same way: the consumer contract.

One module, packaged beside handler.py in each Python peer's zip (the
harness puts this folder on PYTHONPATH; bench/harness/artifacts.py zips it
with every peer). It holds the record -> (S3 object, DynamoDB item) mapping
and the BatchWriteItem chunking and retries. The retry loop is written once
as a generator (write_chunk) that the sync and the async peers drive with
their own client and sleep (drive, drive_async).
"""

import json
import os
import random
import time
import uuid
from datetime import datetime, timezone

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
# The emulator has no virtual-host DNS names; AWS itself takes either.
S3_CONFIG = {"addressing_style": "path"} if ENDPOINT else None


def rfc3339_ms(epoch_ms):
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def now_ms():
    return time.time_ns() // 1_000_000


def _received_ms(attributes):
    for name in ("ApproximateFirstReceiveTimestamp", "SentTimestamp"):
        value = (attributes or {}).get(name)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                pass
    return now_ms()


def _reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def _parse_body(body):
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError:
        return body


def prepare(record):
    """(PutObject arguments, DynamoDB item) of one SQS record (a dict as Lambda sends it)."""
    message_id = record["messageId"]
    body = record.get("body") or ""
    record_id = str(uuid.uuid5(NAMESPACE, message_id))
    key = f"{PREFIX}{record_id}.json"
    received_at = rfc3339_ms(_received_ms(record.get("attributes")))
    document = {"id": record_id, "messageId": message_id, "receivedAt": received_at, "body": _parse_body(body)}
    payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    put = {"Bucket": BUCKET, "Key": key, "Body": payload, "ContentType": "application/json"}
    item = {
        "id": {"S": record_id},
        "messageId": {"S": message_id},
        "s3Key": {"S": key},
        "receivedAt": {"S": received_at},
        "bodyBytes": {"N": str(len(body.encode("utf-8", "surrogatepass")))},
    }
    return put, item


def chunks(items):
    """(messageId, item) pairs, stamped with storedAt, in chunks of at most 25 with no id twice in a
    chunk (duplicates go later)."""
    stored_at = rfc3339_ms(now_ms())
    out = []
    for message_id, item in items:
        item["storedAt"] = {"S": stored_at}
        for chunk in out:
            if len(chunk) < CHUNK and item["id"]["S"] not in chunk:
                chunk[item["id"]["S"]] = (message_id, item)
                break
        else:
            out.append({item["id"]["S"]: (message_id, item)})
    return [list(c.values()) for c in out]


def write_chunk(chunk):
    """BatchWriteItem with bounded retries of UnprocessedItems, without I/O: yields (backoff in
    seconds, RequestItems), is sent each response (or the exception the call raised), returns the
    message ids not written."""
    owners = {}
    requests = []
    for message_id, item in chunk:
        owners[item["id"]["S"]] = message_id
        requests.append({"PutRequest": {"Item": item}})
    for attempt in range(MAX_ATTEMPTS):
        backoff = random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)) if attempt else 0.0
        response = yield backoff, {TABLE: requests}
        if isinstance(response, Exception):  # the SDK already retried
            print(f"BatchWriteItem failed: {response!r}")
            break
        requests = (response.get("UnprocessedItems") or {}).get(TABLE) or []
        if not requests:
            return []
    return [owners[r["PutRequest"]["Item"]["id"]["S"]] for r in requests]


def drive(chunk, dynamodb):
    """write_chunk with a boto3 client and time.sleep."""
    steps = write_chunk(chunk)
    try:
        backoff, request_items = next(steps)
        while True:
            time.sleep(backoff)
            try:
                response = dynamodb.batch_write_item(RequestItems=request_items)
            except Exception as error:  # noqa: BLE001 - reported as the chunk's failures
                response = error
            backoff, request_items = steps.send(response)
    except StopIteration as done:
        return done.value


async def drive_async(chunk, dynamodb):
    """write_chunk with an aiobotocore client and asyncio.sleep."""
    import asyncio

    steps = write_chunk(chunk)
    try:
        backoff, request_items = next(steps)
        while True:
            await asyncio.sleep(backoff)
            try:
                response = await dynamodb.batch_write_item(RequestItems=request_items)
            except Exception as error:  # noqa: BLE001 - reported as the chunk's failures
                response = error
            backoff, request_items = steps.send(response)
    except StopIteration as done:
        return done.value


def response(records, failed, reported=None):
    """The partial batch response: the failures already `reported` (a Powertools response), then
    the records whose message id is in `failed`, in event order."""
    first = list((reported or {}).get("batchItemFailures") or [])
    return {"batchItemFailures": first + [{"itemIdentifier": r["messageId"]} for r in records
                                          if r["messageId"] in failed]}
