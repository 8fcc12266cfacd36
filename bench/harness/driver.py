"""The benchmark run: emulator, proxy, functions, measurements, report."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts, emulator, quota, verify
from .events import EventSet
from .functions import BENCH_DIR, FunctionProcess, FunctionSpec, all_specs, lambda_env
from .procstat import (
    cpu_clock_seconds,
    cpu_ticks_seconds,
    cpu_user_sys_seconds,
    machine_busy_seconds,
    own_seconds,
    status_kib,
)

INVOKE_TIMEOUT_S = 60.0
INIT_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Profile:
    """One latency setting: the delay the proxy adds, and what answers behind it."""

    delay_ms: float
    backend: str = "emulator"  # "emulator" | "stub"

    @property
    def key(self) -> str:
        return f"{self.delay_ms:g}" + ("-stub" if self.backend == "stub" else "")

    @property
    def label(self) -> str:
        return f"{self.delay_ms:g} ms/call, " + ("stub backend" if self.backend == "stub" else "emulator")

    @staticmethod
    def parse(text: str) -> "Profile":
        delay, _, backend = text.strip().partition(":")
        backend = backend or "emulator"
        if backend not in ("emulator", "stub"):
            raise ValueError(f"unknown backend {backend!r} in {text!r}")
        return Profile(float(delay), backend)


@dataclass
class Settings:
    functions: list[str]
    profiles: list[Profile]
    sizes: list[int]
    reps: int
    warmup: int
    cold_starts: int
    memory_mb: int
    emulator_port: int
    emulator_python: str
    venv: Path
    rust_bootstrap: str | None
    out_dir: Path
    work_dir: Path
    pin: bool
    max_concurrency: int
    conformance: bool
    max_minutes: float
    smoke: bool
    records_prefix: str = "records/"
    # The memory sweep: each function under a CPU quota of memory/1769 of a
    # core (harness/quota.py), at one latency setting.
    sweep_memory: list[int] = field(default_factory=list)
    sweep_sizes: list[int] = field(default_factory=lambda: [10, 100])
    sweep_profile: Profile = field(default_factory=lambda: Profile(20.0, "stub"))
    sweep_cold_starts: int = 1
    sweep_warmup: int = 1
    sweep_min_reps: int = 5
    sweep_max_reps: int = 20
    sweep_cell_seconds: float = 8.0
    cpu_period_us: int = quota.DEFAULT_PERIOD_US
    mode: str = "full"  # "full" | "quick" | "smoke"


class Progress:
    """Plain-text progress on stderr: one line per step, with a bar and an ETA."""

    def __init__(self, total: int):
        self.total = max(total, 1)
        self.done = 0
        self.t0 = time.monotonic()

    def step(self, label: str, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        frac = self.done / self.total
        bar = "#" * int(frac * 30)
        elapsed = time.monotonic() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0
        sys.stderr.write(f"[{bar:<30}] {self.done:4d}/{self.total} {elapsed:6.1f}s eta {eta:5.0f}s  {label}\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        sys.stderr.write(f"  .. {text}\n")
        sys.stderr.flush()


class Proxy:
    """The latency-injecting proxy, as a child process: `fault-proxy` of
    tools/ (tools/README.md), found by `Proxy.binary()`."""

    @staticmethod
    def binary() -> Path:
        """$BENCH_PROXY_BIN (bench.sh builds it and sets it), else the local-profile
        build in $CARGO_TARGET_DIR or the repository's target/."""
        if os.environ.get("BENCH_PROXY_BIN"):
            candidates = [Path(os.environ["BENCH_PROXY_BIN"])]
        else:
            dirs = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
            candidates = [d / "local" / "fault-proxy" for d in dirs + [BENCH_DIR.parent / "target"]]
        for path in candidates:
            if path.is_file() and os.access(path, os.X_OK):
                return path
        raise FileNotFoundError(
            "fault-proxy not found (looked at: " + ", ".join(map(str, candidates)) + "); build it with "
            "`cargo build --profile local -p tools --bin fault-proxy` or point BENCH_PROXY_BIN at it")

    def __init__(self, upstream_port: int, profile: Profile, log_path: Path, cpus):
        self.profile = profile
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [str(self.binary()), "--upstream", f"http://127.0.0.1:{upstream_port}",
             "--delay-ms", str(profile.delay_ms), "--backend", profile.backend, "--log-heads",
             "--report-secs", "0", "--seconds", "86400"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        line = self.proc.stdout.readline().decode().strip()  # "READY <port>"
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"latency proxy did not start (said {line!r}); see {log_path}")
        self.port = int(line.split()[1])
        if cpus:
            # Every thread: its runtime's worker threads exist once it is READY,
            # and threads it starts later inherit their starter's CPUs.
            try:
                for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                    os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self, reset: bool = False) -> dict:
        query = "?reset=1" if reset else ""
        with urllib.request.urlopen(f"{self.url}/__proxy/stats{query}", timeout=5) as r:
            return json.loads(r.read())

    def fail_s3_puts(self, substrings: list[str]) -> None:
        req = urllib.request.Request(f"{self.url}/__proxy/fail", data=json.dumps(substrings).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


def _invoke(fp: FunctionProcess, raw: bytes, timeout_s: float = INVOKE_TIMEOUT_S):
    """One invocation, answered (or timed out, or the process died)."""
    inv = fp.api.submit(raw, timeout_s)
    fp.api.wait([inv], timeout_s, alive=fp.alive)
    return inv


def invoke_clean(fp: FunctionProcess, event: dict, raw: bytes, what: str,
                  timeout_s: float = INVOKE_TIMEOUT_S):
    """One invocation that must answer with no problem and no failed message
    (a cold start's first batch, a warm-up); anything else ends the cell."""
    inv = _invoke(fp, raw, timeout_s)
    failed, problems = verify.check_response(event, inv)
    if problems or failed:
        raise RuntimeError(f"{what}: {problems or sorted(failed)}\n{fp.log_tail()}")
    return inv


def _timed_invocation(fp: FunctionProcess, event: dict, raw: bytes):
    """One timed invocation: (inv, failed ids, problems, the function's CPU ms
    over it or None). A timeout or a crash ends the cell; the function is
    back at `next` when this returns."""
    c0 = cpu_clock_seconds(fp.pid)
    inv = _invoke(fp, raw)
    failed, problems = verify.check_response(event, inv)
    if inv.outcome in ("timeout", "crashed") or inv.duration_ms is None:
        raise RuntimeError(f"invocation {inv.outcome}\n{fp.log_tail()}")
    fp.api.wait_idle(IDLE_TIMEOUT_S)
    c1 = cpu_clock_seconds(fp.pid)
    cpu_ms = round((c1 - c0) * 1000.0, 4) if c0 is not None and c1 is not None else None
    return inv, failed, problems, cpu_ms


def _diff_counts(after: dict, before: dict) -> dict:
    keys = set(after) | set(before)
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(keys) if after.get(k, 0) - before.get(k, 0)}


