// Shared code of the k6 scripts: settings from the environment, the message
// bodies, POST /messages and GET /messages/{messageId}, the metrics, and the
// end-of-test summary (stdout text + JSON files under k6/results/).
//
// Every script tags each message body with the run id and a sequence number
// ({"run","script","seq","vu","sentAt"}), because k6 cannot gather the
// returned messageIds across VUs: an audit finds a run's messages by `run`.

import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

// ---------------------------------------------------------------- settings

/** The raw value of an environment variable, or `dflt` when unset or empty. */
export function env(name, dflt) {
  const v = __ENV[name];
  return v === undefined || v === '' ? dflt : v;
}

/** A number from the environment, within [min, max]; fails the run otherwise. */
export function num(name, dflt, min = -Infinity, max = Infinity) {
  const raw = env(name, undefined);
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new Error(`${name} must be a number in [${min}, ${max}], got "${raw}"`);
  }
  return v;
}

/** An integer from the environment, within [min, max]. */
export function int(name, dflt, min = -Infinity, max = Infinity) {
  const v = num(name, dflt, min, max);
  if (!Number.isInteger(v)) throw new Error(`${name} must be an integer, got "${v}"`);
  return v;
}

/** A k6 duration from the environment ("90s", "2h", "1h30m", "500ms"). */
export function duration(name, dflt) {
  const raw = env(name, dflt);
  seconds(raw, name); // validate early, with the variable's name
  return raw;
}

/** Seconds in a k6 duration string such as "1h30m" or "250ms". */
export function seconds(text, name = 'duration') {
  const unit = { h: 3600, m: 60, s: 1, ms: 0.001 };
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  let match;
  while ((match = re.exec(text)) !== null) {
    total += Number(match[1]) * unit[match[2]];
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== String(text).length) {
    throw new Error(`${name} must be a duration like "20s", "5m" or "2h", got "${text}"`);
  }
  return total;
}

/** The producer's base URL (no trailing slash); the run cannot start without it. */
export function producerUrl() {
  const url = env('PRODUCER_URL', '');
  if (!url) {
    throw new Error('PRODUCER_URL is not set. For the local stack: set -a; . .local/outputs.env; set +a');
  }
  return url.replace(/\/+$/, '');
}

/**
 * `rate`/`timeUnit` of an arrival-rate scenario for `perSecond` requests per
 * second. k6 wants an integer rate, so fractional rates count per minute.
 */
export function arrival(perSecond) {
  if (Number.isInteger(perSecond)) return { rate: perSecond, timeUnit: '1s' };
  const perMinute = Math.round(perSecond * 60);
  if (perMinute < 1) throw new Error(`RATE ${perSecond}/s is below one request a minute`);
  return { rate: perMinute, timeUnit: '1m' };
}

/**
 * VUs for an arrival rate, by Little's law: requests in flight = rate x time
 * each one takes. Pre-allocate for the typical time, allow up to the worst
 * one; VUS and MAX_VUS override.
 */
export function vus(perSecond, typicalSeconds, worstSeconds) {
  // VUs started mid-test can cost dropped iterations while they initialise,
  // so pre-allocate with some slack.
  const pre = int('VUS', Math.ceil(perSecond * typicalSeconds) + 2, 1);
  const most = int('MAX_VUS', Math.max(pre, Math.ceil(perSecond * worstSeconds) + 2), pre);
  return { preAllocatedVUs: pre, maxVUs: most };
}

/** Trend statistics kept in the summaries (the report reads med, p(95) and p(99)). */
export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

/** Pad each message body to about this many bytes (0: no padding). */
const PAYLOAD_BYTES = int('PAYLOAD_BYTES', 0, 0, 256 * 1024);

/** Time-out of one HTTP request (the producer's Lambda timeout is 15 s). */
export const REQUEST_TIMEOUT = env('REQUEST_TIMEOUT', '20s');
/** LEDGER=1: log each acknowledged message id (see postMessages). */
const LEDGER = ['1', 'true'].includes(String(__ENV.LEDGER || ''));

