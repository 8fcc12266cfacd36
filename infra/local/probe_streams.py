#!/usr/bin/env python3
"""What the emulator does with Kinesis and DynamoDB Streams event source
mappings: each probe creates its own stream or table, a provided.al2023
function running the test double tests/doubles/stream_bootstrap.py, and a
mapping, puts records and prints what the double received and answered.
The findings are written up in infra/EMULATOR-GAPS.md ("Kinesis and DynamoDB
Streams"); the output of a run is kept in infra/local/probe_streams.txt.

    MINISTACK_PORT=4602 .venv/bin/python infra/local/probe_streams.py [PROBE...]

PROBE is one of the names in PROBES below (all when none is given).

Needs a running emulator (infra/local/emulator.sh start). Takes about three
minutes (the MaximumRecordAgeInSeconds probe waits out AWS's minimum of 60 s).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
import zipfile  # noqa: E402

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('MINISTACK_PORT', '4566')}"
KW = dict(endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
kinesis = boto3.client("kinesis", **KW)
ddb = boto3.client("dynamodb", **KW)
lam = boto3.client("lambda", **KW)
sqs = boto3.client("sqs", **KW)
ROLE = "arn:aws:iam::000000000000:role/stream-double"
WORK = Path(tempfile.mkdtemp(prefix="probe-streams-"))
ZIP = WORK / "double.zip"
with zipfile.ZipFile(ZIP, "w") as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o100755 << 16  # a regular, executable file
    z.writestr(info, (REPO / "tests/doubles/stream_bootstrap.py").read_bytes())
T0 = time.time()
CLEANUP: list = []


def say(*a):
    print(*a, flush=True)


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def function(script="", default="ok", timeout=10):
    name = uid("double")
    log = WORK / f"{name}.jsonl"
    lam.create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=ROLE,
        Code={"ZipFile": ZIP.read_bytes()}, Timeout=timeout,
        Environment={"Variables": {"DOUBLE_LOG": str(log), "DOUBLE_SCRIPT": script, "DOUBLE_DEFAULT": default}},
    )
    CLEANUP.append(lambda: lam.delete_function(FunctionName=name))
    return name, log


def stream(shards=1):
    name = uid("probe")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(40):
        d = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if d["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.25)
    CLEANUP.append(lambda: kinesis.delete_stream(StreamName=name))
    return name, d["StreamARN"]


def table(view="NEW_AND_OLD_IMAGES"):
    name = uid("probe")
    out = ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )
    CLEANUP.append(lambda: ddb.delete_table(TableName=name))
    return name, out["TableDescription"]["LatestStreamArn"]


def mapping(fn, arn, **kw):
    kw.setdefault("StartingPosition", "TRIM_HORIZON")
    kw.setdefault("FunctionResponseTypes", ["ReportBatchItemFailures"])
    out = lam.create_event_source_mapping(FunctionName=fn, EventSourceArn=arn, **kw)
    CLEANUP.append(lambda: lam.delete_event_source_mapping(UUID=out["UUID"]))
    return out


def put(stream_name, payloads, key=lambda i, p: "pk-0"):
    seqs = []
    for i, p in enumerate(payloads):
        r = kinesis.put_record(StreamName=stream_name, Data=p.encode(), PartitionKey=key(i, p))
        seqs.append((r["ShardId"], r["SequenceNumber"]))
    return seqs


def entries(log):
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def wait_log(log, until, timeout):
    """Waits until until(entries) or timeout; returns the entries."""
    end = time.time() + timeout
    while time.time() < end:
        e = entries(log)
        if until(e):
            return e
        time.sleep(0.2)
    return entries(log)


def data_of(rec):
    if "kinesis" in rec:
        return base64.b64decode(rec["kinesis"]["data"]).decode()
    if "dynamodb" in rec:
        return (rec["dynamodb"].get("Keys") or {}).get("pk", {}).get("S")
    return rec.get("body")


def seq_of(rec):
    return rec["kinesis"]["sequenceNumber"] if "kinesis" in rec else rec["dynamodb"]["SequenceNumber"]


def summary(log, t_start):
    es = entries(log)
    for i, e in enumerate(es):
        if len(es) > 8 and 3 <= i < len(es) - 2:
            if i == 3:
                say(f"    ... {len(es) - 5} more like these ...")
            continue
        recs = e["event"].get("Records") or []
        say(f"    #{e['n']} +{(e['t_ms'] / 1000 - t_start):6.2f}s pid={e['pid']} action={e['action']:<12} "
            f"records={[data_of(r) for r in recs]}")


def cleanup():
    while CLEANUP:
        try:
            CLEANUP.pop()()
        except ClientError:
            pass


# ---------------------------------------------------------------- probes


def probe_validation():
    """Which mapping settings AWS would refuse does the emulator accept?"""
    fn, _ = function()
    _, arn = stream()
    _, tarn = table()
    cases = {
        "no StartingPosition (AWS: required for streams)": dict(StartingPosition=None),
        "BatchSize=10001 (AWS: max 10000)": dict(BatchSize=10001),
        "ParallelizationFactor=11 (AWS: 1-10)": dict(ParallelizationFactor=11),
        "MaximumRetryAttempts=10001 (AWS: -1..10000)": dict(MaximumRetryAttempts=10001),
        "MaximumRecordAgeInSeconds=30 (AWS: -1 or 60..604800)": dict(MaximumRecordAgeInSeconds=30),
        "FunctionResponseTypes=[Bogus] (AWS: ReportBatchItemFailures only)": dict(FunctionResponseTypes=["Bogus"]),
        "MaximumBatchingWindowInSeconds=301 (AWS: max 300)": dict(MaximumBatchingWindowInSeconds=301),
        "StartingPosition=AT_TIMESTAMP without timestamp": dict(StartingPosition="AT_TIMESTAMP"),
    }
    for what, kw in cases.items():
        for src, a in (("kinesis", arn), ("dynamodb", tarn)):
            args = dict(FunctionName=fn, EventSourceArn=a, StartingPosition="TRIM_HORIZON")
            args.update({k: v for k, v in kw.items() if v is not None})
            if kw.get("StartingPosition", 1) is None:
                args.pop("StartingPosition")
            try:
                out = lam.create_event_source_mapping(**args)
                lam.delete_event_source_mapping(UUID=out["UUID"])
                say(f"  {src:8} {what}: ACCEPTED (stored StartingPosition={out.get('StartingPosition')})")
            except ClientError as e:
                say(f"  {src:8} {what}: refused ({e.response['Error']['Code']}: {e.response['Error']['Message'][:90]})")


def probe_settings_stored():
    """Every stream setting on create: what GetEventSourceMapping echoes."""
    fn, _ = function()
    _, arn = stream()
    q = sqs.create_queue(QueueName=uid("onfail"))["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out = mapping(fn, arn, BatchSize=7, MaximumBatchingWindowInSeconds=2, ParallelizationFactor=3,
                  BisectBatchOnFunctionError=True, MaximumRetryAttempts=2, MaximumRecordAgeInSeconds=60,
                  TumblingWindowInSeconds=0, DestinationConfig={"OnFailure": {"Destination": qarn}})
    keep = {k: v for k, v in out.items() if k not in ("ResponseMetadata", "FunctionArn", "EventSourceArn",
                                                      "EventSourceMappingArn", "UUID", "LastModified")}
    say("  CreateEventSourceMapping answer:", json.dumps(keep, default=str, sort_keys=True))
    got = lam.get_event_source_mapping(UUID=out["UUID"])
    say("  State right after create:", got["State"])
    fn2, _ = function()
    out2 = mapping(fn2, arn)
    say("  BatchSize when not given (AWS: 100 for streams):", out2.get("BatchSize"))


def probe_kinesis_shape():
    """One Kinesis batch: the event as delivered, next to aws_lambda_events' fixture."""
    fn, log = function()
    name, arn = stream()
    put(name, ["hello-0", "hello-1", "hello-2"])
    t = time.time()
    mapping(fn, arn, BatchSize=100)
    e = wait_log(log, lambda e: sum(len(x["event"]["Records"]) for x in e) >= 3, 10)
    say(f"  {len(e)} invocation(s), first after {(e[0]['t_ms'] / 1000 - t):.2f}s")
    say("  top-level keys:", sorted(e[0]["event"].keys()))
    say("  record[0]:", json.dumps(e[0]["event"]["Records"][0], indent=None, sort_keys=True))
    seqs = [seq_of(r) for x in e for r in x["event"]["Records"]]
    say("  sequence numbers:", seqs, "lengths", sorted({len(s) for s in seqs}),
        "ascending:", seqs == sorted(seqs, key=int))
    say("  deadline header - now at receipt (ms):", int(e[0]["deadlineMs"]) - e[0]["t_ms"])


