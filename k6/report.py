#!/usr/bin/env python3
"""Queue, DLQ and table checks around a k6 run, and the report of load.sh.

Subcommands (all read the stack from the environment: ENDPOINT or
AWS_ENDPOINT_URL, QUEUE_URL, DLQ_URL, TABLE_NAME, BUCKET_NAME, AWS_REGION):

  snapshot            print {"at", "queue", "dlq"} message counts as JSON
  drain --timeout S   wait until the queue holds nothing (visible, in flight
                      or delayed), printing progress; exit 1 on time-out
  report ...          count what was stored, audit a sample, print the tables
                      (the ramp's steps, the highest rate held beside the
                      emulator's ceiling), write load-<stamp>.md, .svg and .json
  render JSON...      write the .md and .svg of load-<stamp>.json files again
                      (after a change to the report; no stack needed)

How "stored" is counted: every DynamoDB item carries storedAt, stamped by
the consumer (RFC 3339, milliseconds, UTC, so it sorts as text). The report
scans the table for storedAt >= the first send of the run, keeping only
storedAt (a few dozen bytes an item), and splits the items by phase: the
throughput phase's messages are all stored before the e2e phase starts,
because load.sh waits for the queue to drain in between. A bounded sample of
the items is then read back from S3 to check that their bodies carry this
run's id: anything else writing to the same table in the same minutes would
show up there. Items do not hold the body (and so not the run id), which is
why the count is by time window and the run id is checked on a sample.

The standard library, botocore (installed with the awscli in .venv) and
infra/reportlib.py (the tables and the matplotlib chart, shared with the bench).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
from botocore.config import Config

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("reportlib", HERE.parent / "infra" / "reportlib.py")
reportlib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reportlib)


# ---------------------------------------------------------------- AWS


def clients():
    endpoint = os.environ.get("ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION", "us-east-1")
    if endpoint and ("127.0.0.1" in endpoint or "localhost" in endpoint):
        # The emulator takes any key; infra/local/lib.sh uses these.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    session = botocore.session.get_session()
    cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})

    def make(name):
        return session.create_client(name, region_name=region, endpoint_url=endpoint, config=cfg)

    return make("sqs"), make("dynamodb"), make("s3")


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"report.py: {name} is not set (source .local/outputs.env)")
    return value


def depth(sqs, url: str) -> dict:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    visible = int(attrs.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    delayed = int(attrs.get("ApproximateNumberOfMessagesDelayed", 0))
    return {"visible": visible, "inFlight": in_flight, "delayed": delayed, "total": visible + in_flight + delayed}


def snapshot(sqs) -> dict:
    return {
        "at": int(time.time() * 1000),
        "queue": depth(sqs, need("QUEUE_URL")),
        "dlq": depth(sqs, need("DLQ_URL")),
    }


def drain(sqs, timeout: float, quiet_polls: int = 2) -> bool:
    """Waits until the queue reads empty `quiet_polls` times in a row."""
    url = need("QUEUE_URL")
    start = time.monotonic()
    zero = 0
    last_print = -10.0
    while True:
        d = depth(sqs, url)
        elapsed = time.monotonic() - start
        zero = zero + 1 if d["total"] == 0 else 0
        if zero >= quiet_polls:
            print(f"    queue drained after {elapsed:.0f}s", file=sys.stderr)
            return True
        if elapsed - last_print >= 3 and d["total"]:
            print(
                f"    queue: {d['visible']} visible, {d['inFlight']} in flight, "
                f"{d['delayed']} delayed ({elapsed:.0f}s of {timeout:.0f}s)",
                file=sys.stderr,
            )
            last_print = elapsed
        if elapsed >= timeout:
            print(f"    queue not empty after {timeout:.0f}s: {d}", file=sys.stderr)
            if d["inFlight"] and not d["visible"]:
                vt = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
                print(
                    "    messages stuck in flight usually mean a lost invocation (a crashed or replaced "
                    f"consumer); SQS hands them out again after the VisibilityTimeout ({vt.get('VisibilityTimeout')} s)",
                    file=sys.stderr,
                )
            return False
        time.sleep(1)


def iso_ms(epoch_ms: int) -> str:
    t = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> int:
    t = dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(t.timestamp() * 1000)


def stored_since(ddb, since_ms: int, limit_items: int) -> list[tuple[int, str]]:
    """(storedAt ms, s3Key) of every item stored at or after since_ms."""
    table = need("TABLE_NAME")
    out: list[tuple[int, str]] = []
    kwargs = {
        "TableName": table,
        "FilterExpression": "storedAt >= :t",
        "ExpressionAttributeValues": {":t": {"S": iso_ms(since_ms)}},
        "ProjectionExpression": "storedAt, s3Key",
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            out.append((parse_iso(item["storedAt"]["S"]), item.get("s3Key", {}).get("S", "")))
        key = page.get("LastEvaluatedKey")
        if not key or len(out) >= limit_items:
            return out
        kwargs["ExclusiveStartKey"] = key


def audit(s3, keys: list[str], run_id: str, script: str, size: int) -> dict:
    """Reads up to `size` of the objects; counts those whose body is from run_id's `script` phase."""
    bucket = need("BUCKET_NAME")
    sample = random.sample(keys, min(size, len(keys)))
    ours = 0
    foreign = []
    for key in sample:
        try:
            obj = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            body = obj.get("body")
            run, by = (body.get("run"), body.get("script")) if isinstance(body, dict) else (None, None)
        except Exception as err:  # noqa: BLE001 - reported, not fatal
            run, by = f"<unreadable: {err}>", None
        # Both phases share RUN_ID; a late message of the other phase is not this one's.
        if run == run_id and by == script:
            ours += 1
        else:
            foreign.append({"key": key, "run": run, "script": by})
    return {"sampled": len(sample), "ours": ours, "foreign": foreign[:5], "foreignKeys": [f["key"] for f in foreign]}


