// SQS batch -> S3 object + DynamoDB item per message, with the AWS SDK for
// JavaScript v3 and Powertools for TypeScript's BatchProcessor.
//
// The Node.js peer of the Rust `consumer` crate and of bench/python/*: the
// same key scheme, object body, content type and item attributes. Clients
// are built once at init. BatchProcessor runs the record handler (the S3
// put) for all records of the batch at once, its default; a record whose
// put throws is reported by Powertools. The items of the records that were
// stored are then written with BatchWriteItem in chunks of 25, the chunks
// at the same time, each retrying its UnprocessedItems a bounded number of
// times (the Python peers' policy); messages left unwritten are added to the
// partial batch response. throwOnFullBatchFailure is off so that an
// all-failed batch is reported item by item, like the other peers.
//
// MAX_CONCURRENCY caps the sockets each client keeps to its endpoint (the
// requests in flight); BatchProcessor itself has no limit.

import { BatchWriteItemCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch";
import { v5 as uuidv5 } from "uuid";

const NAMESPACE = "b421b0b8-fab7-4ead-b809-fc2dff9d3b1a";
const BUCKET = requireEnv("BUCKET_NAME");
const TABLE = requireEnv("TABLE_NAME");
const PREFIX = process.env.RECORDS_PREFIX ?? "records/";
const MAX_CONCURRENCY = Number.parseInt(process.env.MAX_CONCURRENCY ?? "16", 10) || 16;
// BatchWriteItem takes at most 25 requests.
export const CHUNK = 25;
export const MAX_ATTEMPTS = 5;
const BACKOFF_BASE_MS = 25;
const BACKOFF_CAP_MS = 1000;

function requireEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

// The SDK reads AWS_ENDPOINT_URL, AWS_REGION and the credentials itself.
// The emulator has no virtual-host DNS names: path-style when asked for.
const requestHandler = { httpAgent: { maxSockets: MAX_CONCURRENCY }, httpsAgent: { maxSockets: MAX_CONCURRENCY } };
export const s3 = new S3Client({
  forcePathStyle: /^(1|true|yes)$/i.test(process.env.S3_FORCE_PATH_STYLE ?? ""),
  requestHandler,
});
export const dynamodb = new DynamoDBClient({ requestHandler });
const processor = new BatchProcessor(EventType.SQS);

/** Backoff before a retry of UnprocessedItems: full jitter, capped. */
export let sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Tests replace the backoff wait. */
export function setSleep(fn) {
  sleep = fn;
}

function rfc3339Ms(epochMs) {
  return new Date(epochMs).toISOString();
}

function receivedMs(attributes) {
  for (const name of ["ApproximateFirstReceiveTimestamp", "SentTimestamp"]) {
    const value = attributes?.[name];
    if (typeof value === "string" && /^\s*-?\d+\s*$/.test(value)) return Number(value);
  }
  return Date.now();
}

// JSON bodies are stored as parsed values, anything else as a string
// (JSON.parse already refuses NaN and Infinity, as the peers do).
function parseBody(body) {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/** S3 put for one message; returns its DynamoDB item (without storedAt). */
export async function storeObject(record) {
  const messageId = record.messageId;
  const body = record.body ?? "";
  const recordId = uuidv5(messageId, NAMESPACE);
  const key = `${PREFIX}${recordId}.json`;
  const receivedAt = rfc3339Ms(receivedMs(record.attributes));
  const document = { id: recordId, messageId, receivedAt, body: parseBody(body) };
  await s3.send(
    new PutObjectCommand({
      Bucket: BUCKET,
      Key: key,
      Body: Buffer.from(JSON.stringify(document), "utf8"),
      ContentType: "application/json",
    }),
  );
  return {
    id: { S: recordId },
    messageId: { S: messageId },
    s3Key: { S: key },
    receivedAt: { S: receivedAt },
    bodyBytes: { N: String(Buffer.byteLength(body, "utf8")) },
  };
}

/** Chunks of at most 25 with no id twice in a chunk (duplicates go later). */
export function chunks(stored) {
  const out = [];
  for (const [messageId, item] of stored) {
    const id = item.id.S;
    let chunk = out.find((c) => c.size < CHUNK && !c.has(id));
    if (!chunk) {
      chunk = new Map();
      out.push(chunk);
    }
    chunk.set(id, [messageId, item]);
  }
  return out.map((c) => [...c.values()]);
}

/** BatchWriteItem with bounded retries; resolves to the message ids not written. */
export async function writeChunk(chunk) {
  const owners = new Map(chunk.map(([messageId, item]) => [item.id.S, messageId]));
  const ownersOf = (requests) => requests.map((r) => owners.get(r.PutRequest.Item.id.S));
  let requests = chunk.map(([, item]) => ({ PutRequest: { Item: item } }));
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (attempt) await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
    let response;
    try {
      response = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: requests } }));
    } catch (error) {
      // The SDK already retried what it retries (throttling, 5xx).
      console.error("BatchWriteItem failed:", error);
      return ownersOf(requests);
    }
    requests = response.UnprocessedItems?.[TABLE] ?? [];
    if (requests.length === 0) return [];
  }
  return ownersOf(requests);
}

export async function handler(event, context) {
  const records = event.Records ?? [];
  const index = new Map(records.map((r, i) => [r, i]));
  const stored = [];
  const recordHandler = async (record) => {
    stored.push([index.get(record) ?? records.length, record.messageId, await storeObject(record)]);
  };
  const response = await processPartialResponse(event, recordHandler, processor, {
    context,
    throwOnFullBatchFailure: false,
  });
  const failures = [...(response.batchItemFailures ?? [])];

  // Record order, as the puts finished in any order.
  stored.sort((a, b) => a[0] - b[0]);
  const storedAt = rfc3339Ms(Date.now());
  for (const [, , item] of stored) item.storedAt = { S: storedAt };
  const leftovers = await Promise.all(chunks(stored.map(([, id, item]) => [id, item])).map(writeChunk));
  const unwritten = new Set(leftovers.flat());
  if (unwritten.size) {
    const reported = new Set(failures.map((f) => f.itemIdentifier));
    for (const r of records) {
      if (unwritten.has(r.messageId) && !reported.has(r.messageId)) {
        failures.push({ itemIdentifier: r.messageId });
        reported.add(r.messageId);
      }
    }
  }
  return { batchItemFailures: failures };
}
