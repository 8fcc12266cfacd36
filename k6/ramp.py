#!/usr/bin/env python3
"""The throughput ramp of `make load`: steps of k6/throughput.js at a rising
arrival rate until one is not held, judged on the producer's answers AND on
the queue, so "held" means the whole pipeline kept up, not only the API.

  ramp.py run --run-id ID [--results DIR]   run the ramp; writes
                                           DIR/throughput-ramp-<ID>.json
  ramp.py --help

One k6 process per step (throughput.js with STEP and SEQ_OFFSET, so every
message of the ramp has its own idempotency key under the one RUN_ID).
While a step runs, the queue's depth (ApproximateNumberOfMessages + NotVisible
+ Delayed) is read every second. A step is held when all of these hold:

  - POST /messages p95 below P95_MS;
  - messages not accepted (failed requests and failed[] entries) at most
    MAX_ERROR_PCT of those sent;
  - k6 dropped at most MAX_DROPPED_PCT of the step's iterations (it could not
    start them on time: the offered rate was not reached). Each step
    pre-allocates VUs for the rate at the p95 bound (Little's law), so
    drops mean requests slower than the bound, not VUs starting late;
  - the backlog grew by at most max(BACKLOG_SLACK, MAX_BACKLOG_PCT x the
    messages accepted in the step): the consumer drained about as fast as
    messages arrived. The growth is the least-squares slope of the samples
    taken while messages arrived, times the step's duration, since a single
    sample swings by a few batches (in flight one moment, deleted the next).

Why the queue depth and not its age: ministack answers the depth
attributes truthfully (they are its in-memory counts) but SQS has no
ApproximateAgeOfOldestMessage attribute (it is a CloudWatch metric, which
the emulator does not produce). Growth of the backlog over a step is what a
rising age would show: arrivals faster than departures.

The ramp stops at the first step not held, or before a step that would pass
RAMP_MAX (msg/s) or end after RAMP_BUDGET seconds; every k6 step is killed
if it overruns its duration by 60 s. The merged JSON has the shape of a k6
summary (counts summed over the steps; latency of the highest held step), so
report.py reads it as the throughput phase, plus a "ramp" object with every
step and the verdict.

Env (defaults; load.sh sets smaller ones for --smoke): RAMP_START [100],
RAMP_STEP [100], RAMP_MAX [2000] messages/s; STEP_DURATION [15s];
RAMP_BUDGET [150] seconds; BATCH [10] messages per request; P95_MS [1000];
MAX_ERROR_PCT [1]; MAX_DROPPED_PCT [1]; BACKLOG_SLACK [100] messages;
MAX_BACKLOG_PCT [5]; K6 (path of k6, default .venv/bin/k6); PRODUCER_URL,
QUEUE_URL and the rest of .local/outputs.env.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
# Extra time a step may take past its duration (k6 setup, gracefulStop 30 s,
# summary) before it is killed.
STEP_GRACE_S = 60


# ---------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Settings:
    """The ramp's schedule and the bounds a step is judged on."""

    start: float = 100.0  # messages/s of the first step
    step: float = 100.0  # added each step, messages/s
    max_rate: float = 2000.0  # no step above this, messages/s
    step_s: float = 15.0  # each step's duration
    budget_s: float = 150.0  # no step may end later than this after the first began
    batch: int = 10  # messages per request
    p95_ms: float = 1000.0
    max_error_pct: float = 1.0
    max_dropped_pct: float = 1.0
    backlog_slack: int = 100  # messages: noise of in-flight batches and of when a sample falls
    max_backlog_pct: float = 5.0

    def rates(self) -> list[float]:
        """The offered rates of the steps, in messages/s, at most RAMP_MAX."""
        out, r = [], self.start
        while r <= self.max_rate + 1e-9 and len(out) < 1000:
            out.append(round(r, 3))
            r += self.step
        return out


def _num(name: str, dflt: float, lo: float, hi: float = math.inf) -> float:
    raw = os.environ.get(name, "")
    if raw == "":
        return dflt
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not (lo <= v <= hi):
        sys.exit(f"ramp.py: {name} must be a number in [{lo}, {hi}], got {raw!r}")
    return v


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "h": 3600, "m": 60, "s": 1}
    for unit in ("ms", "h", "m", "s"):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * units[unit]
            except ValueError:
                break
    sys.exit(f'ramp.py: STEP_DURATION must be a duration like "15s" or "1m", got {text!r}')


