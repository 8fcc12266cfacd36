"""SQS batch -> S3 object + DynamoDB item per message, with Powertools' sequential BatchProcessor.

The Powertools peer of the Rust `consumer` crate, sequential:
BatchProcessor(EventType.SQS) runs the record handler (the S3 put) for each
record one after another, as Powertools' BatchProcessor does; a record whose
put raises is reported by Powertools. The DynamoDB items of the records that
were stored are then written with BatchWriteItem in chunks of 25 (in
sequence, as a typical Powertools handler would), and messages left
unwritten are added to the partial batch response.
raise_on_entire_batch_failure is off so that an all-failed batch is reported
item by item, like the other peers. The contract (object, item, chunks,
retries) is contract.py, shared by the Python peers.
"""

import boto3
import contract
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

_config = Config(s3=contract.S3_CONFIG)
_session = boto3.session.Session()
s3 = _session.client("s3", endpoint_url=contract.ENDPOINT, config=_config)
dynamodb = _session.client("dynamodb", endpoint_url=contract.ENDPOINT, config=_config)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Items stored by the current invocation, in record order: (messageId, item).
_pending = []


def record_handler(record: SQSRecord):
    """S3 put for one message; queues its DynamoDB item."""
    put, item = contract.prepare(record.raw_event)
    s3.put_object(**put)
    _pending.append((record.message_id, item))


def handler(event, context):
    _pending.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    unwritten = set()
    for chunk in contract.chunks(_pending):
        unwritten.update(contract.drive(chunk, dynamodb))
    _pending.clear()
    return contract.response(event.get("Records") or [], unwritten, reported=response)
