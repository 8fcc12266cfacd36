"""Instructions per message: each function run under callgrind on a fixed batch.

CPU time on shared VMs moves with the machine (the same bench measured Rust
at 107 µs per message on an Intel Xeon VM and 124-203 µs on an AMD EPYC
one); instructions executed do not, or hardly. This module counts them with
`valgrind --tool=callgrind` (Ir: instructions executed, every thread of the
process, user space only: no kernel work, no time spent waiting).

Method, per function and batch size:

1. a stub backend (the bench's proxy, `--backend stub`, 0 ms delay): it
   answers PutObject and BatchWriteItem itself, so nothing but the function
   is measured and the counts do not depend on an emulator;
2. the function process started as the bench starts it (same environment,
   same Runtime API stand-in) under callgrind, instrumented from its first
   instruction;
3. at its first `GET .../next` (end of init) `callgrind_control --dump`:
   that part is the init count (process start to first `next`);
4. `warmup` invocations (first connections, lazy endpoint resolution), then
   `callgrind_control --zero`;
5. `invocations` invocations of `batch` messages, each answered and checked
   (no failures allowed: a failing run's count is not the job), waiting until
   the process is back in `next` after each; then `callgrind_control --dump`:
   that part divided by the messages is instructions per message.

The events are harness/events.py batches from a fresh EventSet drawn in
the same order for every function, so every function gets the same bytes.

Interface for the bench report and smoke:

    available() -> str | None            None when usable, else why not
    measure(spec, batch=100, ...) -> dict {"instructions_per_message", "messages",
                                           "batch", "tool", ...} or {"unavailable": why}

CLI (from bench/):
    ../.venv/bin/python -m harness.instructions --functions rust,python-plain --batch 10,100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import functions
from .driver import Profile, Proxy, invoke_clean
from .events import EventSet
from .functions import BENCH_DIR, FunctionProcess, FunctionSpec, lambda_env

# Under callgrind a process runs 20-100x slower than natively.
INIT_TIMEOUT_S = 600.0
INVOKE_TIMEOUT_S = 600.0
IDLE_TIMEOUT_S = 120.0
DUMP_TIMEOUT_S = 120.0
# The stub backend answers every call the functions make; its upstream is
# never contacted. The port is the one set aside for this work.
UNUSED_UPSTREAM_PORT = 4603


class CallgrindError(RuntimeError):
    pass


# ---------------------------------------------------------------- parsing


def parse_header(text: str) -> dict:
    """The header fields of one callgrind output file that this module needs.

    Returns {"events": [...], "totals": {event: int}, "part": int | None,
    "pid": int | None, "cmd": str | None}. `totals:` is the file's own sum
    over all cost lines; `summary:` (the same figure, written by older
    versions instead) is used when `totals:` is absent.
    """
    events: list[str] = []
    totals = summary = None
    part = pid = None
    cmd = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "events":
            events = value.split()
        elif key == "totals":
            totals = [int(x) for x in value.split()]
        elif key == "summary":
            summary = [int(x) for x in value.split()]
        elif key == "part":
            part = int(value)
        elif key == "pid":
            pid = int(value)
        elif key == "cmd":
            cmd = value
    figures = totals if totals is not None else summary
    if not events or figures is None:
        raise CallgrindError("not a callgrind output file (no events: or totals:/summary: line)")
    if len(figures) > len(events):
        raise CallgrindError(f"{len(figures)} totals for {len(events)} events")
    # Trailing zero columns may be left out.
    figures = figures + [0] * (len(events) - len(figures))
    return {"events": events, "totals": dict(zip(events, figures)), "part": part, "pid": pid, "cmd": cmd}


def instructions_in(path: Path) -> int:
    """Ir (instructions executed) recorded in one callgrind output file."""
    header = parse_header(path.read_text(errors="replace"))
    if "Ir" not in header["totals"]:
        raise CallgrindError(f"{path}: no Ir event (events: {' '.join(header['events'])})")
    return header["totals"]["Ir"]


_VERSION = re.compile(r"valgrind-(\d+)\.(\d+)")


def parse_version(text: str) -> str | None:
    """'valgrind-3.19.0' -> 'callgrind 3.19'."""
    m = _VERSION.search(text)
    return f"callgrind {m.group(1)}.{m.group(2)}" if m else None


# ---------------------------------------------------------------- the tool


def tool_version() -> str | None:
    try:
        out = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(out.stdout + out.stderr)


def available() -> str | None:
    """None when callgrind can be used here, else the reason it cannot."""
    for program in ("valgrind", "callgrind_control"):
        if shutil.which(program) is None:
            return f"{program} not found on PATH (apt package `valgrind`)"
    if tool_version() is None:
        return "`valgrind --version` did not answer with a version"
    return None


def _control(pid: int, action: str) -> None:
    """callgrind_control --dump / --zero on one process (through vgdb, which
    wakes a process blocked in a system call, such as a long poll)."""
    out = subprocess.run(["callgrind_control", f"--{action}", str(pid)], capture_output=True, text=True,
                         timeout=DUMP_TIMEOUT_S)
    if out.returncode != 0 or "OK" not in out.stdout:
        raise CallgrindError(f"callgrind_control --{action} {pid} failed: {(out.stdout + out.stderr).strip()}")


def _wait_part(out_dir: Path, pid: int, part: int) -> Path:
    """The file of dump number `part` once callgrind has written it whole."""
    path = out_dir / f"callgrind.out.{pid}.{part}"
    deadline = time.monotonic() + DUMP_TIMEOUT_S
    for _ in range(int(DUMP_TIMEOUT_S / 0.1) + 1):
        if path.is_file():
            try:
                instructions_in(path)
                return path
            except CallgrindError:
                pass  # still being written: totals: comes last
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise CallgrindError(f"callgrind wrote no dump {part} for pid {pid} in {DUMP_TIMEOUT_S:.0f}s ({path})")


# ---------------------------------------------------------------- a run


def specs(rust_bootstrap: str | None = None, venv: Path | None = None) -> list[FunctionSpec]:
    """Every function the bench knows (functions.all_specs)."""
    return functions.all_specs(rust_bootstrap, venv or BENCH_DIR / "python" / ".venv")


def _app_env(proxy_url: str, max_concurrency: int) -> dict[str, str]:
    return {
        "BUCKET_NAME": "instructions-bucket",
        "TABLE_NAME": "instructions-table",
        "RECORDS_PREFIX": "records/",
        "AWS_ENDPOINT_URL": proxy_url,
        "MAX_CONCURRENCY": str(max_concurrency),
        "S3_FORCE_PATH_STYLE": "true",
        # Under callgrind a call takes far longer than natively; the Rust
        # consumer's 2 s attempt limit must not cut it off. A timer's cost
        # does not depend on its length.
        "CALL_ATTEMPT_TIMEOUT_MS": "120000",
        "CALL_TIMEOUT_MS": "300000",
    }


def _invoke_checked(fp: FunctionProcess, event: dict, raw: bytes, what: str) -> None:
    invoke_clean(fp, event, raw, what, INVOKE_TIMEOUT_S)
    if not fp.api.wait_idle(IDLE_TIMEOUT_S):
        raise CallgrindError(f"{what}: the function did not return to `next`\n{fp.log_tail()}")


def measure(spec: FunctionSpec, batch: int = 100, invocations: int = 3, warmup: int = 1, *,
            proxy: Proxy | None = None, work_dir: Path | None = None, max_concurrency: int = 64,
            memory_mb: int = 1769, keep_files: bool = False) -> dict:
    """Instructions per message of `spec` on `invocations` batches of `batch`
    (after `warmup` invocations), or {"unavailable": reason}.

    proxy: a running stub-backend Proxy to use (one is started and stopped
    here when None). work_dir: where the callgrind files and the function's
    log go (a temporary directory when None, removed unless keep_files).
    """
    reason = available() or spec.missing
    if reason:
        return {"function": spec.name, "batch": batch, "unavailable": reason}
    tool = tool_version()
    own_dir = work_dir is None
    work = Path(tempfile.mkdtemp(prefix=f"callgrind-{spec.name}-")) if own_dir else Path(work_dir)
    out_dir = work / "callgrind"
    out_dir.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    own_proxy = proxy is None
    fp = None
    try:
        if own_proxy:
            proxy = Proxy(UNUSED_UPSTREAM_PORT, Profile(0.0, "stub"), work / "proxy.log", None)
        prefix = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/callgrind.out.%p",
            # Through exec: the Node peer's bootstrap is a script that execs
            # node in the same process. A JIT (Node's V8) writes code into
            # anonymous memory: callgrind's x86 default (all-non-file) already
            # re-translates that.
            "--trace-children=yes", "--quiet",
        ]
        measured = dataclasses.replace(spec, argv=prefix + list(spec.argv))
        app_env = _app_env(proxy.url, max_concurrency)
        fp = FunctionProcess(measured, lambda api: lambda_env(spec, api, memory_mb, home, app_env),
                             work / f"{spec.name}.log", None)
        fp.start()
        _, error = fp.wait_init(INIT_TIMEOUT_S)
        if error:
            raise CallgrindError(f"{error}\n{fp.log_tail()}")
        _control(fp.pid, "dump")
        init_ir = instructions_in(_wait_part(out_dir, fp.pid, 1))

        events = EventSet()
        for w in range(warmup):
            event, raw = events.get("warmup", batch, w)
            _invoke_checked(fp, event, raw, f"warm-up invocation {w + 1}")
        _control(fp.pid, "zero")
        for r in range(invocations):
            event, raw = events.get("warm", batch, r)
            _invoke_checked(fp, event, raw, f"invocation {r + 1}")
        _control(fp.pid, "dump")
        total = instructions_in(_wait_part(out_dir, fp.pid, 2))
        messages = batch * invocations
        return {
            "function": spec.name,
            "instructions_per_message": total / messages,
            "instructions_per_invocation": total / invocations,
            "instructions_total": total,
            "init_instructions": init_ir,
            "messages": messages,
            "batch": batch,
            "invocations": invocations,
            "warmup": warmup,
            "tool": tool,
        }
    except (CallgrindError, OSError, subprocess.SubprocessError, RuntimeError) as error:
        return {"function": spec.name, "batch": batch, "unavailable": f"{type(error).__name__}: {error}"}
    finally:
        if fp is not None:
            fp.stop()
        if own_proxy and proxy is not None:
            proxy.stop()
        if own_dir and not keep_files:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- CLI


def format_table(rows: list[dict]) -> str:
    lines = [
        "| function | batch | instructions/msg | init instructions | messages | tool |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "unavailable" in r:
            lines.append(f"| {r['function']} | {r['batch']} | n/a | n/a | 0 | unavailable: "
                         f"{r['unavailable'].splitlines()[0][:200]} |")
        else:
            lines.append(f"| {r['function']} | {r['batch']} | {r['instructions_per_message']:,.0f} | "
                         f"{r['init_instructions']:,} | {r['messages']} | {r['tool']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--functions", default="rust,python-plain,python-powertools-async,python-powertools-sequential",
                   help="comma list of function names (those of bench/run.py)")
    p.add_argument("--batch", default="100", help="batch sizes, comma list (default 100)")
    p.add_argument("--invocations", type=int, default=3, help="measured invocations per batch size (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured invocations first (default 1)")
    p.add_argument("--max-concurrency", type=int, default=64, help="MAX_CONCURRENCY given to every function")
    p.add_argument("--rust-bootstrap", default=None, help="the Rust consumer binary (default: as bench/run.py)")
    p.add_argument("--venv", type=Path, default=BENCH_DIR / "python" / ".venv", help="the Python peers' venv")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep callgrind files and logs here (default: a temporary directory, removed)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    a = p.parse_args(argv)
    wanted = [x.strip() for x in a.functions.split(",") if x.strip()]
    known = {s.name: s for s in specs(a.rust_bootstrap, a.venv)}
    sizes = [int(x) for x in a.batch.split(",") if x.strip()]
    reason = available()
    if reason:
        print(f"callgrind unavailable: {reason}", file=sys.stderr)
    rows = []
    for name in wanted:
        for size in sizes:
            if name not in known:
                rows.append({"function": name, "batch": size, "unavailable": f"unknown function (known: {sorted(known)})"})
                continue
            t0 = time.monotonic()
            work = a.work_dir / f"{name}-b{size}" if a.work_dir else None
            row = measure(known[name], size, a.invocations, a.warmup, work_dir=work,
                          max_concurrency=a.max_concurrency)
            row["seconds"] = round(time.monotonic() - t0, 1)
            rows.append(row)
            print(f"  .. {name} batch {size}: "
                  + (f"{row['instructions_per_message']:,.0f} instructions/msg" if "unavailable" not in row
                     else f"unavailable ({row['unavailable'].splitlines()[0][:200]})")
                  + f" in {row['seconds']} s", file=sys.stderr)
    print(format_table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