def settings_from_env() -> Settings:
    s = Settings(
        start=_num("RAMP_START", 100, 0.1),
        step=_num("RAMP_STEP", 100, 0.1),
        max_rate=_num("RAMP_MAX", 2000, 0.1),
        step_s=_seconds(os.environ.get("STEP_DURATION") or "15s"),
        budget_s=_num("RAMP_BUDGET", 150, 1, 3600),
        batch=int(_num("BATCH", 10, 1, 500)),
        p95_ms=_num("P95_MS", 1000, 1),
        max_error_pct=_num("MAX_ERROR_PCT", 1, 0, 100),
        max_dropped_pct=_num("MAX_DROPPED_PCT", 1, 0, 100),
        backlog_slack=int(_num("BACKLOG_SLACK", 100, 0)),
        max_backlog_pct=_num("MAX_BACKLOG_PCT", 5, 0, 100),
    )
    if s.start > s.max_rate:
        sys.exit(f"ramp.py: RAMP_START ({s.start:g}) is above RAMP_MAX ({s.max_rate:g})")
    if not 1 <= s.step_s <= 600:
        sys.exit(f"ramp.py: STEP_DURATION must be 1s..10m, got {s.step_s:g}s")
    return s


# ---------------------------------------------------------------- judging


def metric(summary: dict, name: str, key: str, default=0):
    m = summary.get("metrics", {}).get(name) or {}
    v = m.get("values", {}).get(key)
    return default if v is None else v


def judge(s: Settings, rate: float, summary: dict, backlog: list[tuple[float, int]]) -> dict:
    """The figures of one step and why it was not held (an empty list: held).

    `backlog` is [(seconds since the step began, queue depth)], the first
    sample taken before k6 started, the others once a second while it sent."""
    sent = metric(summary, "messages_sent", "count")
    accepted = metric(summary, "messages_accepted", "count")
    not_accepted = metric(summary, "messages_failed", "count")
    requests = metric(summary, "http_req_duration{op:post}", "count")
    dropped = metric(summary, "dropped_iterations", "count")
    p50 = metric(summary, "http_req_duration{op:post}", "med", None)
    p95 = metric(summary, "http_req_duration{op:post}", "p(95)", None)
    p99 = metric(summary, "http_req_duration{op:post}", "p(99)", None)
    expected_iterations = rate / s.batch * s.step_s
    error_pct = 100.0 * not_accepted / sent if sent else 100.0
    dropped_pct = 100.0 * dropped / expected_iterations if expected_iterations else 0.0
    start_depth = backlog[0][1] if backlog else 0
    end_depth = backlog[-1][1] if backlog else 0
    slope = growth_per_s(backlog)
    growth = round(slope * s.step_s)
    allowed = max(s.backlog_slack, s.max_backlog_pct / 100.0 * accepted)
    why = []
    if not requests:
        why.append("no request was answered")
    if p95 is None or p95 >= s.p95_ms:
        why.append(f"POST p95 {p95 or 0:.0f} ms >= {s.p95_ms:g} ms")
    if error_pct > s.max_error_pct:
        why.append(f"{error_pct:.2f}% of messages not accepted > {s.max_error_pct:g}%")
    if dropped_pct > s.max_dropped_pct:
        why.append(f"k6 dropped {dropped:.0f} iterations ({dropped_pct:.1f}%) > {s.max_dropped_pct:g}%: rate not offered")
    if growth > allowed:
        why.append(f"queue backlog grew by {growth} messages > {allowed:.0f} allowed: the consumer fell behind")
    return {
        "offered": rate,
        "requestRate": rate / s.batch,
        "durationS": s.step_s,
        "requests": requests,
        "messagesSent": sent,
        "messagesAccepted": accepted,
        "messagesFailed": not_accepted,
        "acceptedPerS": accepted / s.step_s,
        "errorPct": error_pct,
        "dropped": dropped,
        "droppedPct": dropped_pct,
        "post": {"p50": p50, "p95": p95, "p99": p99},
        "backlogStart": start_depth,
        "backlogEnd": end_depth,
        "backlogMax": max((d for _, d in backlog), default=0),
        "backlogGrowth": growth,
        "backlogGrowthPerS": slope,
        "backlogAllowed": allowed,
        "backlogSamples": [[round(t, 1), d] for t, d in backlog],
        "held": not why,
        "why": why,
    }


def growth_per_s(backlog: list[tuple[float, int]]) -> float:
    """Least-squares slope of depth over time, messages/s (0 for fewer than 3 samples)."""
    if len(backlog) < 3 or len({t for t, _ in backlog}) < 2:
        return 0.0
    return statistics.linear_regression([t for t, _ in backlog], [d for _, d in backlog]).slope


