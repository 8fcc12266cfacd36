// The Node peer's failure paths, with the SDK's own mocking
// (aws-sdk-client-mock): what the benchmark cannot provoke. UnprocessedItems
// retries and leftovers, a failing put or chunk, duplicate message ids,
// chunking, and the stored bytes against the contract the Python peers and
// bench/harness/verify.py share.
//
//   cd bench/node && node --test
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { BatchWriteItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { v5 as uuidv5 } from "uuid";

Object.assign(process.env, {
  BUCKET_NAME: "bucket",
  TABLE_NAME: "table",
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "test",
  AWS_SECRET_ACCESS_KEY: "test",
});
const peer = await import("../handler.mjs");

const NAMESPACE = "b421b0b8-fab7-4ead-b809-fc2dff9d3b1a";
const recordId = (messageId) => uuidv5(messageId, NAMESPACE);
const s3Mock = mockClient(S3Client);
const ddbMock = mockClient(DynamoDBClient);
let sleeps = [];
peer.setSleep(async (ms) => {
  sleeps.push(ms);
});

// The Python peers' test event: message ids 1..n, every third body text.
function event(n, { duplicateFirst = false } = {}) {
  const records = [];
  for (let i = 0; i < n; i++) {
    let messageId = `00000000-0000-0000-0000-${String(i + 1).padStart(12, "0")}`;
    if (duplicateFirst && i === 1) messageId = records[0].messageId;
    records.push({
      messageId,
      body: i % 3 ? JSON.stringify({ n: i }) : `text ${i}`,
      attributes: { ApproximateFirstReceiveTimestamp: String(1_795_000_000_000 + i) },
    });
  }
  return { Records: records };
}

/** In-memory S3: denies the puts whose key holds one of `deny`; counts puts in flight. */
function fakeS3({ deny = [] } = {}) {
  const state = { objects: new Map(), inFlight: 0, maxInFlight: 0 };
  s3Mock.on(PutObjectCommand).callsFake(async (input) => {
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    // Let every other record's handler start before this one ends.
    await new Promise((resolve) => setImmediate(resolve));
    state.inFlight--;
    if (deny.some((d) => input.Key.includes(d))) throw Object.assign(new Error("Access Denied"), { name: "AccessDenied" });
    state.objects.set(input.Key, input);
    return {};
  });
  return state;
}

/** Leaves the first `stubborn` items of each call unprocessed for `times` calls, `forever` ids always; `throwOn` ids reject the call. */
function fakeDynamo({ stubborn = 0, times = 0, forever = [], throwOn = [] } = {}) {
  const state = { items: new Map(), calls: [] };
  ddbMock.on(BatchWriteItemCommand).callsFake(async (input) => {
    const [[table, requests]] = Object.entries(input.RequestItems);
    const ids = requests.map((r) => r.PutRequest.Item.id.S);
    assert.ok(requests.length <= 25, "more than 25 requests in one call");
    assert.equal(new Set(ids).size, ids.length, "an id twice in one call");
    state.calls.push(ids);
    if (ids.some((id) => throwOn.includes(id))) {
      throw Object.assign(new Error("ValidationException"), { name: "ValidationException" });
    }
    const left = [];
    requests.forEach((request, n) => {
      const item = request.PutRequest.Item;
      if (forever.includes(item.id.S) || (n < stubborn && state.calls.length <= times)) left.push(request);
      else state.items.set(item.id.S, item);
    });
    return { UnprocessedItems: left.length ? { [table]: left } : {} };
  });
  return state;
}

async function run(ev) {
  const response = await peer.handler(ev, {});
  const ids = response.batchItemFailures.map((f) => f.itemIdentifier);
  assert.equal(new Set(ids).size, ids.length, "a message reported twice");
  return new Set(ids);
}

describe("node-powertools peer", () => {
  beforeEach(() => {
    s3Mock.reset();
    ddbMock.reset();
    sleeps = [];
  });

  test("everything is stored, items in chunks of 25", async () => {
    const ev = event(60);
    const s3 = fakeS3();
    const ddb = fakeDynamo();
    assert.deepEqual(await run(ev), new Set());
    assert.deepEqual(
      ddb.calls.map((c) => c.length).sort((a, b) => a - b),
      [10, 25, 25],
    );
    assert.equal(s3.objects.size, 60);
    assert.equal(ddb.items.size, 60);
  });

  test("the stored object and item follow the contract (same bytes as the Python peers)", async () => {
    const ev = event(2);
    ev.Records[0].body = "café ✓";
    const s3 = fakeS3();
    const ddb = fakeDynamo();
    assert.deepEqual(await run(ev), new Set());
    // Computed with bench/harness/verify.py for message ...0002.
    const rid = "2642911e-25b9-5a74-98d6-5c51778d4205";
    assert.equal(recordId(ev.Records[1].messageId), rid);
    const put = s3.objects.get(`records/${rid}.json`);
    assert.equal(put.Bucket, "bucket");
    assert.equal(put.ContentType, "application/json");
    assert.equal(
      Buffer.from(put.Body).toString("utf8"),
      `{"id":"${rid}","messageId":"00000000-0000-0000-0000-000000000002",` +
        `"receivedAt":"2026-11-18T11:06:40.001Z","body":{"n":1}}`,
    );
    const item = ddb.items.get(rid);
    assert.match(item.storedAt.S, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    delete item.storedAt;
    assert.deepEqual(item, {
      id: { S: rid },
      messageId: { S: "00000000-0000-0000-0000-000000000002" },
      s3Key: { S: `records/${rid}.json` },
      receivedAt: { S: "2026-11-18T11:06:40.001Z" },
      bodyBytes: { N: "7" },
    });
    // A text body is stored as a JSON string; its size is counted in UTF-8 bytes.
    const first = recordId(ev.Records[0].messageId);
    assert.match(Buffer.from(s3.objects.get(`records/${first}.json`).Body).toString("utf8"), /"body":"café ✓"\}$/);
    assert.deepEqual(ddb.items.get(first).bodyBytes, { N: "9" });
  });

  test("records are put concurrently (BatchProcessor's parallel default)", async () => {
    const s3 = fakeS3();
    fakeDynamo();
    assert.deepEqual(await run(event(20)), new Set());
    assert.equal(s3.maxInFlight, 20);
  });

  test("UnprocessedItems are retried until written", async () => {
    fakeS3();
    const ddb = fakeDynamo({ stubborn: 3, times: 2 });
    assert.deepEqual(await run(event(10)), new Set());
    assert.equal(ddb.calls.length, 3);
    assert.deepEqual(ddb.calls.slice(1).map((c) => c.length), [3, 3]);
    assert.equal(ddb.items.size, 10);
    assert.equal(sleeps.length, 2);
  });

  test("items still unprocessed after five attempts fail their messages, with capped backoff", async () => {
    const ev = event(10);
    const stuck = [ev.Records[4].messageId, ev.Records[7].messageId];
    fakeS3();
    const ddb = fakeDynamo({ forever: stuck.map(recordId) });
    assert.deepEqual(await run(ev), new Set(stuck));
    assert.equal(ddb.calls.length, peer.MAX_ATTEMPTS);
    assert.equal(ddb.items.size, 8);
    assert.equal(sleeps.length, peer.MAX_ATTEMPTS - 1);
    sleeps.forEach((ms, i) => assert.ok(ms >= 0 && ms <= Math.min(1000, 25 * 2 ** (i + 1)), `backoff ${ms} ms`));
  });

  test("a failed S3 put fails its message only and writes no item for it", async () => {
    const ev = event(10);
    const doomed = ev.Records[2].messageId;
    const s3 = fakeS3({ deny: [recordId(doomed)] });
    const ddb = fakeDynamo();
    assert.deepEqual(await run(ev), new Set([doomed]));
    assert.equal(ddb.items.has(recordId(doomed)), false);
    assert.equal(ddb.items.size, 9);
    assert.equal(s3.objects.size, 9);
  });

  test("a BatchWriteItem call that throws fails its own chunk, not the other", async () => {
    const ev = event(30);
    fakeS3();
    // Record 27 lands in the second chunk (records 26..30).
    const ddb = fakeDynamo({ throwOn: [recordId(ev.Records[27].messageId)] });
    const second = new Set(ev.Records.slice(25).map((r) => r.messageId));
    assert.deepEqual(await run(ev), second);
    assert.equal(ddb.items.size, 25);
    assert.equal(ddb.calls.length, 2, "an error is not retried on top of the SDK's retries");
  });

  test("a batch where every put fails is reported item by item, not thrown", async () => {
    const ev = event(4);
    fakeS3({ deny: ["records/"] });
    const ddb = fakeDynamo();
    assert.deepEqual(await run(ev), new Set(ev.Records.map((r) => r.messageId)));
    assert.equal(ddb.calls.length, 0);
  });

  test("a duplicate message id never shares a call", async () => {
    fakeS3();
    const ddb = fakeDynamo();
    assert.deepEqual(await run(event(5, { duplicateFirst: true })), new Set());
    assert.deepEqual(
      ddb.calls.map((c) => c.length).sort((a, b) => a - b),
      [1, 4],
    );
  });
});
