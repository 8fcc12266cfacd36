"""The functions under test and how Lambda would start them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .runtime_api import RuntimeApi

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
ACCOUNT = "000000000000"
REGION = "us-east-1"


@dataclass
class FunctionSpec:
    name: str
    kind: str  # "rust" | "python" | "node"
    argv: list[str]
    cwd: Path
    handler: str
    extra_env: dict[str, str] = field(default_factory=dict)
    missing: str | None = None  # why it cannot run, if it cannot
    concurrency: str = ""  # how it runs a batch's messages, as the report's ratios say it

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}"


def rust_bootstrap_candidates() -> list[Path]:
    out = []
    if os.environ.get("BENCH_RUST_BOOTSTRAP"):
        return [Path(os.environ["BENCH_RUST_BOOTSTRAP"])]
    if os.environ.get("CARGO_TARGET_DIR"):
        out.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "consumer")
    out.append(Path.home() / ".cache" / "sqs-pipeline" / "target" / "release" / "consumer")
    out.append(REPO_DIR / "target" / "release" / "consumer")
    return out


def rust_spec(path: str | None) -> FunctionSpec:
    candidates = [Path(path)] if path else rust_bootstrap_candidates()
    found = next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
    spec = FunctionSpec(
        name="rust",
        kind="rust",
        argv=[str(found or candidates[0])],
        cwd=(found or candidates[0]).parent,
        handler="bootstrap",
        concurrency="bounded concurrent (MAX_CONCURRENCY messages at once)",
    )
    if found is None:
        spec.missing = (
            "Rust bootstrap not found (looked at: "
            + ", ".join(str(p) for p in candidates)
            + "). Build it with `CARGO_TARGET_DIR=/root/.cache/sqs-pipeline/target "
            "cargo build --release -p consumer`, or point BENCH_RUST_BOOTSTRAP / "
            "--rust-bootstrap at it."
        )
    return spec


# (name, folder under bench/python, how it runs a batch): the Python peers in report order.
PYTHON_PEERS = [
    ("python-plain", "plain", "bounded concurrent (a pool of MAX_CONCURRENCY threads)"),
    ("python-powertools-async", "powertools-async",
     "concurrent via asyncio (AsyncBatchProcessor; MAX_CONCURRENCY connections)"),
    ("python-powertools-sequential", "powertools-sequential", "sequential (BatchProcessor: one record at a time)"),
]
PYTHON_SHARED = BENCH_DIR / "python" / "shared"
# Every function in report order: the fairest peer of Rust (the same concurrency model) first,
# the sequential one last.
NAMES = ["rust", "python-powertools-async", "python-plain", "node-powertools", "python-powertools-sequential"]


def python_specs(venv: Path) -> list[FunctionSpec]:
    python = venv / "bin" / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        version = out.stdout.strip()
        missing = None
    except (OSError, subprocess.SubprocessError) as error:
        missing = f"Python peers' venv not usable at {venv} ({error}); run bench/bench.sh to create it"
    specs = []
    for name, folder, concurrency in PYTHON_PEERS:
        specs.append(
            FunctionSpec(
                name=name,
                kind="python",
                argv=[str(python), "-m", "awslambdaric", "handler.handler"],
                cwd=BENCH_DIR / "python" / folder,
                handler="handler.handler",
                extra_env={
                    "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
                    # /var/task is read-only on Lambda: no .pyc is written there.
                    "PYTHONDONTWRITEBYTECODE": "1",
                    "PYTHONUNBUFFERED": "1",
                    # contract.py, which every Python peer's zip holds beside handler.py.
                    "PYTHONPATH": str(PYTHON_SHARED),
                },
                missing=missing,
                concurrency=concurrency,
            )
        )
    return specs


NODE_DIR = BENCH_DIR / "node"


def node_specs(node_dir: Path = NODE_DIR) -> list[FunctionSpec]:
    """The Node.js peer, started as Lambda's nodejs runtime starts a function:
    its bootstrap (bench/node/bootstrap) execs node with the runtime interface
    client, aws-lambda-ric, installed by bench/node/install.sh."""
    ric = node_dir / "node_modules" / "aws-lambda-ric"
    node = shutil.which("node")
    major, missing = "20", None
    if node is None:
        missing = "node not found on PATH: the Node peer needs Node.js 20+ (see bench/node/install.sh)"
    else:
        try:
            out = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True,
                                 timeout=30, check=True)
            major = out.stdout.strip().split(".")[0]
        except (OSError, subprocess.SubprocessError) as error:
            missing = f"{node} does not run ({error})"
    error_file = node_dir / ".install-error"
    if missing is None and error_file.is_file():
        missing = "bench/node/install.sh failed: " + error_file.read_text(errors="replace").strip()
    if missing is None and not (ric / "dist" / "rapid-client.node").is_file():
        missing = f"aws-lambda-ric is not installed in {ric.parent}: run bench/node/install.sh (bench/bench.sh does)"
    return [
        FunctionSpec(
            name="node-powertools",
            kind="node",
            argv=[str(node_dir / "bootstrap")],
            cwd=node_dir,
            handler="handler.handler",
            extra_env={
                "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{major}.x",
                # Lambda puts its node first on PATH (/var/lang/bin).
                "PATH": f"{Path(node).parent if node else '/usr/bin'}:/usr/local/bin:/usr/bin:/bin",
                "LAMBDA_RUNTIME_DIR": str(ric),
            },
            missing=missing,
            concurrency="parallel (BatchProcessor: every record at once; MAX_CONCURRENCY sockets per client)",
        )
    ]


def lambda_env(spec: FunctionSpec, runtime_api: str, memory_mb: int, home: Path, app_env: dict[str, str]) -> dict[str, str]:
    """The environment Lambda gives a function, plus the function's own settings."""
    stream = time.strftime("%Y/%m/%d") + "/[$LATEST]" + os.urandom(16).hex()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        # An empty home: no ~/.aws files of whoever runs the bench are read.
        "HOME": str(home),
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": str(spec.cwd),
        "LAMBDA_RUNTIME_DIR": str(spec.cwd),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
    }
    env.update(spec.extra_env)
    env.update(app_env)
    return env


