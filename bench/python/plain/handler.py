"""SQS batch -> S3 object + DynamoDB item per message, with plain boto3.

The Python peer of the Rust `consumer` crate, written the way a typical user
would: clients built once at import, S3 puts fanned out over a thread pool,
then the DynamoDB items written with BatchWriteItem in chunks of 25 (the
chunks also go through the pool). Concurrency: MAX_CONCURRENCY threads
(default 16) and a botocore connection pool of the same size. The contract
(object, item, chunks, retries) is contract.py, shared by the Python peers.
"""

from concurrent.futures import ThreadPoolExecutor

import boto3
import contract
from botocore.config import Config

_config = Config(max_pool_connections=contract.MAX_CONCURRENCY, s3=contract.S3_CONFIG)
_session = boto3.session.Session()
s3 = _session.client("s3", endpoint_url=contract.ENDPOINT, config=_config)
dynamodb = _session.client("dynamodb", endpoint_url=contract.ENDPOINT, config=_config)
_pool = ThreadPoolExecutor(max_workers=contract.MAX_CONCURRENCY)


def _store_object(record):
    """S3 put for one message; returns its DynamoDB item."""
    put, item = contract.prepare(record)
    s3.put_object(**put)
    return item


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
    for leftovers in _pool.map(lambda chunk: contract.drive(chunk, dynamodb), contract.chunks(stored)):
        failed.update(leftovers)
    return contract.response(records, failed)