// ---------------------------------------------------------------- metrics

/** Messages put in request bodies. */
export const messagesSent = new Counter('messages_sent');
/** Messages the producer reported as enqueued (accepted[]). */
export const messagesAccepted = new Counter('messages_accepted');
/** Messages not enqueued: failed[] entries, and every message of a request that failed as a whole. */
export const messagesFailed = new Counter('messages_failed');
/** Per message: was it accepted? (a 207 is a successful request with failed messages). */
export const messageAccepted = new Rate('message_accepted');
/** Messages that carry the reject marker (soak.js with POISON_RATE). */
export const poisonSent = new Counter('poison_sent');
/** Messages sent again after the producer reported them failed (RESENDS). */
export const messagesResent = new Counter('messages_resent');

/** Send to stored, from the record's storedAt (consumer clock) minus the body's sentAt. */
export const e2eLatency = new Trend('e2e_latency', true);
/** Send to the first GET that answered 200: e2e_latency plus up to one poll interval. */
export const e2eObserved = new Trend('e2e_observed_latency', true);
/** Messages whose record was read back (GET 200). */
export const e2eStored = new Counter('e2e_stored');
/** Messages still not stored when polling gave up (MAX_POLLS or E2E_TIMEOUT). */
export const e2eTimedOut = new Counter('e2e_timed_out');
/** Per followed message: stored before polling gave up? */
export const e2eSuccess = new Rate('e2e_success');
/** GET answers other than 200 and 404 (errors, not "not yet"). */
export const e2ePollErrors = new Counter('e2e_poll_errors');
/** GETs per followed message. */
export const e2ePolls = new Trend('e2e_polls');

// ---------------------------------------------------------------- the run

/**
 * setup(): checks GET /health, then returns what every VU and handleSummary
 * share: the run id (RUN_ID, or one made here, once, for all VUs) and the
 * settings, so the JSON summary records what was run.
 */
export function setupRun(script, settings) {
  const url = producerUrl();
  const res = http.get(`${url}/health`, {
    tags: { name: 'GET /health', op: 'health' },
    timeout: REQUEST_TIMEOUT,
  });
  if (res.status !== 200) {
    const why = res.status ? `${res.status} ${String(res.body).slice(0, 200)}` : res.error;
    fail(`producer is not healthy: GET ${url}/health answered ${why}`);
  }
  const runId = safeName(env('RUN_ID', '') || stamp(new Date()));
  console.log(`run ${runId}: ${script} against ${url} ${JSON.stringify(settings)}`);
  return { runId, script, producerUrl: url, startedAt: Date.now(), settings };
}

/** The k6 JS runtime's Date, as 20260127T001203Z (sortable, file-name safe). */
export function stamp(date) {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function safeName(text) {
  return String(text)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 100);
}

/**
 * The bodies of one request: `count` messages with consecutive sequence
 * numbers from `seq0`. `extra` is merged into each (e.g. the reject marker);
 * PAYLOAD_BYTES pads each body to about that size.
 */
export function makeMessages(run, seq0, count, extra) {
  const sentAt = Date.now();
  const pad = PAYLOAD_BYTES;
  const out = [];
  for (let i = 0; i < count; i++) {
    const m = {
      run: run.runId,
      script: run.script,
      seq: seq0 + i,
      vu: exec.vu.idInTest,
      sentAt,
    };
    // The producer's per-message idempotency key: a resend of this message
    // (after a lost answer) is stored as the same single record.
    m.idempotencyKey = `${run.runId}/${run.script}/${seq0 + i}`;
    if (extra) Object.assign(m, extra);
    if (pad > 0) {
      const used = JSON.stringify(m).length + 10;
      if (pad > used) m.pad = 'x'.repeat(pad - used);
    }
    out.push(m);
  }
  return out;
}

/** Sequence number of the first message of this iteration (unique in the scenario). */
export function firstSeq(batch) {
  return exec.scenario.iterationInTest * batch;
}

let warnings = 0;
function warnOnce(text) {
  // A few per VU: enough to diagnose, not a flood under an outage.
  if (warnings++ < 3) console.warn(text);
}

