"""SQS batch -> S3 object + DynamoDB item per message, with Powertools' AsyncBatchProcessor.

The concurrent Powertools peer of the Rust `consumer` crate:
AsyncBatchProcessor(EventType.SQS) with async_process_partial_response runs
every record's handler (the S3 put) at once on one asyncio event loop
(asyncio.gather), and the stored records' DynamoDB items are then written
with BatchWriteItem, all chunks at once. The AWS client is aiobotocore
(botocore over aiohttp): boto3 has no asyncio interface, and
asyncio.to_thread would only move boto3 onto a thread pool (the plain
peer's model). Requests in flight are bounded by the client's connection
pool, MAX_CONCURRENCY (default 16; the harness passes 64).

The event loop is made once at init and set as the thread's loop, which is
the one AsyncBatchProcessor runs on in Lambda (it calls get_event_loop when
LAMBDA_TASK_ROOT is set); the clients are opened on it at init and kept for
the life of the process, as boto3 clients are. The contract (object, item,
chunks, retries) is contract.py, shared by the Python peers.
"""

import asyncio
from contextlib import AsyncExitStack

import contract
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)


async def _open_clients():
    """The S3 and DynamoDB clients, open for the life of the process (_clients is never closed)."""
    config = AioConfig(max_pool_connections=contract.MAX_CONCURRENCY, s3=contract.S3_CONFIG)
    session = get_session()
    return [await _clients.enter_async_context(session.create_client(name, endpoint_url=contract.ENDPOINT,
                                                                     config=config))
            for name in ("s3", "dynamodb")]


_clients = AsyncExitStack()

s3, dynamodb = loop.run_until_complete(_open_clients())

# Items stored by the current invocation: (messageId, item).
_pending = []


async def record_handler(record: SQSRecord):
    """S3 put for one message; queues its DynamoDB item."""
    put, item = contract.prepare(record.raw_event)
    await s3.put_object(**put)
    _pending.append((record.message_id, item))


async def _write_items():
    written = await asyncio.gather(*(contract.drive_async(c, dynamodb) for c in contract.chunks(_pending)))
    return {message_id for leftovers in written for message_id in leftovers}


def handler(event, context):
    _pending.clear()
    response = async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    unwritten = loop.run_until_complete(_write_items())
    _pending.clear()
    return contract.response(event.get("Records") or [], unwritten, reported=response)