# ---------------------------------------------------------------- the ramp


def ramp(s: Settings, run_step: Callable[[int, float, int], dict], clock=time.monotonic) -> dict:
    """Runs steps until one is not held, RAMP_MAX or the budget. `run_step(n,
    rate, seq_offset)` runs step n and returns judge()'s dict, plus
    "summary" (the k6 summary) and "startedAt"/"endedAt" (epoch ms)."""
    steps: list[dict] = []
    load_before = os.getloadavg()[0]
    began = clock()
    stop = "RAMP_MAX reached with every step held: the ceiling is higher; raise RAMP_MAX"
    for n, rate in enumerate(s.rates(), start=1):
        # Each step needs its duration and a few seconds of k6 start and summary.
        if clock() - began + s.step_s + 2 > s.budget_s:
            stop = f"RAMP_BUDGET ({s.budget_s:g} s) spent before the next step ({rate:g} msg/s)"
            break
        step = run_step(n, rate, n * 10_000_000)
        step["step"] = n
        steps.append(step)
        if not step["held"]:
            stop = f"step {n} ({rate:g} msg/s) not held: " + "; ".join(step["why"])
            break
    held = [st for st in steps if st["held"]]
    best = held[-1] if held else None
    return {
        "settings": dataclasses.asdict(s),
        "steps": steps,
        "highestHeld": best["offered"] if best else None,
        "highestHeldAcceptedPerS": best["acceptedPerS"] if best else None,
        "highestHeldStep": best["step"] if best else None,
        "stop": stop,
        "elapsedS": clock() - began,
        # The 1-minute load average before and after: on 2 shared cores, other
        # work (a build) lowers what the ramp can hold.
        "loadAvg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def k6_step_runner(s: Settings, run_id: str, results: Path, sqs, queue_url: str, k6: str):
    """run_step for ramp(): throughput.js as a k6 process, the queue sampled every second."""
    import report  # noqa: PLC0415 - botocore and the stack's env, only for a real run

    def depth(sqs, url: str) -> int:
        return report.depth(sqs, url)["total"]

    def run_step(n: int, rate: float, seq_offset: int) -> dict:
        log = results / f".throughput-step{n}-{run_id}.log"
        env = dict(
            os.environ,
            RATE=f"{rate / s.batch:g}",
            BATCH=str(s.batch),
            DURATION=f"{s.step_s:g}s",
            P95_MS=f"{s.p95_ms:g}",
            MAX_DROPPED_PCT=f"{s.max_dropped_pct:g}",
            STEP=str(n),
            SEQ_OFFSET=str(seq_offset),
            RUN_ID=run_id,
            RESULTS_DIR=str(results),
        )
        # Every VU a step may need, allocated before it starts: one started
        # mid-step costs dropped iterations while it initialises, which on 2
        # busy cores would stop the ramp for the load generator's sake.
        # Little's law at the p95 bound; up to twice that. VUS/MAX_VUS win.
        req_rate = rate / s.batch
        env.setdefault("VUS", str(math.ceil(req_rate * s.p95_ms / 1000) + 2))
        env.setdefault("MAX_VUS", str(max(int(env["VUS"]), math.ceil(req_rate * 2 * s.p95_ms / 1000) + 2)))
        t0 = time.monotonic()
        samples = [(0.0, depth(sqs, queue_url))]
        started_at = int(time.time() * 1000)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [k6, "run", "--no-usage-report", "--quiet", str(HERE / "throughput.js")],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )
            deadline = t0 + s.step_s + STEP_GRACE_S
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0) % 1.0))
                # Only while messages arrive: after the step's duration k6 is
                # finishing the last requests and the queue drains.
                if time.monotonic() - t0 <= s.step_s + 0.5:
                    samples.append((time.monotonic() - t0, depth(sqs, queue_url)))
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        code = proc.returncode
        path = results / f"throughput-step{n}-{run_id}.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
        step = judge(s, rate, summary, samples)
        # 99: a threshold crossed, which judge() has already reported.
        if code not in (0, 99):
            step["held"] = False
            step["why"].append(f"k6 exited {code} (see {log.name})")
        else:
            log.unlink(missing_ok=True)
        step["summary"] = summary
        step["k6Exit"] = code
        step["startedAt"] = (summary.get("run") or {}).get("startedAt", started_at)
        step["endedAt"] = (summary.get("run") or {}).get("endedAt", int(time.time() * 1000))
        print(step_line(n, s, step), file=sys.stderr, flush=True)
        return step

    return run_step


