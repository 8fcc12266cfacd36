"""Prepared SQS event batches: deterministic, identical for every function."""

from __future__ import annotations

import hashlib
import json
import random
import uuid

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:bench-queue"
# A fixed clock for the message attributes, so every run sends the same bytes.
BASE_EPOCH_MS = 1_795_000_000_000

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima "
    "mike november oscar papa quebec romeo sierra tango uniform victor whiskey "
    "x-ray yankee zulu grüße café naïve Ωmega 数据 ✓"
).split()


def _body(rng: random.Random, n: int) -> str:
    """Mostly JSON order documents (~300-700 bytes), every 7th a raw text line."""
    if n % 7 == 3:
        return "plain text payload #%d: %s" % (n, " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30))))
    items = [
        {
            "sku": f"SKU-{rng.randint(1000, 9999)}",
            "qty": rng.randint(1, 5),
            "price": round(rng.uniform(1, 200), 2),
        }
        for _ in range(rng.randint(1, 6))
    ]
    doc = {
        "orderId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer": {
            "id": rng.randint(1, 10**9),
            "name": " ".join(rng.choice(_WORDS) for _ in range(2)),
            "vip": rng.random() < 0.2,
        },
        "items": items,
        "total": round(sum(i["qty"] * i["price"] for i in items), 2),
        "note": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 12))) or None,
        "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 4))],
    }
    return json.dumps(doc, ensure_ascii=False)


def make_batch(rng: random.Random, size: int, first_n: int) -> dict:
    records = []
    for i in range(size):
        n = first_n + i
        body = _body(rng, n)
        sent = BASE_EPOCH_MS + n * 37
        first_receive = sent + rng.randint(5, 900)
        records.append(
            {
                "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "receiptHandle": "AQEB" + hashlib.sha256(f"rh{n}".encode()).hexdigest(),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(sent),
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": str(first_receive),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


class EventSet:
    """All batches of one run, generated once from a seed."""

    def __init__(self, seed: int = 20261127):
        self._rng = random.Random(seed)
        self._n = 0
        self._cache: dict[tuple[str, int, int], bytes] = {}
        self._events: dict[tuple[str, int, int], dict] = {}

    def get(self, purpose: str, size: int, index: int) -> tuple[dict, bytes]:
        """The batch for (purpose, size, index): the same for every function."""
        key = (purpose, size, index)
        if key not in self._cache:
            event = make_batch(self._rng, size, self._n)
            self._n += size
            self._events[key] = event
            self._cache[key] = json.dumps(event, ensure_ascii=False).encode("utf-8")
        return self._events[key], self._cache[key]