# ---------------------------------------------------------------- k6 summaries


def load(path: str | None) -> dict | None:
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def metric(summary: dict | None, name: str, key: str, default=None):
    if not summary:
        return default
    m = summary.get("metrics", {}).get(name)
    if not m:
        return default
    return m.get("values", {}).get(key, default)


def seconds(text: str) -> float:
    units = {"ms": 0.001, "h": 3600, "m": 60, "s": 1}
    total, num = 0.0, ""
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            num += c
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else c
        total += float(num) * units[unit]
        num = ""
        i += len(unit)
    return total


def failed_thresholds(summary: dict | None) -> list[str]:
    out = []
    for name, m in (summary or {}).get("metrics", {}).items():
        for expr, t in (m.get("thresholds") or {}).items():
            if not t.get("ok", True):
                out.append(f"{name} {expr}")
    return out


# ---------------------------------------------------------------- report


def fmt_ms(v) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def fmt_num(v, digits=1) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}" if isinstance(v, float) and not float(v).is_integer() else f"{int(v):,}"


def git_describe() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except Exception:  # noqa: BLE001
        return "unknown"


def build(args) -> dict:
    sqs, ddb, s3 = clients()
    tp = load(args.throughput)
    e2e = load(args.e2e)
    before = load(args.before) or {"dlq": {"total": 0}}
    after = snapshot(sqs)

    if not tp and not e2e:
        sys.exit("report.py: neither k6 summary exists; did k6 run at all?")
    tp_start = tp["run"]["startedAt"] if tp else None
    e2e_start = e2e["run"]["startedAt"] if e2e else None
    first = min(t for t in (tp_start, e2e_start) if t is not None)
    items = stored_since(ddb, first, args.max_items)

    def window(lo, hi):
        return [(t, k) for (t, k) in items if lo is not None and t >= lo and (hi is None or t < hi)]

    tp_items = window(tp_start, e2e_start)
    e2e_items = window(e2e_start, None)

    phases = {}
    for name, summary, got in (("throughput", tp, tp_items), ("e2e", e2e, e2e_items)):
        if not summary:
            continue
        settings = summary["run"].get("settings", {})
        dur = seconds(settings.get("duration", "0s")) or 1
        start = summary["run"]["startedAt"]
        posts = metric(summary, "http_req_duration{op:post}", "count", 0)
        ok_posts = next(
            (
                c["passes"]
                for c in summary.get("root_group", {}).get("checks", [])
                if c["name"] == "POST /messages answered 202"
            ),
            None,
        )
        keys = [k for _, k in got if k]
        checked = audit(s3, keys, summary["run"]["runId"], name, args.audit)
        # Every body read: count exactly ours. Else the window count, and the
        # sample says whether anything else is in it.
        exact = checked["sampled"] == len(got)
        ours = checked["ours"] if exact else len(got)
        foreign = set(checked.pop("foreignKeys"))
        last_stored = max((t for t, k in got if k not in foreign), default=None)
        span = (last_stored - start) / 1000 if last_stored else None
        phases[name] = {
            "settings": settings,
            "durationS": dur,
            "requests": posts,
            "requestsAccepted": ok_posts,
            "requestsAcceptedPerS": (ok_posts or 0) / dur,
            "messagesSent": metric(summary, "messages_sent", "count", 0),
            "messagesAccepted": metric(summary, "messages_accepted", "count", 0),
            "messagesAcceptedPerS": metric(summary, "messages_accepted", "count", 0) / dur,
            "messagesFailed": metric(summary, "messages_failed", "count", 0),
            "httpFailedRate": metric(summary, "http_req_failed", "rate", 0),
            "httpFailed": metric(summary, "http_req_failed", "passes", 0),
            "dropped": metric(summary, "dropped_iterations", "count", 0),
            "post": {
                p: metric(summary, "http_req_duration{op:post}", k)
                for p, k in (("p50", "med"), ("p95", "p(95)"), ("p99", "p(99)"))
            },
            "stored": ours,
            "storedInWindow": len(got),
            "storedExact": exact,
            "storedPerS": ours / span if span and span > 0 else None,
            "storeSpanS": span,
            "audit": checked,
            "thresholdsFailed": failed_thresholds(summary),
        }
        if name == "e2e":
            phases[name]["e2e"] = {
                p: metric(summary, "e2e_latency", k) for p, k in (("p50", "med"), ("p95", "p(95)"), ("p99", "p(99)"))
            }
            phases[name]["observed"] = {
                p: metric(summary, "e2e_observed_latency", k)
                for p, k in (("p50", "med"), ("p95", "p(95)"), ("p99", "p(99)"))
            }
            phases[name]["e2eStored"] = metric(summary, "e2e_stored", "count", 0)
            phases[name]["e2eTimedOut"] = metric(summary, "e2e_timed_out", "count", 0)
            phases[name]["pollErrors"] = metric(summary, "e2e_poll_errors", "count", 0)

    accepted = sum(p["messagesAccepted"] for p in phases.values())
    stored = sum(p["stored"] for p in phases.values())
    dlq = after["dlq"]["total"] - before["dlq"]["total"]
    ramp = (tp or {}).get("ramp")
    ceiling = {"messagesPerS": args.ceiling, "seconds": args.ceiling_seconds} if args.ceiling else None
    held = ramp.get("highestHeld") if ramp else None
    return {
        "runId": args.run_id,
        "stamp": args.stamp,
        "ramp": ramp,
        "ceiling": ceiling,
        "held": {
            "messagesPerS": held,
            "ceilingMessagesPerS": ceiling["messagesPerS"] if ceiling else None,
            "ratio": held / ceiling["messagesPerS"] if held is not None and ceiling else None,
        },
        "smoke": args.smoke,
        "commit": git_describe(),
        "cpus": os.cpu_count(),
        "producerUrl": os.environ.get("PRODUCER_URL"),
        "drained": not args.not_drained,
        "phases": phases,
        "totals": {
            "sent": sum(p["messagesSent"] for p in phases.values()),
            "accepted": accepted,
            "stored": stored,
            "dlq": dlq,
            "queueLeft": after["queue"]["total"],
            "missing": accepted - stored - max(dlq, 0),
            "itemsScanned": len(items),
            "scanTruncated": len(items) >= args.max_items,
        },
        "before": before,
        "after": after,
    }


