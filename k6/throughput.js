// Throughput: POST /messages at a constant arrival rate.
//
//   PRODUCER_URL  producer base URL (required)
//   RATE          requests per second (default 10; fractions allowed, e.g. 0.5)
//   BATCH         messages per request, 1..500 (default 10; 1 sends a bare object)
//   DURATION      how long to keep the rate (default 30s)
//   P95_MS        threshold on the POST p95 latency, ms (default 1000)
//   MAX_DROPPED_PCT  threshold on iterations k6 could not start for lack of
//                 VUs, % of RATE x DURATION (default 1): the rate was not held
//   RUN_ID        tag written into every message body (default throughput-<UTC time>)
//   STEP          ramp step number (k6/ramp.py sets it; 0, the default: no ramp):
//                 the summaries are named throughput-step<N>-<RUN_ID>*.json
//   SEQ_OFFSET    added to every message's seq (default 0), so the steps of one
//                 ramp, which share RUN_ID, never repeat an idempotency key
//   VUS, MAX_VUS, PAYLOAD_BYTES, REQUEST_TIMEOUT, RESULTS_DIR: see README.md
//
// Thresholds: http_req_failed < 1%, message_accepted > 99% (a 207 is a
// successful request whose failed[] still lost messages), POST p95 < P95_MS.

import * as lib from './lib.js';

const RATE = lib.num('RATE', 10, 0.01);
const BATCH = lib.int('BATCH', 10, 1, 500);
const DURATION = lib.duration('DURATION', '30s');
const P95_MS = lib.num('P95_MS', 1000, 1);
const MAX_DROPPED_PCT = lib.num('MAX_DROPPED_PCT', 1, 0, 100);
const STEP = lib.int('STEP', 0, 0, 999);
const SEQ_OFFSET = lib.int('SEQ_OFFSET', 0, 0);
const expected = Math.round(RATE * lib.seconds(DURATION));

export const options = {
  scenarios: {
    throughput: {
      executor: 'constant-arrival-rate',
      ...lib.arrival(RATE),
      duration: DURATION,
      // Typical request: a fraction of the p95 budget; worst: twice the budget.
      ...lib.vus(RATE, Math.min(0.5, P95_MS / 1000), (2 * P95_MS) / 1000),
      gracefulStop: '30s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    message_accepted: ['rate>0.99'],
    'http_req_duration{op:post}': [`p(95)<${P95_MS}`],
    dropped_iterations: [`count<=${Math.floor((expected * MAX_DROPPED_PCT) / 100)}`],
  },
  summaryTrendStats: lib.TREND_STATS,
};

const URL = lib.producerUrl();

export function setup() {
  const settings = { rate: RATE, batch: BATCH, duration: DURATION, p95Ms: P95_MS };
  if (STEP) Object.assign(settings, { step: STEP, seqOffset: SEQ_OFFSET });
  return lib.setupRun('throughput', settings);
}

export default function (run) {
  lib.postMessages(URL, lib.makeMessages(run, SEQ_OFFSET + lib.firstSeq(BATCH), BATCH));
}

export const handleSummary = lib.summaryHandler('throughput', STEP ? `throughput-step${STEP}` : 'throughput');