def step_line(n: int, s: Settings, st: dict) -> str:
    p95 = st["post"]["p95"]
    return (
        f"    step {n}: {st['offered']:g} msg/s ({st['requestRate']:g} req/s x {s.batch}) for {s.step_s:g}s: "
        f"accepted {st['acceptedPerS']:.1f}/s, p95 {p95 or 0:.0f} ms, not accepted {st['errorPct']:.2f}%, "
        f"dropped {st['dropped']:.0f}, backlog {st['backlogStart']} -> {st['backlogEnd']} (max {st['backlogMax']}, "
        f"trend {st['backlogGrowthPerS']:+.1f}/s): "
        + ("held" if st["held"] else "NOT held: " + "; ".join(st["why"]))
    )


def merged_summary(result: dict, run_id: str) -> dict:
    """One k6-summary-shaped dict for the whole ramp, for report.py's throughput phase."""
    steps = result["steps"]
    s = result["settings"]

    def total(name, key):
        return sum(metric(st["summary"], name, key) for st in steps)

    best = next((st for st in steps if st["step"] == result["highestHeldStep"]), None)
    post = best["post"] if best else {"p50": None, "p95": None, "p99": None}
    checks = {}
    for st in steps:
        for c in (st["summary"].get("root_group") or {}).get("checks", []):
            agg = checks.setdefault(c["name"], {"name": c["name"], "passes": 0, "fails": 0})
            agg["passes"] += c["passes"]
            agg["fails"] += c["fails"]
    posts = total("http_req_duration{op:post}", "count")
    failed = total("http_req_failed", "passes")
    return {
        "run": {
            "runId": run_id,
            "script": "throughput",
            "startedAt": steps[0]["startedAt"] if steps else int(time.time() * 1000),
            "endedAt": steps[-1]["endedAt"] if steps else int(time.time() * 1000),
            "settings": {
                "rate": "ramp",
                "batch": s["batch"],
                "duration": f"{len(steps) * s['step_s']:g}s",
            },
        },
        "metrics": {
            "messages_sent": {"values": {"count": total("messages_sent", "count")}},
            "messages_accepted": {"values": {"count": total("messages_accepted", "count")}},
            "messages_failed": {"values": {"count": total("messages_failed", "count")}},
            "http_req_failed": {"values": {"passes": failed, "rate": failed / posts if posts else 0}},
            "dropped_iterations": {"values": {"count": total("dropped_iterations", "count")}},
            "http_req_duration{op:post}": {
                "values": {"count": posts, "med": post["p50"], "p(95)": post["p95"], "p(99)": post["p99"]}
            },
        },
        "root_group": {"checks": list(checks.values())},
        "ramp": {**result, "steps": [{k: v for k, v in st.items() if k != "summary"} for st in steps]},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--run-id", required=True)
    r.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    import report  # noqa: PLC0415 - botocore and the stack's env, only for a real run

    s = settings_from_env()
    sqs, _, _ = report.clients()
    queue_url = report.need("QUEUE_URL")
    report.need("PRODUCER_URL")
    k6 = os.environ.get("K6") or str(HERE.parent / ".venv" / "bin" / "k6")
    args.results.mkdir(parents=True, exist_ok=True)
    rates = s.rates()
    print(
        f"    ramp: {len(rates)} step(s) at most, {rates[0]:g} to {rates[-1]:g} msg/s in steps of {s.step:g}, "
        f"{s.step_s:g}s each, within {s.budget_s:g}s; held = p95 < {s.p95_ms:g} ms, not accepted <= "
        f"{s.max_error_pct:g}%, dropped <= {s.max_dropped_pct:g}%, backlog growth <= max({s.backlog_slack}, "
        f"{s.max_backlog_pct:g}% of accepted)",
        file=sys.stderr,
        flush=True,
    )
    result = ramp(s, k6_step_runner(s, args.run_id, args.results, sqs, queue_url, k6))
    out = args.results / f"throughput-ramp-{args.run_id}.json"
    out.write_text(json.dumps(merged_summary(result, args.run_id), indent=2))
    held = result["highestHeld"]
    print(f"    ramp: highest rate held {held:g} msg/s; {result['stop']}" if held is not None
          else f"    ramp: no step held; {result['stop']}", file=sys.stderr)
    print(out)
    return 0 if result["steps"] else 1


if __name__ == "__main__":
    sys.exit(main())