def probe_latest():
    """StartingPosition LATEST: records put right after CreateEventSourceMapping."""
    fn, log = function()
    name, arn = stream()
    put(name, ["before-mapping"])
    mapping(fn, arn, StartingPosition="LATEST")
    put(name, ["right-after-create"])
    time.sleep(2.5)
    put(name, ["after-2.5s"])
    wait_log(log, lambda e: any("after-2.5s" in str(x) for x in e), 6)
    say("  delivered:", [data_of(r) for x in entries(log) for r in x["event"]["Records"]])


def probe_partial(source, action, n=5, fail_marker="rec-2", wait=6):
    """One partial batch response (`action`), then `ok`: what is delivered again?"""
    fn, log = function(script=action)
    t = time.time()
    if source == "kinesis":
        name, arn = stream()
        put(name, [f"rec-{i}" for i in range(n)])
    else:
        name, arn = table()
        for i in range(n):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"rec-{i}"}, "v": {"N": str(i)}})
    mapping(fn, arn, BatchSize=100)
    wait_log(log, lambda e: False, wait)
    e = entries(log)
    say(f"  {source} first answer {json.dumps(e[0]['response']) if e else None}:")
    summary(log, t)
    return e


def probe_errors(source, default, wait=8, timeout=10, **kw):
    """A function that always fails (`default`): retries, pace, retry limit, bisect, OnFailure."""
    fn, log = function(default=default, timeout=timeout)
    q = sqs.create_queue(QueueName=uid("onfail"))["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    t = time.time()
    if source == "kinesis":
        name, arn = stream()
        put(name, [f"rec-{i}" for i in range(4)])
    else:
        name, arn = table()
        for i in range(4):
            ddb.put_item(TableName=name, Item={"pk": {"S": f"rec-{i}"}})
    kw.setdefault("DestinationConfig", {"OnFailure": {"Destination": qarn}})
    mapping(fn, arn, BatchSize=100, **kw)
    wait_log(log, lambda e: False, wait)
    e = entries(log)
    say(f"  {source} always `{default}` with {json.dumps({k: v for k, v in kw.items() if k != 'DestinationConfig'})}"
        f" + OnFailure SQS: {len(e)} invocations in {wait}s")
    summary(log, t)
    gaps = [round((b["t_ms"] - a["t_ms"]) / 1000, 2) for a, b in zip(e, e[1:])]
    if gaps:
        say(f"  seconds between attempts: min {min(gaps)}, max {max(gaps)}")
    m = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    say(f"  OnFailure queue: {len(m)} message(s)", m[0]["Body"][:400] if m else "")
    return fn, log


def probe_shards():
    """3 shards, 10 partition keys, 60 records, BatchSize 5, every invocation 0.3 s:
    order per shard, invocations at once, ParallelizationFactor 2."""
    fn, log = function(default="sleep:0.3")
    name, arn = stream(shards=3)
    seqs = put(name, [f"k{i % 10}-{i:02d}" for i in range(60)], key=lambda i, p: p.split("-")[0])
    by_seq = {s: sh for sh, s in seqs}
    t = time.time()
    mapping(fn, arn, BatchSize=5, ParallelizationFactor=2)
    e = wait_log(log, lambda e: sum(len(x["event"]["Records"]) for x in e) >= 60, 60)
    took = (e[-1]["t_ms"] / 1000 - t) if e else 0
    say(f"  {len(e)} invocations, {sum(len(x['event']['Records']) for x in e)} records, last began after {took:.1f}s")
    spans = [(x["t_ms"], x["t_ms"] + 300) for x in e]
    most = max(sum(1 for a, b in spans if a <= s < b) for s, _ in spans) if spans else 0
    say("  most invocations overlapping:", most, " distinct pids:", len({x["pid"] for x in e}))
    shards_per_batch = [sorted({by_seq[seq_of(r)] for r in x["event"]["Records"]}) for x in e]
    say("  shards per batch:", {len(s) for s in shards_per_batch})
    say("  batch order (shard of each batch):", [s[0][-2:] for s in shards_per_batch])
    for sh in sorted(set(by_seq.values())):
        got = [seq_of(r) for x in e for r in x["event"]["Records"] if by_seq[seq_of(r)] == sh]
        say(f"  {sh}: {len(got)} records, ascending={got == sorted(got, key=int)}, "
            f"each once={len(got) == len(set(got))}")


def probe_batching_window():
    """MaximumBatchingWindowInSeconds=3 and BatchSize=100: are records gathered?"""
    fn, log = function()
    name, arn = stream()
    mapping(fn, arn, BatchSize=100, MaximumBatchingWindowInSeconds=3, StartingPosition="LATEST")
    time.sleep(2)
    t = time.time()
    for i in range(3):
        put(name, [f"w-{i}"])
        time.sleep(0.5)
    wait_log(log, lambda e: sum(len(x["event"]["Records"]) for x in e) >= 3, 8)
    summary(log, t)


def probe_big_batch():
    """250 records, BatchSize not given: batch sizes."""
    fn, log = function()
    name, arn = stream()
    kinesis.put_records(StreamName=name, Records=[{"Data": f"b-{i}".encode(), "PartitionKey": "p"} for i in range(250)])
    mapping(fn, arn)
    e = wait_log(log, lambda e: sum(len(x["event"]["Records"]) for x in e) >= 250, 20)
    say("  batch sizes (BatchSize not given):", [len(x["event"]["Records"]) for x in e])


def probe_ddb_shapes():
    """INSERT, MODIFY, REMOVE under each StreamViewType."""
    for view in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"):
        fn, log = function()
        name, arn = table(view)
        mapping(fn, arn, BatchSize=100)
        ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"N": "2"}})
        ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"N": "2"}})  # no change: no record on AWS
        ddb.delete_item(TableName=name, Key={"pk": {"S": "a"}})
        e = wait_log(log, lambda e: sum(len(x["event"]["Records"]) for x in e) >= 3, 8)
        recs = [r for x in e for r in x["event"]["Records"]]
        say(f"  {view}: {len(e)} invocation(s); "
            + "; ".join(f"{r['eventName']} keys={sorted(r['dynamodb'])}" for r in recs))
        if view == "NEW_AND_OLD_IMAGES":
            say("  record[1]:", json.dumps(recs[1], sort_keys=True))
            seqs = [seq_of(r) for r in recs]
            say("  sequence numbers:", seqs, "ascending:", seqs == sorted(seqs, key=int))
            say("  eventSourceARN == LatestStreamArn:", all(r["eventSourceARN"] == arn for r in recs))