def table(r: dict) -> list[list[str]]:
    """Rows of [measure, throughput, e2e, total]."""
    tp = r["phases"].get("throughput")
    e2e = r["phases"].get("e2e")
    t = r["totals"]
    rows = [["", "throughput", "e2e", "total"]]

    def row(label, f, total=""):
        rows.append([label, f(tp) if tp else "", f(e2e) if e2e else "", total])

    def e2e_only(label, f):
        rows.append([label, "", f(e2e) if e2e else "", ""])

    def pct(p, key):
        return " / ".join(fmt_ms(p[key][k]) for k in ("p50", "p95", "p99"))

    row("target", lambda p: target(p, r.get("ramp")))
    row("requests answered 202 / sent", lambda p: f"{fmt_num(p['requestsAccepted'])} / {fmt_num(p['requests'])}")
    row("requests/s accepted", lambda p: fmt_num(p["requestsAcceptedPerS"], 2))
    row(
        "messages accepted / sent",
        lambda p: f"{fmt_num(p['messagesAccepted'])} / {fmt_num(p['messagesSent'])}",
        f"{fmt_num(t['accepted'])} / {fmt_num(t['sent'])}",
    )
    row("messages/s accepted", lambda p: fmt_num(p["messagesAcceptedPerS"], 1))
    row(
        "messages stored (DynamoDB)",
        lambda p: f"{fmt_num(p['stored'])} ({'every body checked' if p['storedExact'] else 'window count'})",
        fmt_num(t["stored"]),
    )
    row("messages/s stored end to end", lambda p: fmt_num(p["storedPerS"], 1) if p["storedPerS"] else "n/a")
    rows.append(["messages in the DLQ (change)", "", "", fmt_num(t["dlq"])])
    rows.append(["accepted but not stored nor in DLQ", "", "", fmt_num(t["missing"])])
    row("producer latency p50 / p95 / p99", lambda p: pct(p, "post"))
    e2e_only("end-to-end latency p50 / p95 / p99", lambda p: pct(p, "e2e"))
    e2e_only("  as seen by polling p50 / p95 / p99", lambda p: pct(p, "observed"))
    e2e_only(
        "followed messages stored / timed out", lambda p: f"{fmt_num(p['e2eStored'])} / {fmt_num(p['e2eTimedOut'])}"
    )
    row(
        "errors: failed requests (rate)",
        lambda p: f"{fmt_num(p['httpFailed'])} ({p['httpFailedRate'] * 100:.2f}%)",
    )
    row("errors: messages not accepted", lambda p: fmt_num(p["messagesFailed"]))
    row("errors: dropped iterations (rate not held)", lambda p: fmt_num(p["dropped"]))
    row("stored bodies read back: this run & phase", lambda p: f"{p['audit']['ours']} / {p['audit']['sampled']}")
    return rows


