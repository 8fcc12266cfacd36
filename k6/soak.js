// Soak: the original experiment's steady test, two hours at a constant
// rate by default, with an optional share of poison messages that the
// consumer rejects (they reach the DLQ after maxReceiveCount receives).
//
//   PRODUCER_URL  producer base URL (required)
//   DURATION      default "2h" (the experiment); CI and quick checks pass e.g. 30s
//   RATE          requests per second (default 5)
//   BATCH         messages per request (default 10), so 50 messages/s by default
//   POISON_RATE   share of requests, 0..1, whose messages carry REJECT_MARKER
//                 (default 0). Picked by iteration number, so the share is exact.
//   REJECT_MARKER the text the consumer is configured to reject (its REJECT_MARKER);
//                 required when POISON_RATE > 0
//   SAMPLE_RATE   share of (clean) requests whose first message is followed to
//                 storage with GET /messages/{messageId} (default 0.02)
//   E2E_TIMEOUT, MAX_POLLS, MAX_POLL_INTERVAL_MS, E2E_P95_MS, P95_MS,
//   MAX_DROPPED_PCT, RUN_ID, VUS, MAX_VUS, PAYLOAD_BYTES: as in throughput.js/e2e.js
//   QUEUE_TYPE    standard (default) or fifo: the queue behind the producer.
//                 With fifo, each VU owns GROUPS_PER_VU message groups at a time and
//                 spreads each request's messages over them round robin, each
//                 body carrying its messageGroupId and groupSeq (its place in
//                 the order the group was sent), so the audit can check each
//                 group's order; a group lasts GROUP_REQUESTS requests, then
//                 the VU starts new ones. Poisoned messages get a group each,
//                 so they hold up no one while they wait for the DLQ.
//   GROUPS_PER_VU message groups per VU at a time (fifo; default 2)
//   GROUP_REQUESTS requests a group lasts (fifo; default 4)
//   RESENDS       times a request's failed, retryable messages are sent again
//                 (same bodies and keys; default 3 with fifo, 0 otherwise)
//
// Poisoned requests still count in message_accepted (the producer takes
// them); the DLQ shows what the consumer rejected.

import exec from 'k6/execution';
import * as lib from './lib.js';

const QUEUE_TYPE = lib.env('QUEUE_TYPE', 'standard');
if (!['standard', 'fifo'].includes(QUEUE_TYPE)) {
  throw new Error(`QUEUE_TYPE must be standard or fifo, got "${QUEUE_TYPE}"`);
}
const FIFO = QUEUE_TYPE === 'fifo';
const DURATION = lib.duration('DURATION', '2h');
const RATE = lib.num('RATE', 5, 0.01);
const BATCH = lib.int('BATCH', FIFO ? 30 : 10, 1, 500);
const GROUPS = lib.int('GROUPS_PER_VU', 2, 1, 100);
const GROUP_REQUESTS = lib.int('GROUP_REQUESTS', 4, 1, 100000);
const RESENDS = lib.int('RESENDS', FIFO ? 3 : 0, 0, 10);
const POISON_RATE = lib.num('POISON_RATE', 0, 0, 1);
const REJECT_MARKER = lib.env('REJECT_MARKER', '');
const SAMPLE_RATE = lib.num('SAMPLE_RATE', 0.02, 0, 1);
const E2E_TIMEOUT = lib.duration('E2E_TIMEOUT', '60s');
const TIMEOUT_S = lib.seconds(E2E_TIMEOUT);
const MAX_POLLS = lib.int('MAX_POLLS', 120, 1, 10000);
const MAX_POLL_INTERVAL_MS = lib.num('MAX_POLL_INTERVAL_MS', 2000, 100);
const E2E_P95_MS = lib.num('E2E_P95_MS', 10000, 1);
const P95_MS = lib.num('P95_MS', 1000, 1);
const MAX_DROPPED_PCT = lib.num('MAX_DROPPED_PCT', 1, 0, 100);
const expected = Math.round(RATE * lib.seconds(DURATION));