/**
 * One POST /messages with `messages` (one object alone, several as an array):
 * the answer's accepted and failed lists (indices into `messages`). With
 * LEDGER=1 it logs each acknowledged message for the audit.
 */
function postOnce(url, messages) {
  const body = messages.length === 1 ? messages[0] : messages;
  const res = http.post(`${url}/messages`, JSON.stringify(body), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'POST /messages', op: 'post' },
    timeout: REQUEST_TIMEOUT,
  });
  let parsed = null;
  if ([202, 207, 413, 422, 500, 503].includes(res.status)) {
    try {
      parsed = res.json();
    } catch (_) {
      parsed = null;
    }
  }
  const accepted = parsed && Array.isArray(parsed.accepted) ? parsed.accepted : [];
  const failed = parsed && Array.isArray(parsed.failed) ? parsed.failed : [];
  check(res, {
    'POST /messages answered 202': (r) => r.status === 202,
    'every message accepted': () => accepted.length === messages.length,
  });
  if (LEDGER) {
    // One line per acknowledged message, for `make audit` (k6 run
    // --log-format=raw --console-output=<ledger>).
    for (const a of accepted) {
      const m = messages[a.index] || {};
      console.log(JSON.stringify({ messageId: a.messageId, id: a.id, key: m.idempotencyKey, poison: Boolean(m.reject) }));
    }
  }
  if (res.status !== 202) {
    const detail = failed.length ? JSON.stringify(failed[0]) : String(res.body || res.error).slice(0, 300);
    warnOnce(`POST /messages answered ${res.status} (${accepted.length}/${messages.length} accepted): ${detail}`);
  }
  // Without a readable answer every message's outcome is unknown.
  const unanswered = parsed ? [] : messages.map((_, index) => ({ index, code: `http_${res.status}`, retryable: true }));
  return { status: res.status, accepted, failed: parsed ? failed : unanswered };
}

/** Counts each message once, as accepted or not. */
function countOutcome(total, acceptedCount) {
  messagesSent.add(total);
  messagesAccepted.add(acceptedCount);
  messagesFailed.add(total - acceptedCount);
  for (let i = 0; i < acceptedCount; i++) messageAccepted.add(true);
  for (let i = acceptedCount; i < total; i++) messageAccepted.add(false);
}

/**
 * POST /messages with `messages` and counts the outcome per message.
 * Returns { status, accepted, failed, sentAt }.
 */
export function postMessages(url, messages) {
  const sentAt = messages[0].sentAt;
  const sent = postOnce(url, messages);
  countOutcome(messages.length, sent.accepted.length);
  return Object.assign(sent, { sentAt });
}

/**
 * postMessages, then, as a client should, the messages that failed and
 * may succeed again, up to `resends` more times (the same bodies, so the
 * same idempotency keys; in request order, so a FIFO group that was held
 * back resumes from its first failure). Returns the same shape, with
 * indices into `messages`.
 */
export function postMessagesResending(url, messages, resends) {
  const sentAt = messages[0].sentAt;
  let pending = messages.map((_, i) => i);
  const accepted = [];
  let failed = [];
  let status = 0;
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 0) {
      messagesResent.add(pending.length);
      sleep(Math.min(0.1 * 2 ** attempt, 2));
    }
    const sent = postOnce(url, pending.map((i) => messages[i]));
    if (attempt === 0) status = sent.status;
    for (const a of sent.accepted) accepted.push(Object.assign({}, a, { index: pending[a.index] }));
    failed = sent.failed.map((f) => Object.assign({}, f, { index: pending[f.index] }));
    if (attempt >= resends) break;
    pending = failed.filter((f) => f.retryable).map((f) => f.index).sort((x, y) => x - y);
  }
  countOutcome(messages.length, accepted.length);
  return { status, accepted, failed, sentAt };
}