def target(p: dict, ramp: dict | None) -> str:
    st = p["settings"]
    if st.get("rate") == "ramp" and ramp:
        rs = ramp["settings"]
        last = ramp["steps"][-1]["offered"] if ramp["steps"] else rs["start"]
        return f"ramp {rs['start']:g}-{last:g} msg/s, {len(ramp['steps'])} x {rs['step_s']:g}s, {st.get('batch')} msg/req"
    return f"{fmt_num(st.get('rate'))} req/s x {st.get('batch')} msg for {st.get('duration')}"


def ramp_table(r: dict) -> list[list[str]] | None:
    """One row per step of the ramp."""
    ramp = r.get("ramp")
    if not ramp:
        return None
    rows = [["step", "offered msg/s", "accepted msg/s", "POST p50 / p95", "not accepted", "dropped",
             "backlog start -> end (max)", "backlog trend", "verdict"]]
    for st in ramp["steps"]:
        rows.append([
            str(st["step"]),
            f"{st['offered']:g} ({st['requestRate']:g} req/s)",
            f"{st['acceptedPerS']:.1f}",
            f"{fmt_ms(st['post']['p50'])} / {fmt_ms(st['post']['p95'])}",
            f"{st['errorPct']:.2f}%",
            fmt_num(st["dropped"]),
            f"{st['backlogStart']} -> {st['backlogEnd']} ({st['backlogMax']})",
            f"{st['backlogGrowthPerS']:+.1f}/s",
            "held" if st["held"] else "NOT held: " + "; ".join(st["why"]),
        ])
    return rows


def held_table(r: dict) -> list[list[str]] | None:
    """The highest rate held, the emulator's ceiling and their ratio."""
    ramp = r.get("ramp")
    if not ramp:
        return None
    h, c = r["held"], r.get("ceiling")
    rs = ramp["settings"]
    return [
        ["measure", "value"],
        ["highest rate held (pipeline: producer API -> SQS -> consumer -> S3 + DynamoDB)",
         f"{h['messagesPerS']:g} msg/s" if h["messagesPerS"] is not None else "none"],
        ["emulator ceiling for the same calls (SendMessageBatch + PutObject + BatchWriteItem, direct)",
         (f"{c['messagesPerS']:,.1f} msg/s" + (f" ({c['seconds']:g} s)" if c.get("seconds") else "")) if c
         else "not measured"],
        ["held / ceiling", f"{h['ratio']:.2f}" if h["ratio"] is not None else "n/a"],
        ["ramp stopped", ramp["stop"]],
        ["ramp time", f"{ramp['elapsedS']:.0f} s"],
        ["machine load (1-min average) before / after the ramp",
         " / ".join(f"{v:.2f}" for v in ramp["loadAvg"]) + f" on {r['cpus']} CPUs" if ramp.get("loadAvg") else "n/a"],
        ["held means", f"POST p95 < {rs['p95_ms']:g} ms, not accepted <= {rs['max_error_pct']:g}%, "
         f"dropped <= {rs['max_dropped_pct']:g}%, backlog growth <= max({rs['backlog_slack']}, "
         f"{rs['max_backlog_pct']:g}% of accepted) over the step"],
    ]


