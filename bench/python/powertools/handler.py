"""SQS batch -> S3 object + DynamoDB item per message, with Powertools.

The Powertools peer of the Rust `consumer` crate. BatchProcessor(EventType.SQS)
runs the record handler (the S3 put) for each record one after another, as
Powertools' BatchProcessor does; a record whose put raises is reported by
Powertools. The DynamoDB items of the records that were stored are then
written with BatchWriteItem in chunks of 25 (in sequence, as a typical
Powertools handler would), and messages left unwritten are added to the
partial batch response. raise_on_entire_batch_failure is off so that an
all-failed batch is reported item by item, like the other peers.
"""

import json
import os
import random
import time
import uuid
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

NAMESPACE = uuid.UUID("b421b0b8-fab7-4ead-b809-fc2dff9d3b1a")
BUCKET = os.environ["BUCKET_NAME"]
TABLE = os.environ["TABLE_NAME"]
PREFIX = os.environ.get("RECORDS_PREFIX", "records/")
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL") or None
# BatchWriteItem takes at most 25 requests.
CHUNK = 25
MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 0.025
BACKOFF_CAP_S = 1.0

_config = Config(s3={"addressing_style": "path"} if ENDPOINT else None)
_session = boto3.session.Session()
s3 = _session.client("s3", endpoint_url=ENDPOINT, config=_config)
dynamodb = _session.client("dynamodb", endpoint_url=ENDPOINT, config=_config)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Items stored by the current invocation, in record order: (messageId, item).
_pending = []


def _rfc3339_ms(epoch_ms):
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _now_ms():
    return time.time_ns() // 1_000_000


def _received_ms(record: SQSRecord):
    attributes = record.raw_event.get("attributes") or {}
    for name in ("ApproximateFirstReceiveTimestamp", "SentTimestamp"):
        value = attributes.get(name)
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


def record_handler(record: SQSRecord):
    """S3 put for one message; queues its DynamoDB item."""
    message_id = record.message_id
    body = record.body or ""
    record_id = str(uuid.uuid5(NAMESPACE, message_id))
    key = f"{PREFIX}{record_id}.json"
    received_at = _rfc3339_ms(_received_ms(record))
    document = {
        "id": record_id,
        "messageId": message_id,
        "receivedAt": received_at,
        "body": _parse_body(body),
    }
    payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    s3.put_object(Bucket=BUCKET, Key=key, Body=payload, ContentType="application/json")
    _pending.append(
        (
            message_id,
            {
                "id": {"S": record_id},
                "messageId": {"S": message_id},
                "s3Key": {"S": key},
                "receivedAt": {"S": received_at},
                "bodyBytes": {"N": str(len(body.encode("utf-8", "surrogatepass")))},
            },
        )
    )


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
    _pending.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failures = list(response.get("batchItemFailures") or [])

    stored_at = _rfc3339_ms(_now_ms())
    unwritten = set()
    for _, item in _pending:
        item["storedAt"] = {"S": stored_at}
    for chunk in _chunks(_pending):
        unwritten.update(_write_chunk(chunk))
    _pending.clear()

    if unwritten:
        failures.extend(
            {"itemIdentifier": r["messageId"]}
            for r in event.get("Records") or []
            if r["messageId"] in unwritten
        )
    return {"batchItemFailures": failures}
