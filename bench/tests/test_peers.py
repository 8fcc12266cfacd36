"""The Python peers' failure paths, with in-memory fakes for S3 and DynamoDB.

The benchmark itself only sees the happy path and denied S3 puts; these
cover what it cannot provoke: UnprocessedItems retries and leftovers,
duplicate message ids, and chunking.

Run with the peers' venv: cd bench && python/.venv/bin/python -m unittest tests/test_peers.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import unittest
import uuid
from pathlib import Path
from unittest import mock

BENCH = Path(__file__).resolve().parent.parent
# LAMBDA_TASK_ROOT: AsyncBatchProcessor runs on the thread's event loop, as in Lambda.
os.environ.update(BUCKET_NAME="bucket", TABLE_NAME="table", AWS_DEFAULT_REGION="us-east-1",
                  AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", LAMBDA_TASK_ROOT=str(BENCH))
sys.path[:0] = [str(BENCH), str(BENCH / "python" / "shared")]

import contract  # noqa: E402
from harness import verify  # noqa: E402


def _load(folder: str):
    spec = importlib.util.spec_from_file_location(f"peer_{folder.replace('-', '_')}", BENCH / "python" / folder / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeS3:
    def __init__(self, deny=()):
        self.objects = {}
        self.deny = set(deny)

    def put_object(self, Bucket, Key, Body, ContentType):  # noqa: N803 - boto3's names
        if any(d in Key for d in self.deny):
            raise RuntimeError("AccessDenied")
        self.objects[Key] = (ContentType, Body)
        return {}


class FakeDynamo:
    """Leaves the first `stubborn` items of every call unprocessed, `times` calls long."""

    def __init__(self, stubborn=0, times=0, forever=()):
        self.items = {}
        self.calls = []
        self.stubborn, self.times, self.forever = stubborn, times, set(forever)

    def batch_write_item(self, RequestItems):  # noqa: N803
        (table, requests), = RequestItems.items()
        ids = [r["PutRequest"]["Item"]["id"]["S"] for r in requests]
        assert len(requests) <= 25, "more than 25 requests"
        assert len(set(ids)) == len(ids), "duplicate id in one call"
        self.calls.append(ids)
        left = []
        for n, request in enumerate(requests):
            item = request["PutRequest"]["Item"]
            if item["id"]["S"] in self.forever or (n < self.stubborn and len(self.calls) <= self.times):
                left.append(request)
            else:
                self.items[item["id"]["S"]] = item
        return {"UnprocessedItems": {table: left} if left else {}}


def _event(n, duplicate_first=False):
    records = []
    for i in range(n):
        mid = str(uuid.UUID(int=i + 1))
        if duplicate_first and i == 1:
            mid = records[0]["messageId"]
        records.append({"messageId": mid, "body": json.dumps({"n": i}) if i % 3 else f"text {i}",
                        "attributes": {"ApproximateFirstReceiveTimestamp": str(1_795_000_000_000 + i)}})
    return {"Records": records}


class Async:
    """The async client of a fake: each of its methods as a coroutine."""

    def __init__(self, fake):
        self.fake = fake
        self.in_flight = self.max_in_flight = 0

    def __getattr__(self, name):
        method = getattr(self.fake, name)

        async def call(**kwargs):
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(0)  # let the other records' calls interleave
            self.in_flight -= 1
            return method(**kwargs)
        return call


class PeerTests:
    folder = ""
    is_async = False

    def setUp(self):
        self.peer = _load(self.folder)
        # No real backoff in tests.
        patcher = mock.patch.object(contract, "BACKOFF_BASE_S", 0)
        patcher.start()
        self.addCleanup(patcher.stop)

    def run_peer(self, event, s3, ddb):
        if self.is_async:
            self.s3 = s3 = Async(s3)
            ddb = Async(ddb)
        self.peer.s3, self.peer.dynamodb = s3, ddb
        response = self.peer.handler(event, None)
        return {f["itemIdentifier"] for f in response["batchItemFailures"]}

    def test_everything_stored_in_chunks_of_25(self):
        event, s3, ddb = _event(60), FakeS3(), FakeDynamo()
        self.assertEqual(self.run_peer(event, s3, ddb), set())
        self.assertEqual(sorted(len(c) for c in ddb.calls), [10, 25, 25])
        self.assertEqual(verify.check_batch(event, "records/", s3.objects, ddb.items, set()), [])

    def test_unprocessed_items_are_retried_until_written(self):
        event, ddb = _event(10), FakeDynamo(stubborn=3, times=2)
        self.assertEqual(self.run_peer(event, FakeS3(), ddb), set())
        self.assertEqual(len(ddb.calls), 3)
        self.assertEqual(len(ddb.items), 10)

    def test_items_still_unprocessed_after_five_attempts_fail_their_messages(self):
        event = _event(10)
        stuck = [event["Records"][4]["messageId"], event["Records"][7]["messageId"]]
        ddb = FakeDynamo(forever=[verify.record_id(m) for m in stuck])
        self.assertEqual(self.run_peer(event, FakeS3(), ddb), set(stuck))
        self.assertEqual(len(ddb.calls), 5)

    def test_a_failed_s3_put_fails_the_message_and_skips_dynamodb(self):
        event = _event(10)
        doomed = event["Records"][2]["messageId"]
        ddb = FakeDynamo()
        self.assertEqual(self.run_peer(event, FakeS3(deny=[verify.record_id(doomed)]), ddb), {doomed})
        self.assertNotIn(verify.record_id(doomed), ddb.items)
        self.assertEqual(len(ddb.items), 9)

    def test_a_duplicate_message_id_never_shares_a_call(self):
        event, ddb = _event(5, duplicate_first=True), FakeDynamo()
        self.assertEqual(self.run_peer(event, FakeS3(), ddb), set())
        self.assertEqual(sorted(len(c) for c in ddb.calls), [1, 4])


class PlainPeerTest(PeerTests, unittest.TestCase):
    folder = "plain"


class PowertoolsSequentialPeerTest(PeerTests, unittest.TestCase):
    folder = "powertools-sequential"


class PowertoolsAsyncPeerTest(PeerTests, unittest.TestCase):
    folder = "powertools-async"
    is_async = True

    def test_s3_puts_run_concurrently(self):
        self.assertEqual(self.run_peer(_event(30), FakeS3(), FakeDynamo()), set())
        self.assertEqual(self.s3.max_in_flight, 30)


if __name__ == "__main__":
    unittest.main()