def problems(r: dict) -> tuple[list[str], list[str]]:
    """What fails the run, and what is only worth knowing."""
    out, notes = [], []
    t = r["totals"]
    if not r["drained"]:
        out.append("the queue did not drain in time: stored counts are too low")
    if t["missing"] > 0:
        out.append(f"{t['missing']} accepted messages are neither stored nor in the DLQ")
    if t["missing"] < 0:
        out.append(f"{-t['missing']} more items were stored than messages accepted: something else wrote to the table")
    if t["dlq"] > 0:
        out.append(f"{t['dlq']} messages went to the DLQ during the run")
    if t["scanTruncated"]:
        out.append("the table scan hit --max-items; counts are lower bounds")
    ramp = r.get("ramp")
    if ramp:
        if r["held"]["messagesPerS"] is None:
            out.append(f"no step of the ramp was held: {ramp['stop']}")
        for st in ramp["steps"]:
            if st.get("k6Exit") not in (0, 99):
                out.append(f"ramp step {st['step']}: k6 exited {st.get('k6Exit')}, so the ramp stopped early")
        if r.get("ceiling") is None:
            notes.append("the emulator's ceiling was not measured, so there is no ratio")
        if ramp["steps"] and all(st["held"] for st in ramp["steps"]):
            notes.append(f"every step was held, so {r['held']['messagesPerS']:g} msg/s is a lower bound: {ramp['stop']}")
    for name, p in r["phases"].items():
        for th in p["thresholdsFailed"]:
            out.append(f"{name}: threshold failed: {th}")
        a = p["audit"]
        if a["sampled"] and a["ours"] < a["sampled"]:
            other = a["sampled"] - a["ours"]
            if p["storedExact"]:
                notes.append(
                    f"{name}: {other} item(s) in the window came from something else and were not counted: {a['foreign']}"
                )
            else:
                out.append(
                    f"{name}: {other} of {a['sampled']} sampled stored bodies are not from this run, so the counts include other writers: {a['foreign']}"
                )
    return out, notes


def text_table(rows: list[list[str]]) -> str:
    return reportlib.text_table(rows)


def md_table(rows: list[list[str]]) -> str:
    head = rows[0][:]
    head[0] = "measure"
    return reportlib.md_table([head] + rows[1:], escape_pipes=True)


# ---------------------------------------------------------------- chart