/**
 * Polls GET /messages/{id} (the record id the producer answered) until 200, at most `maxPolls` times and
 * until `deadline` (ms since the epoch), waiting 100 ms, then 1.5x longer
 * each time up to `maxIntervalMs`. Records the e2e metrics. Returns the
 * stored record, or null.
 */
export function awaitStored(url, id, sentAt, opts) {
  const { maxPolls, deadline, maxIntervalMs } = opts;
  let interval = 100;
  for (let poll = 1; poll <= maxPolls; poll++) {
    const res = http.get(`${url}/messages/${encodeURIComponent(id)}`, {
      tags: { name: 'GET /messages/{id}', op: 'get' },
      // 404 is "not stored yet", not a failed request.
      responseCallback: http.expectedStatuses(200, 404),
      timeout: REQUEST_TIMEOUT,
    });
    const now = Date.now();
    if (res.status === 200) {
      let record = null;
      try {
        record = res.json();
      } catch (_) {
        record = null;
      }
      const storedAt = record && Date.parse(record.storedAt);
      // storedAt is stamped by the consumer; it is the better measure when
      // the clocks agree (same host locally, NTP on AWS). Keep the observed
      // figure too, which is an upper bound that needs no clock agreement.
      e2eLatency.add(Number.isFinite(storedAt) ? Math.max(0, storedAt - sentAt) : now - sentAt);
      e2eObserved.add(now - sentAt);
      e2eStored.add(1);
      e2eSuccess.add(true);
      e2ePolls.add(poll);
      check(record, { 'stored record has its id': (r) => !!r && r.id === id });
      return record;
    }
    if (res.status !== 404) {
      e2ePollErrors.add(1);
      warnOnce(`GET /messages/${id} answered ${res.status}: ${String(res.body || res.error).slice(0, 200)}`);
    }
    if (poll === maxPolls || now + interval > deadline) break;
    sleep(interval / 1000);
    interval = Math.min(interval * 1.5, maxIntervalMs);
  }
  e2eTimedOut.add(1);
  e2eSuccess.add(false);
  e2ePolls.add(maxPolls);
  return null;
}

// ---------------------------------------------------------------- summary

