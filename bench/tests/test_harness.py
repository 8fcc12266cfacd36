"""Tests of the harness's own moving parts (no emulator needed).

Most need no function either; RustConsumerOnManagedInstancesTest starts the
release build of the Rust consumer behind the Rust proxy, tools/'s
fault-proxy (skipped, saying where it looked, when either is not built; point
CARGO_TARGET_DIR, BENCH_RUST_BOOTSTRAP or BENCH_PROXY_BIN at them). The
proxy's own tests are tools/tests/proxy.rs.

Run: cd bench && ../.venv/bin/python -m unittest tests/test_harness.py
(pytest, where it is installed, runs them too).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import tempfile
import threading
import time
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import quota, report, verify  # noqa: E402
from harness.driver import Profile, Proxy  # noqa: E402
from harness.events import EventSet  # noqa: E402
from harness.functions import FunctionProcess, lambda_env, rust_spec  # noqa: E402
from harness.runtime_api import RuntimeApi  # noqa: E402


class RuntimeApiTest(unittest.TestCase):
    def test_an_invocation_round_trip_carries_lambda_headers_and_is_timed(self):
        api = RuntimeApi("arn:aws:lambda:us-east-1:000000000000:function:f").start()
        seen = {}

        def function():
            conn = http.client.HTTPConnection(api.address, timeout=10)
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            response = conn.getresponse()
            seen["headers"] = dict(response.getheaders())
            seen["event"] = response.read()
            request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
            conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response",
                         body=b'{"batchItemFailures":[]}')
            seen["status"] = conn.getresponse().status
            conn.close()

        try:
            thread = threading.Thread(target=function)
            thread.start()
            self.assertTrue(api.wait_ready(5))
            inv = api.invoke(b'{"Records":[]}', timeout_s=5)
            thread.join(5)
        finally:
            api.close()
        self.assertEqual(inv.outcome, "response")
        self.assertEqual(inv.result, b'{"batchItemFailures":[]}')
        self.assertIsNotNone(inv.duration_ms)
        self.assertEqual(seen["event"], b'{"Records":[]}')
        self.assertEqual(seen["status"], 202)
        for header in ("Lambda-Runtime-Aws-Request-Id", "Lambda-Runtime-Deadline-Ms",
                       "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id"):
            self.assertIn(header, seen["headers"])

    def test_init_error_is_reported(self):
        api = RuntimeApi("arn:aws:lambda:us-east-1:000000000000:function:f").start()
        try:
            conn = http.client.HTTPConnection(api.address, timeout=5)
            conn.request("POST", "/2018-06-01/runtime/init/error", body=b'{"errorMessage":"boom"}')
            self.assertEqual(conn.getresponse().status, 202)
            self.assertFalse(api.wait_ready(2))
            self.assertIn(b"boom", api.init_error)
            conn.close()
        finally:
            api.close()


def _fake_function_loop(api: RuntimeApi, invocations: int, work_s: float) -> None:
    """One `next` loop of a function: take an event, work, answer it; `invocations` times."""
    conn = http.client.HTTPConnection(api.address, timeout=10)
    try:
        for _ in range(invocations):
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            response = conn.getresponse()
            event = response.read()
            request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
            time.sleep(work_s)
            conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=event)
            conn.getresponse().read()
    finally:
        conn.close()


class RuntimeApiConcurrencyTest(unittest.TestCase):
    """invoke_many against fake functions with one and with several `next` loops."""

    def _run(self, loops: int, events: int):
        api = RuntimeApi("arn:aws:lambda:us-east-1:000000000000:function:f", concurrency=4).start()
        per_loop = events // loops
        threads = [threading.Thread(target=_fake_function_loop, args=(api, per_loop, 0.2), daemon=True)
                   for _ in range(loops)]
        try:
            for thread in threads:
                thread.start()
            self.assertTrue(api.wait_pollers(loops, 5))
            invs = api.invoke_many([b'{"n":%d}' % i for i in range(events)], timeout_s=10)
            for thread in threads:
                thread.join(5)
        finally:
            api.close()
        return api, invs

    def test_several_next_loops_each_get_their_own_event_at_once(self):
        api, invs = self._run(loops=4, events=4)
        self.assertEqual([inv.outcome for inv in invs], ["response"] * 4)
        # Each invocation was answered with its own event (the fake echoes it).
        self.assertEqual([inv.result for inv in invs], [b'{"n":%d}' % i for i in range(4)])
        self.assertEqual(api.max_in_flight, 4)
        self.assertEqual(api.protocol_errors, [])
        # All four were delivered before the first answer came back.
        self.assertLess(max(inv.delivered_at for inv in invs), min(inv.finished_at for inv in invs))
        api.reset_max_in_flight()
        self.assertEqual(api.max_in_flight, 0)

    def test_one_next_loop_takes_the_queued_events_one_at_a_time(self):
        api, invs = self._run(loops=1, events=3)
        self.assertEqual([inv.outcome for inv in invs], ["response"] * 3)
        self.assertEqual(api.max_in_flight, 1)
        for earlier, later in zip(invs, invs[1:]):
            self.assertLessEqual(earlier.finished_at, later.delivered_at)

    def test_unanswered_invocations_time_out_and_leave_nothing_queued(self):
        api = RuntimeApi("arn:aws:lambda:us-east-1:000000000000:function:f", concurrency=2).start()
        try:
            invs = api.invoke_many([b"{}", b"{}"], timeout_s=0.5)
            self.assertEqual([inv.outcome for inv in invs], ["timeout", "timeout"])
            # The endpoint is free again for a one-at-a-time caller.
            thread = threading.Thread(target=_fake_function_loop, args=(api, 1, 0.0), daemon=True)
            thread.start()
            self.assertEqual(api.invoke(b"{}", timeout_s=5).outcome, "response")
            thread.join(5)
        finally:
            api.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RustConsumerOnManagedInstancesTest(unittest.TestCase):
    """The release consumer, started as the bench starts it, against the stub
    backend (every S3 PutObject and BatchWriteItem answered after DELAY_MS)."""

    DELAY_MS = 200.0
    BATCHES = 4
    BATCH_SIZE = 3
    SLOTS = 4  # what the Runtime API lets the process hold at once, in every test here

    @classmethod
    def setUpClass(cls):
        cls.spec = rust_spec(None)
        if cls.spec.missing:
            raise unittest.SkipTest(cls.spec.missing)
        try:
            Proxy.binary()
        except FileNotFoundError as error:
            raise unittest.SkipTest(str(error)) from error

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-mi-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)
        # Nothing is forwarded in stub mode for the calls the consumer makes;
        # the upstream is a closed port, so anything else fails loudly.
        self.proxy = Proxy(_free_port(), Profile(self.DELAY_MS, "stub"), self.dir / "proxy.log", None)
        self.addCleanup(self.proxy.stop)

    def _serve_batches_at_once(self, max_concurrency: str | None):
        app_env = {
            "BUCKET_NAME": "bench-mi", "TABLE_NAME": "bench-mi", "RECORDS_PREFIX": "records/",
            "AWS_ENDPOINT_URL": self.proxy.url, "S3_FORCE_PATH_STYLE": "true", "MAX_CONCURRENCY": "64",
        }
        if max_concurrency is not None:
            app_env["AWS_LAMBDA_MAX_CONCURRENCY"] = max_concurrency
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        log = self.dir / "consumer.log"
        fp = FunctionProcess(self.spec, lambda api: lambda_env(self.spec, api, 1769, home, app_env), log, None,
                             concurrency=self.SLOTS)
        self.addCleanup(fp.stop)
        fp.start()
        _, error = fp.wait_init(30)
        self.assertIsNone(error, fp.log_tail())
        if max_concurrency is not None:
            # Let every loop open its long poll first (a settle, not a requirement:
            # max_in_flight below is what is checked).
            fp.api.wait_pollers(int(max_concurrency), 10, alive=fp.alive)
        events = EventSet(seed=7)
        batches = [events.get("managed-instances", self.BATCH_SIZE, i) for i in range(self.BATCHES)]
        invs = fp.api.invoke_many([raw for _, raw in batches], timeout_s=60, alive=fp.alive)
        for (event, _), inv in zip(batches, invs):
            failed, problems = verify.check_response(event, inv)
            self.assertEqual(problems, [], fp.log_tail())
            self.assertEqual(failed, set(), inv.result)
        self.assertEqual(fp.api.protocol_errors, [])
        # The work was done: one PutObject per message, and each batch's items
        # written (one BatchWriteItem per batch, or more if a flush split it).
        calls = self.proxy.stats()["by_kind"]
        self.assertEqual(set(calls), {"S3 PutObject", "BatchWriteItem"}, calls)
        self.assertEqual(calls["S3 PutObject"], self.BATCHES * self.BATCH_SIZE, calls)
        self.assertGreaterEqual(calls["BatchWriteItem"], self.BATCHES, calls)
        return fp.api

    def test_rust_consumer_serves_invocations_concurrently_on_managed_instances(self):
        api = self._serve_batches_at_once(max_concurrency="4")
        self.assertEqual(api.max_in_flight, 4)

    def test_rust_consumer_serves_one_invocation_at_a_time_without_max_concurrency(self):
        # The control: the same endpoint would hand out 4 at once, the process takes 1.
        api = self._serve_batches_at_once(max_concurrency=None)
        self.assertEqual(api.max_in_flight, 1)


class VerifyTest(unittest.TestCase):
    def _stored(self, record, body_bytes):
        rid = verify.record_id(record["messageId"])
        received = verify.rfc3339_ms(int(record["attributes"]["ApproximateFirstReceiveTimestamp"]))
        head = json.dumps({"id": rid, "messageId": record["messageId"], "receivedAt": received},
                          separators=(",", ":"))[:-1].encode()
        raw = head + b',"body":' + body_bytes + b"}"
        item = {
            "id": {"S": rid}, "messageId": {"S": record["messageId"]}, "s3Key": {"S": f"records/{rid}.json"},
            "receivedAt": {"S": received}, "bodyBytes": {"N": str(len(record["body"].encode()))},
            "storedAt": {"S": "2026-11-27T00:00:00.000Z"},
        }
        return f"records/{rid}.json", ("application/json", raw), rid, item

    def _check(self, event, encode):
        objects, items = {}, {}
        for record in event["Records"]:
            key, obj, rid, item = self._stored(record, encode(record["body"]))
            objects[key], items[rid] = obj, item
        styles = Counter()
        return verify.check_batch(event, "records/", objects, items, set(), styles), styles

    def test_verbatim_and_compact_bodies_both_meet_the_contract(self):
        event, _ = EventSet(seed=1).get("t", 14, 0)

        def compact(body):
            try:
                return json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode()
            except ValueError:
                return json.dumps(body, ensure_ascii=False).encode()

        def verbatim(body):
            try:
                json.loads(body)
                return body.encode()
            except ValueError:
                return json.dumps(body).encode()

        problems, styles = self._check(event, compact)
        self.assertEqual(problems, [])
        self.assertEqual(styles, Counter(compact=12, string=2))
        problems, styles = self._check(event, verbatim)
        self.assertEqual(problems, [])
        self.assertEqual(styles["verbatim"], 12)

    def test_a_missing_item_and_a_wrong_body_are_reported(self):
        event, _ = EventSet(seed=2).get("t", 3, 0)
        objects, items = {}, {}
        for record in event["Records"]:
            key, obj, rid, item = self._stored(record, b'"not the body"')
            objects[key], items[rid] = obj, item
        items.pop(verify.record_id(event["Records"][0]["messageId"]))
        problems = verify.check_batch(event, "records/", objects, items, set())
        self.assertTrue(any("no DynamoDB item" in p for p in problems))
        self.assertTrue(any("body differs" in p for p in problems))


class ReportTest(unittest.TestCase):
    def test_a_report_without_rust_renders_and_says_so(self):
        settings = {"smoke": True, "profiles": [{"key": "0", "delay_ms": 0.0, "backend": "emulator",
                                                 "label": "0 ms/call, emulator"}],
                    "sizes": [5], "reps": 1, "warmup": 1, "cold_starts": 1, "memory_mb": 1769,
                    "pinned": False, "max_concurrency": 64, "function_cpus": None}
        block = {"durations_ms": [10.0], "cpu_ms_each": [7.0], "cpu_ticks_s": 0.01, "cpu_clock_s": 0.007,
                 "messages": 5, "failed_messages": 0, "response_problems": [], "aws_requests": {"S3 PutObject": 5},
                 "aws_requests_total": 6, "upstream_ms": {}, "max_in_flight": 5, "vm_hwm_kib": 50000,
                 "vm_rss_kib": 49000, "threads": 6}
        results = {
            "started": "2026-11-27T00:00:00Z", "settings": settings, "machine": {"host": "h"},
            "functions": {
                "rust": {"kind": "rust", "command": "x", "status": "missing", "error": "Rust bootstrap not found",
                         "init_ms": [], "cold_invoke_ms": [], "delays": {}, "verify": {"checked": 0, "problems": []},
                         "conformance": None, "peak_rss_kib": None, "artifact": None},
                "python-plain": {"kind": "python", "command": "y", "status": "ok", "error": None,
                                 "init_ms": [250.0], "cold_invoke_ms": [20.0], "delays": {"0": {"5": block}},
                                 "verify": {"checked": 5, "problems": []}, "conformance": {"ok": True, "problems": []},
                                 "peak_rss_kib": 50000, "artifact": {"zip_bytes": 2000, "counted": "handler.py"}},
            },
        }
        text = report.markdown(results, "chart.svg")
        self.assertIn("Rust bootstrap not found", text)
        self.assertIn("not measured", text)
        svg = report.svg_chart({n: report.Metrics(n, r, settings) for n, r in results["functions"].items()},
                               settings, "t")
        self.assertIn("<svg", svg)
        self.assertIn("Rust bootstrap", text)


class QuotaMathTest(unittest.TestCase):
    def test_the_share_is_memory_over_1769_mb_of_one_core(self):
        self.assertEqual(quota.cpu_share(1769), 1.0)
        self.assertAlmostEqual(quota.cpu_share(128), 0.07236, places=5)
        self.assertEqual(quota.quota_us(1769, 20_000), 20_000)
        self.assertEqual(quota.quota_us(128, 20_000), 1447)
        self.assertEqual(quota.quota_us(3008, 20_000), 34008)
        self.assertEqual(quota.quota_us(512, 100_000), 28943)

    def test_a_quota_under_the_kernels_1_ms_minimum_is_refused_with_the_period_that_would_do(self):
        with self.assertRaisesRegex(ValueError, "at least 13821"):
            quota.quota_us(128, 10_000)
        with self.assertRaises(ValueError):
            quota.quota_us(1769, 500)

    def test_sizes_above_one_vcpu_need_a_second_cpu(self):
        self.assertEqual(quota.cpus_needed(128), 1)
        self.assertEqual(quota.cpus_needed(1769), 1)
        self.assertEqual(quota.cpus_needed(1770), 2)
        self.assertEqual(quota.cpus_needed(3008), 2)

    def test_detect_finds_a_v1_cpu_hierarchy_and_says_why_when_there_is_none(self):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "cpu.cfs_quota_us").write_text("-1")
            mounts = f"cgroup {d} cgroup rw,relatime,cpu 0 0\n"
            backend, how = quota.detect(mounts, "1:cpu:/\n0::/\n")
            self.assertEqual((backend.version, backend.root), (1, Path(d)))
            self.assertIn("v1", how)
            v2 = Path(d) / "v2"
            v2.mkdir()
            (v2 / "cgroup.controllers").write_text("memory pids")
            backend, why = quota.detect(f"cgroup2 {v2} cgroup2 rw 0 0\n", "0::/\n")
            self.assertIsNone(backend)
            self.assertIn("no cpu controller", why)
            (v2 / "cgroup.controllers").write_text("cpu memory")
            (v2 / "cgroup.subtree_control").write_text("")
            backend, _ = quota.detect(f"cgroup2 {v2} cgroup2 rw 0 0\n", "0::/\n")
            self.assertEqual(backend.version, 2)
            self.assertIn("+cpu", (v2 / "cgroup.subtree_control").read_text())
        backend, why = quota.detect("proc /proc proc rw 0 0\n", "0::/\n")
        self.assertIsNone(backend)
        self.assertIn("no cgroup cpu controller", why)


class QuotaOnThisMachineTest(unittest.TestCase):
    """A real cgroup: skipped where none can be made (not root, no cpu controller)."""

    def setUp(self):
        backend, why = quota.detect()
        if backend is None:
            self.skipTest(f"no CPU quota here: {why}")
        self.quotas = quota.Quotas(backend, 20_000, tag="test")
        self.addCleanup(self.quotas.close)

    def test_a_process_started_in_its_group_is_throttled_to_its_share_and_the_group_is_removed(self):
        group = self.quotas.group("busy", 128)
        self.assertEqual(group.settings(), {"quota_us": 1447, "period_us": 20_000})
        api_env = {"PATH": "/usr/bin:/bin"}
        spec = rust_spec(sys.executable)  # any executable: a busy loop in Python
        spec.argv = [sys.executable, "-c", "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.3: pass"]
        with tempfile.TemporaryDirectory() as d:
            fp = FunctionProcess(spec, lambda api: api_env, Path(d) / "log", None, cgroup=group)
            fp.start()
            try:
                self.assertIn(fp.pid, group.pids())
                fp.proc.wait(timeout=30)
            finally:
                fp.stop()
        t = group.throttling()
        self.assertGreater(t["throttled"], 0, t)
        path = group.path
        self.quotas.release(group)
        self.assertFalse(path.exists())


def _sweep_results(quota_available=True):
    def cell(durations, size):
        return {"init_ms": [10.0, 12.0], "cold_invoke_ms": [30.0], "sizes": {
            str(size): {"durations_ms": durations, "cpu_ms_each": [1.0] * len(durations),
                        "messages": size * len(durations), "failed_messages": 0,
                        "throttling": {"periods": 10, "throttled": 5, "throttled_us": 1000}}}}

    settings = {"smoke": False, "mode": "full",
                "profiles": [{"key": "0", "delay_ms": 0.0, "backend": "emulator", "label": "0 ms/call, emulator"}],
                "sizes": [10], "reps": 1, "warmup": 1, "cold_starts": 1, "memory_mb": 1769, "pinned": False,
                "max_concurrency": 64, "function_cpus": None,
                "sweep": {"memory_mb": [128, 1024], "sizes": [10], "cold_starts": 2, "warmup": 1, "min_reps": 5,
                          "max_reps": 20, "cell_seconds": 8.0, "period_us": 20000,
                          "profile": {"key": "20-stub", "delay_ms": 20.0, "backend": "stub",
                                      "label": "20 ms/call, stub backend"},
                          "quota": {"available": quota_available,
                                    "how": "cgroup v1" if quota_available else "no cgroup cpu controller mounted"}}}
    rec = {"kind": "rust", "command": "x", "status": "ok", "error": None, "init_ms": [5.0],
           "cold_invoke_ms": [10.0], "delays": {}, "verify": {"checked": 0, "problems": []}, "conformance": None,
           "peak_rss_kib": 20000, "artifact": None}
    rust = dict(rec, sweep={"128": cell([400.0] * 5, 10), "1024": cell([50.0] * 5, 10)} if quota_available else {})
    peer = dict(rec, kind="python", sweep={"128": cell([4000.0] * 5, 10), "1024": cell([300.0] * 5, 10)}
                if quota_available else {})
    return {"started": "2026-12-01T00:00:00Z", "settings": settings, "machine": {"host": "h"},
            "functions": {"rust": rust, "python-plain": peer},
            "instructions": {"available": False, "reason": "valgrind not found"}}


class CostTest(unittest.TestCase):
    prices = {"lambda": {"architecture": "x86_64", "requests_per_million": 0.20, "billing_granularity_ms": 1,
                         "gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334}}}

    def test_billed_duration_is_rounded_up_to_the_next_millisecond(self):
        self.assertEqual(report.billed_ms(45.0), 45)
        self.assertEqual(report.billed_ms(45.001), 46)
        self.assertEqual(report.billed_ms(0.2), 1)

    def test_cost_per_million_is_gb_seconds_of_the_billed_durations_plus_requests(self):
        row = report.cost_per_million([99.2, 100.0], 1024, 10, self.prices)
        # 100,000 invocations x 0.1 s x 1 GB = 10,000 GB-s; requests 100,000 x $0.20 / 1M.
        self.assertAlmostEqual(row["gb_s"], 10_000.0)
        self.assertAlmostEqual(row["duration_usd"], 0.166667, places=6)
        self.assertAlmostEqual(row["requests_usd"], 0.02)
        self.assertAlmostEqual(row["usd"], 0.186667, places=6)
        # The mean of the billed durations, not the median: the bill is their sum.
        row = report.cost_per_million([10.0, 10.0, 100.0], 1024, 100, self.prices)
        self.assertAlmostEqual(row["billed_mean_ms"], 40.0)
        self.assertEqual(row["median_ms"], 10.0)
        self.assertIsNone(report.cost_per_million([], 128, 10, self.prices))

    def test_the_cheapest_size_is_the_lowest_cost_and_the_smaller_size_on_a_tie(self):
        self.assertEqual(report.cheapest({128: {"usd": 0.3}, 512: {"usd": 0.2}, 1024: {"usd": 0.25}}), 512)
        self.assertEqual(report.cheapest({256: {"usd": 0.2}, 128: {"usd": 0.2}}), 128)
        self.assertIsNone(report.cheapest({}))

    def test_the_prices_file_has_every_price_the_report_reads(self):
        prices = report.load_prices()
        lam = prices["lambda"]
        self.assertIn(lam["architecture"], lam["gb_second"])
        self.assertEqual(lam["gb_second"]["x86_64"], 0.0000166667)
        self.assertEqual(lam["requests_per_million"], 0.20)
        self.assertIn("s3_put_per_thousand", prices["same_for_every_runtime"])


class CostReportTest(unittest.TestCase):
    def test_the_cost_table_marks_each_runtimes_cheapest_size_and_the_ratio_to_rusts(self):
        results = _sweep_results()
        text = report.markdown(results, "chart.svg", "power.svg")
        # rust: 128 MB x 400 ms = 51.2 GB-ms vs 1024 MB x 50 ms = 51.2: a tie, the smaller size wins.
        # python-plain: 128 x 4000 = 512 vs 1024 x 300 = 307: 1024 MB is cheaper.
        self.assertRegex(text, r"\| rust \| \*\*128\*\* \|")
        self.assertRegex(text, r"\| python-plain \| \*\*1024\*\* \|")
        self.assertRegex(text, r"\| python-plain \| 128 \|")
        costs = report.sweep_costs(results, report.load_prices())
        expected = costs[10]["python-plain"][1024]["usd"] / costs[10]["rust"][128]["usd"]
        self.assertIn(f"costs **{expected:.1f}x** what rust costs at its cheapest (128 MB", text)
        self.assertIn("Not included", text)
        self.assertRegex(text, rf"\| python-plain \| 1024 \| \$[0-9.]+ \| {expected:.1f}x \|")
        self.assertIn("Cold starts under the same quota", text)
        self.assertIn("11.0 (n=2)", text)  # median init at 128 MB
        self.assertIn("n/a (valgrind not found)", text)
        self.assertIn("CPU/message < 50 µs", text)
        svg = report.power_chart(results, report.load_prices(), "t")
        self.assertIn("<svg", svg)
        self.assertIn("cheapest", svg)

    def test_instructions_per_message_are_judged_against_half_the_baseline(self):
        results = _sweep_results()
        results["instructions"] = {"available": True, "batch": 100, "functions": {
            "rust": {"instructions_per_message": 300_000.0},
            "python-plain": {"reason": "callgrind_control --dump failed"}}}
        text = report.markdown(results, "chart.svg")
        self.assertRegex(text, r"instructions/message < 332,388 .*\| 300,000 \| \*\*met\*\*")
        self.assertIn("n/a (callgrind_control --dump failed)", text)
        results["instructions"]["functions"]["rust"]["instructions_per_message"] = 400_000.0
        self.assertRegex(report.markdown(results, "chart.svg"), r"\| 400,000 \| \*\*missed\*\*")

    def test_without_a_quota_the_sweep_is_reported_skipped_and_has_no_rows(self):
        results = _sweep_results(quota_available=False)
        text = report.markdown(results, "chart.svg")
        self.assertIn("Skipped: no CPU quota could be set", text)
        self.assertNotIn("### Batches of", text)
        self.assertIsNone(report.power_chart(results, report.load_prices(), "t"))


if __name__ == "__main__":
    unittest.main()