def svg(r: dict, history: list[dict], path: Path) -> Path:
    """Panels: the ramp's steps, held vs ceiling, latency percentiles, message
    counts, and the last runs on this machine."""
    ramp = r.get("ramp")
    fig = reportlib.figure(1100 if ramp else 960, 920 if ramp else 620)
    grid = fig.add_gridspec(3 if ramp else 2, 2, height_ratios=[1.2, 1.15, 1] if ramp else [1.15, 1])
    row = 0
    if ramp:
        steps = ramp["steps"]
        ax = fig.add_subplot(grid[0, 0])
        reportlib.two_lines(
            ax, "ramp steps by offered msg/s (ringed: not held)",
            [f"{st['offered']:g}" for st in steps],
            ("accepted msg/s", "#54A24B", [st["acceptedPerS"] for st in steps]),
            ("POST p95 ms", "#4C78A8", [st["post"]["p95"] or 0 for st in steps]),
        )
        for i, st in enumerate(steps):
            if not st["held"]:
                ax.plot([i], [st["acceptedPerS"]], marker="o", markersize=11, fillstyle="none", color="#E45756")
        if r.get("ceiling"):
            c = r["ceiling"]["messagesPerS"]
            ax.axhline(c, color="#888", linestyle="--", linewidth=1)
            ax.text(0, c, f" emulator ceiling {c:,.0f} msg/s", va="bottom", fontsize=7, color="#555")
            ax.set_ylim(top=max(ax.get_ylim()[1], c * 1.15))
        backlog_ax = fig.add_subplot(grid[0, 1])
        for st in steps:
            xs = [t for t, _ in st["backlogSamples"]]
            ys = [d for _, d in st["backlogSamples"]]
            backlog_ax.plot(xs, ys, linewidth=1.5, linestyle="-" if st["held"] else "--",
                            label=f"{st['offered']:g} msg/s{'' if st['held'] else ' (not held)'}")
        backlog_ax.set_title("queue backlog in each step (messages)", loc="left", fontweight="bold", fontsize=9)
        backlog_ax.set_xlabel("seconds into the step", fontsize=8)
        backlog_ax.grid(axis="y", color="#eee")
        backlog_ax.legend(fontsize=7, frameon=False, ncol=2)
        h, c = r["held"], r.get("ceiling")
        reportlib.hbars(
            fig.add_subplot(grid[1, 0]),
            "held vs emulator ceiling, msg/s" + (f" (ratio {h['ratio']:.2f})" if h["ratio"] is not None else ""),
            ["held (pipeline)", "ceiling (direct calls)"],
            [h["messagesPerS"], c["messagesPerS"] if c else None],
            ["#54A24B", "#888888"],
        )
        row = 1
    tp = r["phases"].get("throughput", {})
    e2e = r["phases"].get("e2e", {})

    series = []
    if tp:
        series.append(("POST" + (" (highest held step)" if ramp else ""), "#4C78A8", tp["post"]))
    if e2e:
        series.append(("e2e (storedAt)", "#F58518", e2e["e2e"]))
        series.append(("e2e (polled)", "#E45756", e2e["observed"]))
    reportlib.grouped_bars(
        fig.add_subplot(grid[row, 1] if ramp else grid[0, 0]), "latency (ms)", ["p50", "p95", "p99"],
        [(n, c, [v.get(g) or 0 for g in ("p50", "p95", "p99")]) for n, c, v in series],
    )

    t = r["totals"]
    reportlib.grouped_bars(
        fig.add_subplot(grid[row + 1, 0] if ramp else grid[0, 1]), "messages",
        ["sent", "accepted", "stored", "DLQ", "missing"],
        [("this run", "#54A24B", [t["sent"], t["accepted"], t["stored"], max(t["dlq"], 0), max(t["missing"], 0)])],
    )

    # History of this machine's runs (k6/results/load-*.json): the highest
    # rate held where the run ramped, the fixed rate's stored msg/s before.
    runs = history[-20:]
    reportlib.two_lines(
        fig.add_subplot(grid[row + 1, 1] if ramp else grid[1, :]),
        f"last {len(runs)} {'smoke ' if r['smoke'] else ''}run(s) here (results/load-*.json)",
        [h["stamp"][4:13] for h in runs],
        ("msg/s held (older: stored)", "#54A24B",
         [((h.get("ramp") or {}).get("highestHeld")
           or h["phases"].get("throughput", {}).get("storedPerS") or 0) for h in runs]),
        ("producer p95 ms", "#4C78A8",
         [(h["phases"].get("throughput", {}).get("post", {}).get("p95") or 0) for h in runs]),
    )
    fig.suptitle(f"k6 load run {r['runId']}", x=0.02, ha="left", fontweight="bold", fontsize=12)
    fig.text(0.02, 0.95 if ramp else 0.925,
             f"{r['stamp']} · commit {r['commit']} · {r['cpus']} CPUs{' · SMOKE' if r['smoke'] else ''}",
             color="#555")
    fig.tight_layout(rect=(0, 0, 1, 0.94 if ramp else 0.92), h_pad=2.5, w_pad=6)
    return reportlib.save_svg(fig, path)


