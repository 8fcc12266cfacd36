#!/usr/bin/env python3
"""Benchmark the Rust consumer against its Python peers on a local Lambda stand-in.

    bench/.venv/bin/python bench/run.py            # full run -> bench/results/
    bench/.venv/bin/python bench/run.py --smoke    # < 1 minute, for CI

Normally started by bench/bench.sh, which makes the two venvs first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness import report  # noqa: E402
from harness.driver import Profile, Run, Settings  # noqa: E402

ALL_FUNCTIONS = ["rust", "python-plain", "python-powertools"]


def _profiles(text: str) -> list[Profile]:
    try:
        return [Profile.parse(x) for x in text.split(",") if x.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--smoke", action="store_true", help="1 repetition, small batches, well under a minute")
    p.add_argument("--functions", default=",".join(ALL_FUNCTIONS), help="comma list of %s" % ALL_FUNCTIONS)
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
    p.add_argument("--memory-mb", type=int, default=1769, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE (1769 = one vCPU)")
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
    unknown = set(functions) - set(ALL_FUNCTIONS)
    if unknown:
        p.error(f"unknown functions: {sorted(unknown)}")
    smoke = a.smoke
    settings = Settings(
        functions=functions,
        profiles=a.latency or _profiles("0,20,20:stub"),
        sizes=a.sizes or ([5, 20] if smoke else [10, 100]),
        reps=a.reps or (1 if smoke else 20),
        warmup=a.warmup if a.warmup is not None else (1 if smoke else 3),
        cold_starts=a.cold_starts or (1 if smoke else 5),
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
        max_minutes=a.max_minutes or (2 if smoke else 30),
        smoke=smoke,
    )
    t0 = time.monotonic()
    results = Run(settings).execute()
    md, svg, js = report.write(results, settings.out_dir)
    elapsed = time.monotonic() - t0
    print(f"report: {md}\nchart:  {svg}\nraw:    {js}\n({elapsed:.1f}s)")

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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