/** Where summaries go: RESULTS_DIR, else k6/results next to this file. */
function resultsDir() {
  const dir = env('RESULTS_DIR', '');
  if (dir) return dir.replace(/\/+$/, '');
  return decodeURIComponent(import.meta.resolve('./results').replace(/^file:\/\//, '')).replace(/\/+$/, '');
}

/**
 * handleSummary for `script`: the text summary on stdout (k6 prints none of
 * its own once handleSummary exists), the full summary as
 * <name>-<RUN_ID>.json, and <name>-<RUN_ID>-sent.json, the manifest an
 * audit uses to find this run's messages (their bodies' `run` and `seq`).
 * `name` defaults to the script (a ramp step passes throughput-step<N>).
 */
export function summaryHandler(script, name = script) {
  return function handleSummary(data) {
    const run = data.setup_data || { runId: safeName(env('RUN_ID', '') || stamp(new Date())), script };
    const dir = resultsDir();
    const metric = (name, key) => (data.metrics[name] ? data.metrics[name].values[key] : 0);
    const iterations = metric('iterations', 'count');
    const summary = Object.assign({}, data, {
      run: Object.assign({}, run, { endedAt: Date.now() }),
    });
    const manifest = {
      runId: run.runId,
      script,
      producerUrl: run.producerUrl,
      startedAt: run.startedAt,
      endedAt: summary.run.endedAt,
      settings: run.settings,
      messagesSent: metric('messages_sent', 'count'),
      messagesAccepted: metric('messages_accepted', 'count'),
      messagesFailed: metric('messages_failed', 'count'),
      poisonSent: metric('poison_sent', 'count'),
      iterations,
      // Why there is no list of messageIds: k6 VUs share no memory, and files
      // can only be written here. Each body carries {"run": runId, "seq": n};
      // seqFrom <= seq < seqFrom + iterations x batch (iterations that were
      // dropped send nothing; seqFrom is SEQ_OFFSET, 0 but in a ramp step).
      find: {
        bodyField: 'run',
        equals: run.runId,
        seqFrom: (run.settings && run.settings.seqOffset) || 0,
        seqBelow:
          run.settings && run.settings.batch
            ? ((run.settings && run.settings.seqOffset) || 0) + iterations * run.settings.batch
            : null,
      },
    };
    return {
      stdout: textSummary(data, run),
      [`${dir}/${name}-${run.runId}.json`]: JSON.stringify(summary, null, 2),
      [`${dir}/${name}-${run.runId}-sent.json`]: JSON.stringify(manifest, null, 2),
    };
  };
}

// The k6 sub-timings are left out of the text (they are in the JSON file).
const QUIET =
  /^(http_req_(blocked|connecting|tls_handshaking|sending|receiving|waiting)|data_(sent|received)|iteration_duration)($|\{)/;

/** A compact text summary in the spirit of k6's own. */
export function textSummary(data, run) {
  const lines = [''];
  const ok = (t) => (t.ok ? '✓' : '✗');
  lines.push(`  █ ${run.script || 'run'} ${run.runId || ''}`.trimEnd());
  lines.push('');
  const names = Object.keys(data.metrics).sort();
  const withThresholds = names.filter((n) => data.metrics[n].thresholds);
  if (withThresholds.length) {
    lines.push('  THRESHOLDS');
    for (const name of withThresholds) {
      const m = data.metrics[name];
      for (const [expr, t] of Object.entries(m.thresholds)) {
        lines.push(`    ${ok(t)} ${name} '${expr}' ${thresholdValue(m, expr)}`);
      }
    }
    lines.push('');
  }
  const checks = collectChecks(data.root_group);
  if (checks.length) {
    lines.push('  CHECKS');
    for (const c of checks) {
      const total = c.passes + c.fails;
      lines.push(`    ${c.fails ? '✗' : '✓'} ${c.name}: ${c.passes}/${total}`);
    }
    lines.push('');
  }
  lines.push('  METRICS');
  const width = Math.max(...names.map((n) => n.length)) + 2;
  for (const name of names) {
    if (QUIET.test(name)) continue;
    const m = data.metrics[name];
    lines.push(`    ${(name + ' ').padEnd(width, '.')} ${formatValues(m)}`);
  }
  lines.push('');
  return lines.join('\n') + '\n';
}

function collectChecks(group) {
  if (!group) return [];
  const out = (group.checks || []).slice();
  for (const g of group.groups || []) out.push(...collectChecks(g));
  return out;
}

function thresholdValue(m, expr) {
  const stat = expr.split(/[<>=!]/)[0].trim();
  if (stat in m.values) return `${stat}=${formatOne(m, stat, m.values[stat])}`;
  return '';
}

function formatOne(m, key, v) {
  if (m.type === 'rate' && key === 'rate') return `${(v * 100).toFixed(2)}%`;
  if (m.type === 'counter' && key === 'rate') return `${v.toFixed(2)}/s`;
  if (m.contains === 'time' && key !== 'count') return ms(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function formatValues(m) {
  const v = m.values;
  switch (m.type) {
    case 'counter':
      return `${v.count} (${formatOne(m, 'rate', v.rate)})`;
    case 'rate':
      return `${formatOne(m, 'rate', v.rate)} (${v.passes} of ${v.passes + v.fails})`;
    case 'gauge':
      return `${formatOne(m, 'value', v.value)} min=${formatOne(m, 'min', v.min)} max=${formatOne(m, 'max', v.max)}`;
    default: {
      // Sub-metrics list their stats in another order; use the configured one.
      const order = TREND_STATS.filter((k) => k in v).concat(Object.keys(v).filter((k) => !TREND_STATS.includes(k)));
      return order.map((k) => `${k}=${formatOne(m, k, v[k])}`).join(' ');
    }
  }
}

function ms(v) {
  if (v >= 60000) return `${(v / 60000).toFixed(2)}m`;
  if (v >= 1000) return `${(v / 1000).toFixed(2)}s`;
  return `${v.toFixed(2)}ms`;
}