def write(r: dict, out_dir: Path) -> tuple[list[list[str]], list[str], list[str], Path]:
    """load-<stamp>.md and .svg of report r (its .json is written by the caller)."""
    rows = table(r)
    issues, notes = problems(r)
    base = out_dir / f"load-{r['stamp']}"
    history = []
    for path in sorted(glob.glob(str(out_dir / "load-*.json"))):
        try:
            h = json.loads(Path(path).read_text())
            if h.get("smoke") == r["smoke"]:
                history.append(h)
        except (OSError, ValueError):
            pass
    svg(r, history, base.with_suffix(".svg"))
    settings_note = (
        "Stored = DynamoDB items whose storedAt falls in the phase's window (load.sh "
        "waits for the queue to drain between phases). Up to --audit (200) of their S3 "
        "bodies per phase are read back and checked for this RUN_ID: when that is all of "
        'them, only this run\'s are counted ("every body checked"). DLQ = change in the '
        "DLQ's approximate message count. End-to-end latency = the record's storedAt "
        'minus the body\'s sentAt; "as seen by polling" adds the wait for the next GET.'
    )
    held, steps = held_table(r), ramp_table(r)
    ramp_md = []
    if held:
        ramp_md = ["## Highest rate held", "", reportlib.md_table(held, escape_pipes=True), "",
                   "## Ramp steps", "", reportlib.md_table(steps, escape_pipes=True), "",
                   "## Totals", ""]
        settings_note = (
            "The throughput column sums the ramp's steps; its latency is that of the highest held step. "
            + settings_note
        )
    summaries = (f"`throughput-ramp-{r['runId']}.json` (steps: `throughput-step<N>-{r['runId']}.json`)"
                 if r.get("ramp") else f"`throughput-{r['runId']}.json`")
    md = (
        [
            f"# k6 load run {r['runId']}",
            "",
            f"- when: {r['stamp']} (UTC){' — smoke run' if r['smoke'] else ''}",
            f"- commit: {r['commit']}, CPUs: {r['cpus']}",
            f"- producer: {r['producerUrl']}",
            f"- k6 summaries: {summaries}, `e2e-{r['runId']}.json`",
            "",
        ]
        + ramp_md
        + [
            md_table(rows),
            "",
            settings_note,
            "",
            f"![chart]({base.name}.svg)",
            "",
            "## Problems" if issues else "No problems found.",
        ]
        + [f"- {i}" for i in issues]
        + (["", "## Notes"] + [f"- {n}" for n in notes] if notes else [])
    )
    base.with_suffix(".md").write_text("\n".join(md) + "\n")
    return rows, issues, notes, base


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("snapshot")
    d = sub.add_parser("drain")
    d.add_argument("--timeout", type=float, default=120)
    rp = sub.add_parser("report")
    rp.add_argument("--run-id", required=True)
    rp.add_argument("--stamp", required=True)
    rp.add_argument("--throughput")
    rp.add_argument("--e2e")
    rp.add_argument("--before", help="snapshot JSON taken before the run")
    rp.add_argument("--not-drained", action="store_true")
    rp.add_argument("--smoke", action="store_true")
    rp.add_argument("--ceiling", type=float, help="the emulator's ceiling, msg/s (tools ceiling)")
    rp.add_argument("--ceiling-seconds", type=float, default=None, help="how long the ceiling was measured")
    rp.add_argument("--audit", type=int, default=200, help="most stored bodies read back per phase")
    rp.add_argument("--max-items", type=int, default=500_000)
    rp.add_argument("--out-dir", default=str(HERE / "results"))
    rd = sub.add_parser("render")
    rd.add_argument("reports", nargs="+", type=Path, help="load-<stamp>.json files")
    args = ap.parse_args()

    if args.cmd == "render":
        for path in args.reports:
            _, _, _, base = write(json.loads(path.read_text()), path.parent)
            print(f"{base.with_suffix('.md')}\n{base.with_suffix('.svg')}")
        return 0

    if args.cmd == "snapshot":
        sqs, _, _ = clients()
        print(json.dumps(snapshot(sqs)))
        return 0
    if args.cmd == "drain":
        sqs, _, _ = clients()
        return 0 if drain(sqs, args.timeout) else 1

    r = build(args)
    out_dir = Path(args.out_dir)
    (out_dir / f"load-{args.stamp}.json").write_text(json.dumps(r, indent=2))
    rows, issues, notes, base = write(r, out_dir)
    print()
    print(text_table(rows))
    print()
    if ramp_table(r):
        print(text_table(ramp_table(r)))
        print()
        print(text_table(held_table(r)))
        print()
    for i in issues:
        print(f"  ! {i}")
    for n in notes:
        print(f"  note: {n}")
    print(f"  report: {base.with_suffix('.md')}")
    print(f"  chart:  {base.with_suffix('.svg')}")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