class FunctionProcess:
    """One execution environment: a Runtime API endpoint and the process it serves.

    concurrency: invocations the endpoint lets the process hold at once (see
    RuntimeApi; > 1 for a process given AWS_LAMBDA_MAX_CONCURRENCY).
    """

    def __init__(self, spec: FunctionSpec, env_for, log_path: Path, cpus: set[int] | None, concurrency: int = 1,
                 cgroup=None):
        self.spec = spec
        # A quota.Group (CPU quota by memory size): the child joins it before
        # exec, so its init runs under the quota too.
        self.cgroup = cgroup
        self.api = RuntimeApi(spec.arn, concurrency=concurrency).start()
        self.env = env_for(self.api.address)
        self.log_path = log_path
        self.cpus = cpus
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._stopped = False

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        join_fd = self.cgroup.join_fd() if self.cgroup is not None else None
        self.started_at = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                self.spec.argv,
                cwd=self.spec.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # One write(2) between fork and exec: "0" moves the writer.
                preexec_fn=None if join_fd is None else (lambda: os.write(join_fd, b"0")),
            )
        finally:
            log.close()
            if join_fd is not None:
                os.close(join_fd)
        if self.cpus:
            try:
                os.sched_setaffinity(self.proc.pid, self.cpus)
            except OSError:
                pass

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_init(self, timeout_s: float) -> tuple[float | None, str | None]:
        """Init duration in ms (process start to first `next`), or an error."""
        ok = self.api.wait_ready(timeout_s, alive=self.alive)
        if ok:
            return (self.api.first_next_at - self.started_at) * 1000.0, None
        if self.api.init_error is not None:
            return None, f"init error: {self.api.init_error[:500].decode('utf-8', 'replace')}"
        if not self.alive():
            return None, (
                f"process exited with code {self.proc.returncode} before asking for an event "
                f"(log: {self.log_path})"
            )
        return None, f"no `next` call within {timeout_s:.0f}s (log: {self.log_path})"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.api.close()

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def all_specs(rust_bootstrap: str | None, venv: Path) -> list[FunctionSpec]:
    """Every function the bench knows, in report order."""
    return [rust_spec(rust_bootstrap)] + python_specs(venv) + node_specs()