if (POISON_RATE > 0 && !REJECT_MARKER) {
  throw new Error('POISON_RATE > 0 needs REJECT_MARKER: the text the consumer is deployed to reject');
}

// Every iteration k where floor((k+1)p) > floor(kp) is poisoned: exactly
// p x iterations of them, spread evenly, the same on every run.
const picked = (k, p) => p > 0 && Math.floor((k + 1) * p) > Math.floor(k * p);

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      ...lib.arrival(RATE),
      duration: DURATION,
      // Most iterations are one POST; a sampled one also polls, up to E2E_TIMEOUT.
      ...lib.vus(RATE, 0.5 + SAMPLE_RATE * 3, 2 * (P95_MS / 1000) + SAMPLE_RATE * TIMEOUT_S + 2),
      gracefulStop: `${Math.ceil(TIMEOUT_S + 15)}s`,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    message_accepted: ['rate>0.99'],
    'http_req_duration{op:post}': [`p(95)<${P95_MS}`],
    dropped_iterations: [`count<=${Math.floor((expected * MAX_DROPPED_PCT) / 100)}`],
    ...(SAMPLE_RATE > 0 ? { e2e_success: ['rate>0.99'], e2e_latency: [`p(95)<${E2E_P95_MS}`] } : {}),
  },
  summaryTrendStats: lib.TREND_STATS,
};

const URL = lib.producerUrl();

export function setup() {
  return lib.setupRun('soak', {
    rate: RATE,
    batch: BATCH,
    queueType: QUEUE_TYPE,
    groups: FIFO ? GROUPS : null,
    groupRequests: FIFO ? GROUP_REQUESTS : null,
    resends: RESENDS,
    duration: DURATION,
    poisonRate: POISON_RATE,
    rejectMarker: POISON_RATE > 0 ? REJECT_MARKER : null,
    sampleRate: SAMPLE_RATE,
    e2eTimeout: E2E_TIMEOUT,
    p95Ms: P95_MS,
    e2eP95Ms: E2E_P95_MS,
  });
}

// This VU's requests so far (a VU runs its iterations one after another, so
// each of its groups is sent in order, resends included).
let vuRequests = 0;

/** FIFO: each message's group and its place in the group's order. */
function group(run, messages, poison) {
  const request = vuRequests++;
  const generation = Math.floor(request / GROUP_REQUESTS);
  const perGroup = Math.ceil(messages.length / GROUPS);
  messages.forEach((m, i) => {
    if (poison) {
      m.messageGroupId = `${run.runId}/poison/${m.seq}`;
      return;
    }
    m.messageGroupId = `${run.runId}/vu${exec.vu.idInTest}/g${i % GROUPS}/${generation}`;
    m.groupSeq = (request % GROUP_REQUESTS) * perGroup + Math.floor(i / GROUPS);
  });
}

export default function (run) {
  const k = exec.scenario.iterationInTest;
  const poison = picked(k, POISON_RATE);
  const messages = lib.makeMessages(run, lib.firstSeq(BATCH), BATCH, poison ? { reject: REJECT_MARKER } : null);
  if (FIFO) group(run, messages, poison);
  if (poison) lib.poisonSent.add(messages.length);
  const sent = RESENDS > 0 ? lib.postMessagesResending(URL, messages, RESENDS) : lib.postMessages(URL, messages);
  // Poison is never stored, so it is never followed.
  if (!poison && sent.accepted.length > 0 && Math.random() < SAMPLE_RATE) {
    lib.awaitStored(URL, sent.accepted[0].id, sent.sentAt, {
      maxPolls: MAX_POLLS,
      deadline: sent.sentAt + TIMEOUT_S * 1000,
      maxIntervalMs: MAX_POLL_INTERVAL_MS,
    });
  }
}

export const handleSummary = lib.summaryHandler('soak');
