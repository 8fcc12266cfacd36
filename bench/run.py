#!/usr/bin/env python3
"""Benchmark the Rust consumer against its Python peers on a local Lambda stand-in.

    .venv/bin/python bench/run.py            # full run -> bench/results/ (~15-20 min)
    .venv/bin/python bench/run.py --quick    # a few minutes: fewer memory sizes and repetitions
    .venv/bin/python bench/run.py --smoke    # < 2 minutes, for CI

Normally started by bench/bench.sh, which syncs the two environments first
(.venv: this harness and the emulator; bench/python/.venv: the peers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness import quota, report  # noqa: E402
from harness.driver import Profile, Run, Settings  # noqa: E402
from harness.functions import NAMES  # noqa: E402

# What each mode runs. The sweep's reps are bounded by a time budget per
# cell (function x memory size x batch size): at least min_reps, then more
# until cell_seconds have passed, at most max_reps.
MODES = {
    "full": dict(profiles="0,20,20:stub", sizes=[10, 100], reps=20, warmup=3, cold_starts=5, max_minutes=45,
                 sweep_memory=[128, 256, 512, 1024, 1769, 3008], sweep_sizes=[10, 100], sweep_cold_starts=3,
                 sweep_warmup=1, sweep_min_reps=5, sweep_max_reps=20, sweep_cell_seconds=20.0,
                 instructions="all", instructions_batch=100, instructions_invocations=1),
    "quick": dict(profiles="0", sizes=[10, 100], reps=5, warmup=1, cold_starts=2, max_minutes=15,
                  sweep_memory=[128, 512, 1769], sweep_sizes=[10, 100], sweep_cold_starts=1,
                  sweep_warmup=1, sweep_min_reps=5, sweep_max_reps=8, sweep_cell_seconds=2.0,
                  instructions="rust", instructions_batch=100, instructions_invocations=2),
    "smoke": dict(profiles="0,20,20:stub", sizes=[5, 20], reps=1, warmup=1, cold_starts=1, max_minutes=3,
                  sweep_memory=[512], sweep_sizes=[10, 100], sweep_cold_starts=1,
                  sweep_warmup=0, sweep_min_reps=1, sweep_max_reps=1, sweep_cell_seconds=0.0,
                  instructions="rust", instructions_batch=20, instructions_invocations=1),
}

def _profiles(text: str) -> list[Profile]:
    try:
        return [Profile.parse(x) for x in text.split(",") if x.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _instructions(settings: Settings, wanted: list[str], batch: int, invocations: int) -> dict:
    """Instructions per message from harness/instructions.py (callgrind), for the functions wanted.

    Per function: {"instructions_per_message": float, ...} or {"reason": why not}; never guessed.
    """
    if not wanted:
        return {"available": False, "reason": "not asked for (--instructions '')"}
    try:
        from harness import instructions
    except ImportError as error:
        return {"available": False, "reason": f"harness/instructions.py not available ({error})"}
    reason = instructions.available()
    if reason:
        return {"available": False, "reason": reason}
    out = {}
    for sp in instructions.specs(settings.rust_bootstrap, settings.venv):
        if sp.name not in wanted or sp.name not in settings.functions:
            continue
        sys.stderr.write(f"  .. instructions: {sp.name} under callgrind, {invocations} x batch {batch}\n")
        t0 = time.monotonic()
        try:
            row = instructions.measure(sp, batch=batch, invocations=invocations, warmup=1,
                                       work_dir=settings.work_dir / "instructions" / sp.name,
                                       max_concurrency=settings.max_concurrency)
        except Exception as error:  # noqa: BLE001 - report the reason, keep the run's results
            row = {"unavailable": f"{type(error).__name__}: {error}"}
        if "unavailable" in row:
            row = {"reason": row["unavailable"], "batch": batch}
        row["seconds"] = round(time.monotonic() - t0, 1)
        out[sp.name] = row
    return {"available": True, "batch": batch, "functions": out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--smoke", action="store_true",
                   help="CI: 1 repetition, small batches, every function at one quota (512 MB); under 2 minutes")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: 0 ms rows only, memory sizes 128/512/1769, fewer repetitions")
    p.add_argument("--functions", default=",".join(NAMES), help="comma list of %s" % NAMES)
    p.add_argument("--rust-bootstrap", default=None,
                   help="path of the Rust consumer binary (default: $BENCH_RUST_BOOTSTRAP, then "
                        "$CARGO_TARGET_DIR/release/consumer, ~/.cache/sqs-pipeline/target/release/consumer, "
                        "target/release/consumer)")
    p.add_argument("--require-rust", action="store_true",
                   help="fail (exit 1) when the Rust bootstrap is missing instead of skipping it")
    p.add_argument("--latency", type=_profiles, default=None,
                   help="latency settings: ms added per AWS request, ':stub' to answer S3/DynamoDB calls at "
                        "the proxy instead of the emulator (default 0,20,20:stub)")
    p.add_argument("--sizes", type=_ints, default=None, help="batch sizes (default 10,100; smoke 5,20)")
    p.add_argument("--reps", type=int, default=None, help="timed invocations per size and delay (default 20; smoke 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed invocations first (default 3; smoke 1)")
    p.add_argument("--cold-starts", type=int, default=None, help="process starts per function (default 5; smoke 1)")
    p.add_argument("--memory-mb", type=int, default=1769,
                   help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE of the latency rows, one pinned core (1769 = one vCPU)")
    p.add_argument("--memory-sizes", type=_ints, default=None,
                   help="the sweep's memory sizes in MB, each under a CPU quota of size/1769 of a core "
                        "(default 128,256,512,1024,1769,3008; quick 128,512,1769; smoke 512; '' for none)")
    p.add_argument("--sweep-sizes", type=_ints, default=None, help="the sweep's batch sizes (default 10,100)")
    p.add_argument("--sweep-latency", type=Profile.parse, default=Profile(20.0, "stub"),
                   help="the sweep's latency setting (default 20:stub)")
    p.add_argument("--cell-seconds", type=float, default=None,
                   help="time budget per sweep cell (function x memory x batch size) after its minimum reps "
                        "(default 20; quick 2)")
    p.add_argument("--min-reps", type=int, default=None, help="sweep: timed invocations per cell at least (default 5)")
    p.add_argument("--max-reps", type=int, default=None, help="sweep: timed invocations per cell at most (default 20)")
    p.add_argument("--instructions", default=None,
                   help="functions to count instructions per message of, under callgrind (harness/instructions.py;"
                        " default: all in a full run, rust in quick and smoke; '' for none)")
    p.add_argument("--instructions-batch", type=int, default=None, help="batch size counted (default 100; smoke 20)")
    p.add_argument("--require-quota", action="store_true",
                   help="fail (exit 1) when no CPU quota can be set, instead of skipping the memory sweep")
    p.add_argument("--cpu-period-us", type=int, default=quota.DEFAULT_PERIOD_US,
                   help=f"CFS period of the quota, µs (default {quota.DEFAULT_PERIOD_US}: see harness/quota.py)")
    p.add_argument("--max-concurrency", type=int, default=64,
                   help="MAX_CONCURRENCY given to every function: messages in flight in the Rust consumer "
                        "(its default is 64), threads in the plain peer; the powertools peer is sequential")
    p.add_argument("--emulator-port", type=int, default=int(os.environ.get("BENCH_EMULATOR_PORT", "4599")))
    p.add_argument("--emulator-python", default=sys.executable, help="interpreter with ministack installed")
    p.add_argument("--venv", type=Path, default=BENCH_DIR / "python" / ".venv", help="the Python peers' venv")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where the report goes (default bench/results; smoke: bench/.work/smoke-results)")
    p.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="logs and zips")
    p.add_argument("--no-pin", action="store_true", help="do not pin the function to its own CPU")
    p.add_argument("--no-conformance", action="store_true", help="skip the partial-failure check")
    p.add_argument("--max-minutes", type=float, default=None, help="time budget (default 30; smoke 2)")
    a = p.parse_args(argv)

    functions = [f.strip() for f in a.functions.split(",") if f.strip()]
    unknown = set(functions) - set(NAMES)
    if unknown:
        p.error(f"unknown functions: {sorted(unknown)}")
    if a.smoke and a.quick:
        p.error("--smoke and --quick exclude each other")
    smoke = a.smoke
    mode = "smoke" if smoke else "quick" if a.quick else "full"
    m = MODES[mode]
    memory = a.memory_sizes if a.memory_sizes is not None else m["sweep_memory"]
    for mb in memory:
        try:
            quota.quota_us(mb, a.cpu_period_us)
        except ValueError as error:
            p.error(str(error))
    settings = Settings(
        functions=functions,
        profiles=a.latency or _profiles(m["profiles"]),
        sizes=a.sizes or m["sizes"],
        reps=a.reps or m["reps"],
        warmup=a.warmup if a.warmup is not None else m["warmup"],
        cold_starts=a.cold_starts or m["cold_starts"],
        memory_mb=a.memory_mb,
        emulator_port=a.emulator_port,
        emulator_python=a.emulator_python,
        venv=a.venv.resolve(),
        rust_bootstrap=a.rust_bootstrap,
        out_dir=(a.out_dir or (BENCH_DIR / ".work" / "smoke-results" if smoke else BENCH_DIR / "results")).resolve(),
        work_dir=a.work_dir.resolve(),
        pin=not a.no_pin,
        max_concurrency=a.max_concurrency,
        conformance=not a.no_conformance,
        max_minutes=a.max_minutes or m["max_minutes"],
        smoke=smoke,
        sweep_memory=memory,
        sweep_sizes=a.sweep_sizes or m["sweep_sizes"],
        sweep_profile=a.sweep_latency,
        sweep_cold_starts=m["sweep_cold_starts"],
        sweep_warmup=m["sweep_warmup"],
        sweep_min_reps=a.min_reps or m["sweep_min_reps"],
        sweep_max_reps=max(a.max_reps or m["sweep_max_reps"], a.min_reps or m["sweep_min_reps"]),
        sweep_cell_seconds=a.cell_seconds if a.cell_seconds is not None else m["sweep_cell_seconds"],
        cpu_period_us=a.cpu_period_us,
        mode=mode,
    )
    t0 = time.monotonic()
    results = Run(settings).execute()
    wanted = [f.strip() for f in (a.instructions if a.instructions is not None else m["instructions"]).split(",")
              if f.strip()]
    wanted = functions if wanted == ["all"] else wanted
    results["instructions"] = _instructions(settings, wanted, a.instructions_batch or m["instructions_batch"],
                                            m["instructions_invocations"])
    paths = report.write(results, settings.out_dir)
    elapsed = time.monotonic() - t0
    print("\n".join(f"{k + ':':8}{v}" for k, v in paths.items()) + f"\n({elapsed:.1f}s)")
    q = results["settings"]["sweep"].get("quota") or {}
    no_quota = bool(settings.sweep_memory) and not q.get("available")
    if no_quota:
        print(f"CPU quota: NOT SET ({q.get('how')}); the memory sweep and cost table were skipped")
    for line in report.instruction_lines(results):
        print(line)

    statuses = {n: r["status"] for n, r in results["functions"].items()}
    bad = {n for n, s in statuses.items() if s != "ok" and s != "missing"}
    wrong = {n for n, r in results["functions"].items()
             if r["verify"]["problems"] or (r.get("conformance") and not r["conformance"]["ok"])}
    for n, s in statuses.items():
        print(f"  {n}: {s}" + (" (contract problems, see report)" if n in wrong else ""))
    # A missing Rust binary is reported (skipped), not an error; a function
    # that fails or stores the wrong thing is.
    failed = bad | wrong
    if a.require_rust and statuses.get("rust") == "missing":
        failed.add("rust")
    skipped = sum(1 for n, s in statuses.items() if s == "missing" and n not in failed)
    passed = len(statuses) - len(failed) - skipped
    print(f"functions: {passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
    if no_quota and a.require_quota:
        print("failing: --require-quota and no CPU quota could be set")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
