// End to end: POST messages, then poll GET /messages/{messageId} until the
// consumer has stored each one (200), recording send-to-stored latency.
//
//   PRODUCER_URL  producer base URL (required)
//   RATE          requests per second (default 2)
//   BATCH         messages per request, each one followed (default 1)
//   DURATION      how long to keep sending (default 30s); the run then waits
//                 up to E2E_TIMEOUT for the last messages to be stored
//   E2E_TIMEOUT   give up on a message after this long (default 30s)
//   MAX_POLLS     give up on a message after this many GETs (default 60)
//   MAX_POLL_INTERVAL_MS  polls start 100 ms apart and back off 1.5x to this (default 1000)
//   E2E_P95_MS    threshold on the e2e_latency p95, ms (default 5000)
//   P95_MS        threshold on the POST p95 latency, ms (default 1000)
//   RUN_ID, VUS, MAX_VUS, PAYLOAD_BYTES, REQUEST_TIMEOUT, RESULTS_DIR: see README.md
//
// Metrics: e2e_latency (storedAt minus sentAt), e2e_observed_latency (until
// the GET saw it), e2e_stored / e2e_timed_out (counters), e2e_success (rate).

import * as lib from './lib.js';

const RATE = lib.num('RATE', 2, 0.01);
const BATCH = lib.int('BATCH', 1, 1, 500);
const DURATION = lib.duration('DURATION', '30s');
const E2E_TIMEOUT = lib.duration('E2E_TIMEOUT', '30s');
const TIMEOUT_S = lib.seconds(E2E_TIMEOUT);
const MAX_POLLS = lib.int('MAX_POLLS', 60, 1, 10000);
const MAX_POLL_INTERVAL_MS = lib.num('MAX_POLL_INTERVAL_MS', 1000, 100);
const E2E_P95_MS = lib.num('E2E_P95_MS', 5000, 1);
const P95_MS = lib.num('P95_MS', 1000, 1);

export const options = {
  scenarios: {
    e2e: {
      executor: 'constant-arrival-rate',
      ...lib.arrival(RATE),
      duration: DURATION,
      // An iteration lasts until its messages are stored: a few seconds
      // typically, E2E_TIMEOUT at worst.
      ...lib.vus(RATE, 3, TIMEOUT_S + 2),
      // Let the last iterations finish polling instead of cutting them off.
      gracefulStop: `${Math.ceil(TIMEOUT_S + 15)}s`,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    message_accepted: ['rate>0.99'],
    'http_req_duration{op:post}': [`p(95)<${P95_MS}`],
    e2e_success: ['rate>0.99'],
    e2e_latency: [`p(95)<${E2E_P95_MS}`],
  },
  summaryTrendStats: lib.TREND_STATS,
};

const URL = lib.producerUrl();

export function setup() {
  return lib.setupRun('e2e', {
    rate: RATE,
    batch: BATCH,
    duration: DURATION,
    e2eTimeout: E2E_TIMEOUT,
    maxPolls: MAX_POLLS,
    e2eP95Ms: E2E_P95_MS,
    p95Ms: P95_MS,
  });
}

export default function (run) {
  const sent = lib.postMessages(URL, lib.makeMessages(run, lib.firstSeq(BATCH), BATCH));
  // One deadline for the whole request: by then every message should be in.
  const deadline = sent.sentAt + TIMEOUT_S * 1000;
  for (const a of sent.accepted) {
    lib.awaitStored(URL, a.id, sent.sentAt, {
      maxPolls: MAX_POLLS,
      deadline,
      maxIntervalMs: MAX_POLL_INTERVAL_MS,
    });
  }
}

export const handleSummary = lib.summaryHandler('e2e');