def machine_info(venv: Path) -> dict:
    info = {
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "cores": os.cpu_count(),
        "harness_python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    for key, argv in (
        ("peer_python", [str(venv / "bin" / "python"), "--version"]),
        ("rustc", ["rustc", "--version"]),
    ):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            info[key] = (out.stdout or out.stderr).strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            info[key] = "not found"
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "from importlib.metadata import version as v; "
             "print(v('boto3'), v('aws-lambda-powertools'), v('awslambdaric'), v('aiobotocore'))"],
            capture_output=True, text=True, timeout=30,
        )
        boto3_v, pt_v, ric_v, aio_v = out.stdout.split()
        info.update(peer_boto3=boto3_v, peer_powertools=pt_v, peer_awslambdaric=ric_v, peer_aiobotocore=aio_v)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        from importlib.metadata import version

        info["ministack"] = version("ministack")
    except Exception:  # noqa: BLE001
        info["ministack"] = "unknown"
    return info


class Run:
    def __init__(self, s: Settings):
        self.s = s
        self.events = EventSet()
        self.run_id = time.strftime("%Y%m%d%H%M%S") + "-" + os.urandom(2).hex()
        self.deadline = time.monotonic() + s.max_minutes * 60
        cpus = sorted(os.sched_getaffinity(0))
        if s.pin and len(cpus) >= 2:
            self.fn_cpus = {cpus[-1]}
            self.other_cpus = set(cpus[:-1])
        else:
            self.fn_cpus = self.other_cpus = None
        self.results: dict = {
            "run_id": self.run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": {
                "smoke": s.smoke,
                "profiles": [{"key": p.key, "delay_ms": p.delay_ms, "backend": p.backend, "label": p.label}
                             for p in s.profiles],
                "sizes": s.sizes, "reps": s.reps,
                "warmup": s.warmup, "cold_starts": s.cold_starts, "memory_mb": s.memory_mb,
                "pinned": self.fn_cpus is not None, "max_concurrency": s.max_concurrency,
                "function_cpus": sorted(self.fn_cpus) if self.fn_cpus else None,
                "mode": s.mode,
                "sweep": {
                    "memory_mb": s.sweep_memory, "sizes": s.sweep_sizes,
                    "profile": {"key": s.sweep_profile.key, "delay_ms": s.sweep_profile.delay_ms,
                                "backend": s.sweep_profile.backend, "label": s.sweep_profile.label},
                    "cold_starts": s.sweep_cold_starts, "warmup": s.sweep_warmup,
                    "min_reps": s.sweep_min_reps, "max_reps": s.sweep_max_reps,
                    "cell_seconds": s.sweep_cell_seconds, "period_us": s.cpu_period_us,
                },
            },
            "functions": {},
        }

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    # ------------------------------------------------------------------

    def specs(self) -> list[FunctionSpec]:
        return [sp for sp in all_specs(self.s.rust_bootstrap, self.s.venv) if sp.name in self.s.functions]

    def total_steps(self, runnable: int) -> int:
        per_delay = self.s.warmup + len(self.s.sizes) * self.s.reps + 2  # + verify + conformance
        first = self.s.cold_starts * 2 + per_delay
        later = 2 + per_delay
        return runnable * (first + later * (len(self.s.profiles) - 1)) + 2 + self.sweep_steps(runnable)

    def sweep_steps(self, runnable: int) -> int:
        s = self.s
        per_cell = s.sweep_cold_starts * 2 + s.sweep_warmup * len(s.sweep_sizes) + len(s.sweep_sizes) * s.sweep_max_reps
        return runnable * len(s.sweep_memory) * per_cell

    def execute(self) -> dict:
        s = self.s
        specs = self.specs()
        self.results["machine"] = machine_info(s.venv)
        runnable = [sp for sp in specs if not sp.missing]
        backend, how = quota.detect() if s.sweep_memory else (None, "no memory sizes to sweep")
        self.quotas = quota.Quotas(backend, s.cpu_period_us, tag=self.run_id[-4:])
        self.results["settings"]["sweep"]["quota"] = {"available": backend is not None, "how": how}
        if s.sweep_memory and backend is None:
            sys.stderr.write(f"!! no CPU quota can be set here ({how}): the memory sweep is SKIPPED\n")
        for sp in specs:
            self.results["functions"][sp.name] = {
                "kind": sp.kind,
                "command": " ".join(sp.argv),
                "concurrency": sp.concurrency,
                "status": "missing" if sp.missing else "pending",
                "error": sp.missing,
                "init_ms": [],
                "cold_invoke_ms": [],
                "cold_invoke_size": s.sizes[0],
                "delays": {},
                "verify": {"checked": 0, "problems": []},
                "conformance": None,
                "peak_rss_kib": None,
                "sweep": {},
            }
            if sp.missing:
                sys.stderr.write(f"!! {sp.name}: {sp.missing}\n")

        # Each run's logs replace the previous run's (bench/.work is scratch).
        logs = s.work_dir / "logs"
        if logs.is_dir():
            for old in logs.glob("*.log"):
                old.unlink()
        progress = Progress(self.total_steps(len(runnable)))
        busy0, own0, wall0 = machine_busy_seconds(), own_seconds(), time.monotonic()
        self._artifacts(specs)
        progress.step("artifact sizes")

        if self.other_cpus:
            try:
                os.sched_setaffinity(0, self.other_cpus)
            except OSError:
                pass
        emu = emulator.Emulator(s.emulator_port, s.work_dir / "logs" / "ministack.log", s.emulator_python, self.other_cpus)
        emu.start()
        progress.step(f"emulator up on {emu.url}")
        try:
            for p_index, profile in enumerate(s.profiles):
                if self.out_of_time():
                    break
                proxy = Proxy(s.emulator_port, profile, s.work_dir / "logs" / f"proxy-{profile.key}.log", self.other_cpus)
                progress.note(f"latency proxy on {proxy.url}: {profile.label}")
                try:
                    for sp in runnable:
                        if self.out_of_time():
                            progress.note("time budget spent: stopping early")
                            break
                        record = self.results["functions"][sp.name]
                        if record["status"] == "failed":
                            continue
                        try:
                            self._run_function(sp, profile, p_index == 0, emu, proxy, progress)
                            record["status"] = "ok" if record["status"] != "failed" else "failed"
                        except Exception as error:  # noqa: BLE001 - report and go on with the others
                            record["status"] = "failed"
                            record["error"] = f"{type(error).__name__}: {error}"
                            progress.note(f"{sp.name} failed: {record['error']}")
                finally:
                    proxy.stop()
            if s.sweep_memory and self.quotas.available and not self.out_of_time():
                self._sweep(runnable, progress)
        finally:
            self.quotas.close()
            emu.stop()
        self.results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        # What other processes of the machine used while the bench ran: its
        # own processes are all waited for by now, so os.times() holds them.
        wall = time.monotonic() - wall0
        foreign = (machine_busy_seconds() - busy0) - (own_seconds() - own0)
        self.results["machine"]["foreign_cpu_share"] = round(max(foreign, 0.0) / wall, 3) if wall > 0 else None
        self.results["machine"]["run_seconds"] = round(wall, 1)
        return self.results

    def _artifacts(self, specs: list[FunctionSpec]) -> None:
        work = self.s.work_dir / "artifacts"
        try:
            py = artifacts.python_artifacts(self.s.venv / "bin" / "python", BENCH_DIR, work)
        except Exception as error:  # noqa: BLE001
            py = {}
            sys.stderr.write(f"!! could not size the Python artifacts: {error}\n")
        for sp in specs:
            rec = self.results["functions"][sp.name]
            if sp.kind == "rust":
                rec["artifact"] = None if sp.missing else artifacts.rust_artifact(Path(sp.argv[0]), work)
                if not sp.missing:
                    st = Path(sp.argv[0]).stat()
                    rec["binary_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime))
            else:
                rec["artifact"] = py.get(sp.name)

    # ------------------------------------------------------------------

    def _run_function(self, sp: FunctionSpec, profile: Profile, first_profile: bool, emu, proxy: Proxy,
                      progress: Progress):
        s = self.s
        rec = self.results["functions"][sp.name]
        tag = f"{sp.name} @{profile.key}"
        safe = sp.name.replace("_", "-")
        bucket = f"bench-{self.run_id}-{safe}-{profile.key}".lower()[:63]
        table = f"bench-{self.run_id}-{safe}-{profile.key}"
        emulator.create_resources(emu.url, bucket, table)
        home = s.work_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        app_env = {
            "BUCKET_NAME": bucket,
            "TABLE_NAME": table,
            "RECORDS_PREFIX": s.records_prefix,
            "AWS_ENDPOINT_URL": proxy.url,
            "MAX_CONCURRENCY": str(s.max_concurrency),
            # The Rust consumer takes path-style addressing as a flag; the
            # Python peers switch it on whenever an endpoint is set.
            "S3_FORCE_PATH_STYLE": "true",
        }

        def env_for(api_address: str) -> dict:
            return lambda_env(sp, api_address, s.memory_mb, home, app_env)

        log_path = s.work_dir / "logs" / f"{sp.name}-{profile.key}.log"
        cold_n = s.cold_starts if first_profile else 1
        small = s.sizes[0]
        fp = None
        try:
            for c in range(cold_n):
                if fp is not None:
                    fp.stop()
                fp = FunctionProcess(sp, env_for, log_path, self.fn_cpus)
                fp.start()
                init_ms, error = fp.wait_init(INIT_TIMEOUT_S)
                if error:
                    raise RuntimeError(f"{error}\n{fp.log_tail()}")
                rec["init_ms"].append(round(init_ms, 3))
                progress.step(f"{tag} cold start {c + 1}/{cold_n}: init {init_ms:.1f} ms")
                event, raw = self.events.get("cold", small, c)
                inv = invoke_clean(fp, event, raw, "first invocation")
                if first_profile:
                    rec["cold_invoke_ms"].append(round(inv.duration_ms, 3))
                progress.step(f"{tag} first invocation ({small} msgs): {inv.duration_ms:.1f} ms")
            self._warm(sp, fp, profile, proxy, progress, rec, emu, bucket, table)
        finally:
            if fp is not None:
                fp.stop()
        emulator.delete_resources(emu.url, bucket, table)

    def _warm(self, sp, fp: FunctionProcess, profile: Profile, proxy: Proxy, progress, rec, emu, bucket, table):
        s = self.s
        tag = f"{sp.name} @{profile.key}"
        dkey = profile.key
        rec["delays"][dkey] = {}
        for w in range(s.warmup):
            event, raw = self.events.get("warmup", s.sizes[0], w)
            inv = invoke_clean(fp, event, raw, "warm-up invocation")
            progress.step(f"{tag} warm-up {w + 1}/{s.warmup}: {inv.duration_ms:.1f} ms")

        last_batches = {}
        for size in s.sizes:
            if not fp.api.wait_idle(IDLE_TIMEOUT_S):
                raise RuntimeError("function did not return to `next` after an invocation")
            stats0 = proxy.stats(reset=True)
            ticks0 = cpu_ticks_seconds(fp.pid)
            user0, sys0 = cpu_user_sys_seconds(fp.pid)
            clock0 = cpu_clock_seconds(fp.pid)
            durations, cpu_each, failures = [], [], 0
            problems_all = []
            for r in range(s.reps):
                if self.out_of_time():
                    break
                event, raw = self.events.get("warm", size, r)
                inv, failed, problems, cpu_ms = _timed_invocation(fp, event, raw)
                if cpu_ms is not None:
                    cpu_each.append(cpu_ms)
                durations.append(round(inv.duration_ms, 3))
                failures += len(failed)
                problems_all += problems
                last_batches[size] = (event, failed)
                progress.step(f"{tag} batch {size} rep {r + 1}/{s.reps}: {inv.duration_ms:.1f} ms"
                              + (f", {len(failed)} failed" if failed else ""))
            ticks1 = cpu_ticks_seconds(fp.pid)
            user1, sys1 = cpu_user_sys_seconds(fp.pid)
            clock1 = cpu_clock_seconds(fp.pid)
            stats1 = proxy.stats()
            mem = status_kib(fp.pid)
            n = len(durations)
            rec["delays"][dkey][str(size)] = {
                "durations_ms": durations,
                "cpu_ms_each": cpu_each,
                "cpu_ticks_s": round(ticks1 - ticks0, 4),
                "cpu_user_s": round(user1 - user0, 4),
                "cpu_sys_s": round(sys1 - sys0, 4),
                "cpu_clock_s": round(clock1 - clock0, 6) if clock0 is not None and clock1 is not None else None,
                "messages": n * size,
                "failed_messages": failures,
                "response_problems": problems_all[:20],
                "aws_requests": _diff_counts(stats1["by_kind"], stats0["by_kind"]),
                "aws_requests_total": stats1["requests"] - stats0["requests"],
                "new_connections": stats1["connections"] - stats0["connections"],
                "upstream_ms": {k: round(v, 3) for k, v in _diff_counts(stats1["upstream_ms"], stats0["upstream_ms"]).items()},
                "max_in_flight": stats1["max_in_flight"],
                "vm_hwm_kib": mem.get("VmHWM"),
                "vm_rss_kib": mem.get("VmRSS"),
                "threads": mem.get("Threads"),
            }
            peak = rec["peak_rss_kib"] or 0
            rec["peak_rss_kib"] = max(peak, mem.get("VmHWM") or 0)

        if profile.backend == "stub":
            progress.step(f"{tag} (stub backend: nothing stored to check)")
            progress.step(f"{tag} (stub backend: no partial-failure check)")
            return
        # Read back what the last batch of each size stored, and check it.
        checked = 0
        for size, (event, failed) in last_batches.items():
            ids = [verify.record_id(r["messageId"]) for r in event["Records"]]
            keys = [f"{s.records_prefix}{i}.json" for i in ids]
            objects, items = emulator.read_records(emu.url, bucket, table, keys, ids)
            styles = Counter(rec["verify"].get("body_styles") or {})
            rec["verify"]["problems"] += verify.check_batch(event, s.records_prefix, objects, items, failed,
                                                            styles)[:20]
            rec["verify"]["body_styles"] = dict(styles)
            checked += len(ids)
        rec["verify"]["checked"] += checked
        progress.step(f"{tag} contract check of {checked} stored records: "
                      + ("OK" if not rec["verify"]["problems"] else f"{len(rec['verify']['problems'])} problems"))

        if s.conformance and rec["conformance"] is None:
            rec["conformance"] = self._conformance(fp, proxy, emu, bucket, table)
            progress.step(f"{tag} partial-failure check: {'OK' if rec['conformance']['ok'] else 'FAILED'}")
        else:
            progress.step(f"{tag} (partial-failure check done earlier)")

    def _conformance(self, fp: FunctionProcess, proxy: Proxy, emu, bucket, table) -> dict:
        """S3 puts of two messages are denied: exactly those two must be reported,
        and they must not reach DynamoDB; the other messages must be stored."""
        event, raw = self.events.get("conformance", 10, 0)
        records = event["Records"]
        doomed = {records[2]["messageId"], records[7]["messageId"]}
        proxy.fail_s3_puts([verify.record_id(m) for m in doomed])
        try:
            inv = _invoke(fp, raw)
        finally:
            proxy.fail_s3_puts([])
        failed, problems = verify.check_response(event, inv)
        if failed != doomed:
            problems.append(f"reported failed {sorted(failed)}, expected {sorted(doomed)}")
        ids = [verify.record_id(r["messageId"]) for r in records]
        keys = [f"{self.s.records_prefix}{i}.json" for i in ids]
        objects, items = emulator.read_records(emu.url, bucket, table, keys, ids)
        problems += verify.check_batch(event, self.s.records_prefix, objects, items, doomed)
        for m in doomed:
            if items.get(verify.record_id(m)) is not None:
                problems.append(f"{m}: S3 put failed but a DynamoDB item was written")
        return {"ok": not problems, "problems": problems[:20], "denied": sorted(doomed)}

    # ------------------------------------------------------------------
    # The memory sweep: Lambda's CPU share by memory size, as a cgroup quota.

    def _sweep_cpus(self, memory_mb: int) -> set[int] | None:
        """One pinned core up to 1,769 MB; above it, as many CPUs as the share needs."""
        need = quota.cpus_needed(memory_mb)
        if need <= 1:
            return self.fn_cpus
        cpus = sorted(os.sched_getaffinity(0) | (self.other_cpus or set()) | (self.fn_cpus or set()))
        if len(cpus) < need:
            raise RuntimeError(f"{memory_mb} MB needs {need} CPUs for its {quota.cpu_share(memory_mb):.2f} cores; "
                               f"this machine has {len(cpus)}")
        return set(cpus[-need:])

    def _sweep(self, runnable: list[FunctionSpec], progress: Progress) -> None:
        s = self.s
        profile = s.sweep_profile
        per_cell = s.sweep_cold_starts * 2 + s.sweep_warmup * len(s.sweep_sizes) + len(s.sweep_sizes) * s.sweep_max_reps
        proxy = Proxy(s.emulator_port, profile, s.work_dir / "logs" / f"proxy-sweep-{profile.key}.log", self.other_cpus)
        progress.note(f"memory sweep {s.sweep_memory} MB under a CPU quota "
                      f"(period {s.cpu_period_us} µs), {profile.label}, proxy on {proxy.url}")
        try:
            for memory_mb in s.sweep_memory:
                for sp in runnable:
                    rec = self.results["functions"][sp.name]
                    if rec["status"] == "failed":
                        progress.step(f"{sp.name} @{memory_mb} MB skipped (failed earlier)", per_cell)
                        continue
                    if self.out_of_time():
                        progress.step(f"{sp.name} @{memory_mb} MB skipped: time budget spent", per_cell)
                        rec["sweep"][str(memory_mb)] = {"skipped": "time budget spent"}
                        continue
                    t_cell = progress.done
                    try:
                        rec["sweep"][str(memory_mb)] = self._sweep_cell(sp, memory_mb, proxy, progress)
                    except Exception as error:  # noqa: BLE001 - report and go on
                        rec["status"] = "failed"
                        rec["error"] = f"memory sweep at {memory_mb} MB: {type(error).__name__}: {error}"
                        progress.note(f"{sp.name} failed: {rec['error']}")
                    progress.step(f"{sp.name} @{memory_mb} MB done", max(0, per_cell - (progress.done - t_cell)))
        finally:
            proxy.stop()

    def _sweep_cell(self, sp: FunctionSpec, memory_mb: int, proxy: Proxy, progress: Progress) -> dict:
        s = self.s
        tag = f"{sp.name} @{memory_mb} MB"
        cpus = self._sweep_cpus(memory_mb)
        group = self.quotas.group(sp.name, memory_mb)
        home = s.work_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        app_env = {
            # The stub backend answers S3 and DynamoDB itself: nothing is made or stored.
            "BUCKET_NAME": f"bench-sweep-{self.run_id}".lower()[:63],
            "TABLE_NAME": f"bench-sweep-{self.run_id}",
            "RECORDS_PREFIX": s.records_prefix,
            "AWS_ENDPOINT_URL": proxy.url,
            "MAX_CONCURRENCY": str(s.max_concurrency),
            "S3_FORCE_PATH_STYLE": "true",
        }
        out = {"quota": group.settings(), "share": round(quota.cpu_share(memory_mb), 4),
               "cpus": sorted(cpus) if cpus else None, "init_ms": [], "cold_invoke_ms": [],
               "cold_invoke_size": s.sweep_sizes[0], "sizes": {}}
        log_path = s.work_dir / "logs" / f"{sp.name}-sweep-{memory_mb}.log"
        fp = None
        try:
            for c in range(s.sweep_cold_starts):
                if fp is not None:
                    fp.stop()
                fp = FunctionProcess(sp, lambda api: lambda_env(sp, api, memory_mb, home, app_env), log_path, cpus,
                                     cgroup=group)
                fp.start()
                init_ms, error = fp.wait_init(INIT_TIMEOUT_S * 4)
                if error:
                    raise RuntimeError(f"{error}\n{fp.log_tail()}")
                if fp.pid not in group.pids():
                    raise RuntimeError(f"process {fp.pid} is not in {group.path}: the quota would not apply")
                out["init_ms"].append(round(init_ms, 3))
                progress.step(f"{tag} cold start {c + 1}/{s.sweep_cold_starts}: init {init_ms:.1f} ms")
                event, raw = self.events.get("cold", s.sweep_sizes[0], c)
                inv = invoke_clean(fp, event, raw, "first invocation")
                out["cold_invoke_ms"].append(round(inv.duration_ms, 3))
                progress.step(f"{tag} first invocation: {inv.duration_ms:.1f} ms")
            for size in s.sweep_sizes:
                for w in range(s.sweep_warmup):
                    event, raw = self.events.get("warmup", size, w)
                    inv = invoke_clean(fp, event, raw, "warm-up invocation")
                    progress.step(f"{tag} warm-up b{size}: {inv.duration_ms:.1f} ms")
                out["sizes"][str(size)] = self._sweep_size(sp, fp, group, size, tag, progress)
        finally:
            if fp is not None:
                fp.stop()
            self.quotas.release(group)
        return out

    def _sweep_size(self, sp, fp: FunctionProcess, group, size: int, tag: str, progress: Progress) -> dict:
        """Timed invocations of one batch size: at least min_reps, then until the cell's time budget."""
        s = self.s
        if not fp.api.wait_idle(IDLE_TIMEOUT_S):
            raise RuntimeError("function did not return to `next` after an invocation")
        throttle0 = group.throttling()
        durations, cpu_each, failures = [], [], 0
        t0 = time.monotonic()
        r = 0
        while r < s.sweep_max_reps and (r < s.sweep_min_reps or time.monotonic() - t0 < s.sweep_cell_seconds):
            if self.out_of_time() and r >= 1:
                break
            event, raw = self.events.get("warm", size, r)
            inv, failed, problems, cpu_ms = _timed_invocation(fp, event, raw)
            if problems:
                raise RuntimeError(f"invocation: {problems}\n{fp.log_tail()}")
            if cpu_ms is not None:
                cpu_each.append(cpu_ms)
            durations.append(round(inv.duration_ms, 3))
            failures += len(failed)
            r += 1
            progress.step(f"{tag} b{size} rep {r}: {inv.duration_ms:.1f} ms" + (f", {len(failed)} failed" if failed else ""))
        throttle1 = group.throttling()
        return {
            "durations_ms": durations,
            "cpu_ms_each": cpu_each,
            "messages": len(durations) * size,
            "failed_messages": failures,
            "throttling": {k: throttle1.get(k, 0) - throttle0.get(k, 0) for k in throttle1},
            "seconds": round(time.monotonic() - t0, 2),
        }