def probe_record_age():
    """MaximumRecordAgeInSeconds=60 (AWS's minimum) on a Kinesis and a DynamoDB
    mapping whose function always fails, both with an OnFailure queue."""
    setups = []
    for source in ("kinesis", "dynamodb"):
        fn, log = function(default="error")
        q = sqs.create_queue(QueueName=uid("onfail"))["QueueUrl"]
        qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if source == "kinesis":
            name, arn = stream()
            put(name, ["old-0", "old-1"])
        else:
            name, arn = table()
            for i in range(2):
                ddb.put_item(TableName=name, Item={"pk": {"S": f"old-{i}"}})
        mapping(fn, arn, BatchSize=100, MaximumRecordAgeInSeconds=60,
                DestinationConfig={"OnFailure": {"Destination": qarn}})
        setups.append((source, log, q))
    t = time.time()
    time.sleep(66)
    for source, log, q in setups:
        e = entries(log)
        last = e[-1]["t_ms"] / 1000 - t if e else 0
        say(f"  {source}: {len(e)} invocations in 66 s, the last at +{last:.1f}s")
        m = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        say(f"  {source} OnFailure queue: {len(m)} message(s)", m[0]["Body"] if m else "")


def probe_blocks_sqs():
    """A Kinesis function taking 3 s per batch next to an SQS mapping: how long
    does an SQS message wait for its invocation?"""
    slow, _ = function(default="sleep:3")
    name, arn = stream()
    mapping(slow, arn, BatchSize=1)
    fast, log = function()
    q = sqs.create_queue(QueueName=uid("q"), Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    out = lam.create_event_source_mapping(FunctionName=fast, EventSourceArn=qarn, BatchSize=1)
    CLEANUP.append(lambda: lam.delete_event_source_mapping(UUID=out["UUID"]))
    sqs.send_message(QueueUrl=q, MessageBody="warm-up")
    wait_log(log, lambda e: len(e) >= 1, 10)
    for label, records in (("idle stream", 0), ("3 records on the stream (3 x 3 s)", 3)):
        if records:
            put(name, [f"slow-{i}" for i in range(records)])
            time.sleep(0.5)
        before = len(entries(log))
        t = time.time()
        sqs.send_message(QueueUrl=q, MessageBody=label)
        e = wait_log(log, lambda e: len(e) > before, 20)
        say(f"  {label}: SQS message invoked after {(e[-1]['t_ms'] / 1000 - t):.2f}s")


def probe_kinesis_partial():
    """Kinesis: each kind of partial batch response once, then `ok`."""
    for a in ("fail:rec-2", "fail-all", "unknown", "empty", "null-id", "null-list", "garbage"):
        probe_partial("kinesis", a)


def probe_ddb_partial():
    """DynamoDB Streams: a reported record, and an unknown itemIdentifier, then `ok`."""
    for a in ("fail:rec-2", "unknown"):
        probe_partial("dynamodb", a)


PROBES = {
    "validation": probe_validation,
    "settings": probe_settings_stored,
    "kinesis-shape": probe_kinesis_shape,
    "ddb-shapes": probe_ddb_shapes,
    "latest": probe_latest,
    "batch-default": probe_big_batch,
    "batching-window": probe_batching_window,
    "kinesis-partial": probe_kinesis_partial,
    "ddb-partial": probe_ddb_partial,
    "kinesis-error": lambda: probe_errors("kinesis", "error", MaximumRetryAttempts=1,
                                          BisectBatchOnFunctionError=True),
    "kinesis-timeout": lambda: probe_errors("kinesis", "sleep:3", wait=10, timeout=1, MaximumRetryAttempts=0),
    "kinesis-crash": lambda: probe_errors("kinesis", "exit", wait=6, MaximumRetryAttempts=0),
    "shards": probe_shards,
    "ddb-error": lambda: probe_errors("dynamodb", "error", MaximumRetryAttempts=1,
                                      BisectBatchOnFunctionError=True),
    "blocks-sqs": probe_blocks_sqs,
    "record-age": probe_record_age,
}


def main(names):
    from importlib.metadata import version
    say(f"ministack {version('ministack')} at {ENDPOINT}, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    for name in names or PROBES:
        doc = (PROBES[name].__doc__ or probe_errors.__doc__).strip()
        say(f"\n## {name}: {doc}")
        started = time.time()
        try:
            PROBES[name]()
        finally:
            cleanup()
        say(f"  ({time.time() - started:.1f}s)")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
