"""Lambda's CPU share as a cgroup CPU quota (Linux, root).

Lambda gives a function CPU in proportion to its memory: one vCPU at
1,769 MB (AWS: "at 1,769 MB, a function has the equivalent of one vCPU").
Here each function process runs in its own cgroup whose CFS bandwidth is
`quota = period * memory / 1769`, so a 128 MB function gets 7.2% of a core,
and a 3,008 MB one 1.7 cores (spread over two CPUs).

Both cgroup interfaces are handled:

- v1 (a `cpu` hierarchy, e.g. /sys/fs/cgroup/cpu): `cpu.cfs_period_us`,
  `cpu.cfs_quota_us`, `cgroup.procs`, throttling in `cpu.stat`;
- v2 (the unified hierarchy): `cpu.max` ("<quota> <period>"), with the
  `cpu` controller enabled in the parent's `cgroup.subtree_control`.

Where neither can be written, `detect()` returns None and a reason; the
caller must then skip the quota rows, never report unthrottled numbers as
if they had a quota.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

ONE_VCPU_MB = 1769
# The kernel refuses a CFS quota or period under 1 ms (min_cfs_quota_period).
MIN_QUOTA_US = 1000
MAX_PERIOD_US = 1_000_000
# Default period: 20 ms. Lambda's own period is not documented. The kernel's
# default of 100 ms would let a 128 MB function (7.2%) run 7.2 ms and then
# stall 92.8 ms, which turns every short invocation into a lottery on where
# in the period it starts. 10 ms would spread the share more evenly, but its
# 128 MB quota (0.72 ms) is below the kernel's 1 ms minimum. 20 ms is the
# shortest period at which every swept size (down to 128 MB: 1.45 ms) can
# be set. A multi-threaded Python function at 128 MB runs 35-50% slower at
# 20 ms than at 100 ms (measured: bench/README.md), so the period is a
# parameter and the report states it.
DEFAULT_PERIOD_US = 20_000
PREFIX = "sqs-bench-"


def cpu_share(memory_mb: int) -> float:
    """Cores Lambda gives at this memory size (memory / 1,769 MB of one vCPU)."""
    if memory_mb <= 0:
        raise ValueError(f"memory size must be positive, got {memory_mb}")
    return memory_mb / ONE_VCPU_MB


def quota_us(memory_mb: int, period_us: int = DEFAULT_PERIOD_US) -> int:
    """The CFS quota (µs of CPU per period, over all CPUs) for a memory size."""
    if not MIN_QUOTA_US <= period_us <= MAX_PERIOD_US:
        raise ValueError(f"period {period_us} µs outside the kernel's {MIN_QUOTA_US}..{MAX_PERIOD_US}")
    q = round(period_us * cpu_share(memory_mb))
    if q < MIN_QUOTA_US:
        raise ValueError(
            f"{memory_mb} MB at a {period_us} µs period is a {q} µs quota, under the kernel's "
            f"{MIN_QUOTA_US} µs minimum: use a period of at least "
            f"{math.ceil(MIN_QUOTA_US / cpu_share(memory_mb))} µs")
    return q


def cpus_needed(memory_mb: int) -> int:
    """CPUs the quota can only be used on in parallel (1.7 cores need 2)."""
    return max(1, math.ceil(cpu_share(memory_mb) - 1e-9))


@dataclass
class Backend:
    """A cgroup hierarchy where this process can make CPU-limited groups."""

    version: int  # 1 or 2
    root: Path  # the directory new groups are made in

    def describe(self) -> str:
        return f"cgroup v{self.version} at {self.root}"


def _mounts(mounts_text: str) -> list[tuple[str, Path, list[str]]]:
    out = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[2], Path(parts[1]), parts[3].split(",")))
    return out


def _own_cgroup(cgroup_text: str, version: int) -> str:
    """This process's path in the v1 `cpu` hierarchy or the v2 one, from /proc/self/cgroup."""
    for line in cgroup_text.splitlines():
        ident, controllers, path = line.split(":", 2)
        if version == 2 and ident == "0" and controllers == "":
            return path
        if version == 1 and "cpu" in controllers.split(","):
            return path
    return "/"


def detect(mounts_text: str | None = None, cgroup_text: str | None = None) -> tuple[Backend | None, str]:
    """Where CPU-limited groups can be made: (backend, "how") or (None, "why not")."""
    try:
        mounts_text = mounts_text if mounts_text is not None else Path("/proc/self/mounts").read_text()
        cgroup_text = cgroup_text if cgroup_text is not None else Path("/proc/self/cgroup").read_text()
    except OSError as error:
        return None, f"cannot read the cgroup mounts ({error})"
    reasons = []
    for fstype, mount, options in _mounts(mounts_text):
        if fstype == "cgroup" and "cpu" in options:
            root = mount / _own_cgroup(cgroup_text, 1).lstrip("/")
            if not (root / "cpu.cfs_quota_us").exists():
                root = mount
            if os.access(root, os.W_OK):
                return Backend(1, root), f"cgroup v1 cpu controller at {root}"
            reasons.append(f"cgroup v1 cpu hierarchy {root} is not writable (not root?)")
    for fstype, mount, _ in _mounts(mounts_text):
        if fstype != "cgroup2":
            continue
        # A v2 cgroup with processes in it cannot enable controllers for its
        # children ("no internal processes"), except the root: make the
        # groups under the mount's root.
        root = mount
        try:
            available = (root / "cgroup.controllers").read_text().split()
        except OSError as error:
            reasons.append(f"cgroup v2 at {root}: {error}")
            continue
        if "cpu" not in available:
            reasons.append(f"cgroup v2 at {root} offers no cpu controller (has: {' '.join(available) or 'none'})")
            continue
        control = root / "cgroup.subtree_control"
        try:
            if "cpu" not in control.read_text().split():
                control.write_text("+cpu")
        except OSError as error:
            reasons.append(f"cgroup v2 at {root}: cannot enable the cpu controller ({error})")
            continue
        if os.access(root, os.W_OK):
            return Backend(2, root), f"cgroup v2 cpu controller at {root}"
        reasons.append(f"cgroup v2 at {root} is not writable (not root?)")
    return None, "; ".join(reasons) or "no cgroup cpu controller mounted"


class Group:
    """One CPU-limited cgroup for one function's processes."""

    def __init__(self, backend: Backend, name: str, memory_mb: int, period_us: int):
        self.backend = backend
        self.memory_mb = memory_mb
        self.period_us = period_us
        self.quota_us = quota_us(memory_mb, period_us)
        self.path = backend.root / name
        self.path.mkdir()
        try:
            if backend.version == 1:
                # Period first: the quota is checked against it.
                (self.path / "cpu.cfs_period_us").write_text(str(period_us))
                (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            else:
                (self.path / "cpu.max").write_text(f"{self.quota_us} {period_us}")
        except OSError:
            self.remove()
            raise
        self._prime()

    def _prime(self) -> None:
        """Move a throwaway process through the new group once.

        The first process to join a fresh group pays the kernel's set-up of
        it (15-30 ms measured on cgroup v1 here, against under 1 ms for the
        next ones). A function's init is timed from its spawn, so without
        this that set-up would be counted as the function's; on Lambda the
        sandbox exists before init starts.
        """
        fd = self.join_fd()
        try:
            subprocess.run(["true"], preexec_fn=lambda: os.write(fd, b"0"), check=False,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            pass  # no `true` on PATH: init then includes the set-up; nothing else changes
        finally:
            os.close(fd)

    def settings(self) -> dict:
        """What the kernel holds for this group (read back, not what was asked)."""
        if self.backend.version == 1:
            q = int((self.path / "cpu.cfs_quota_us").read_text())
            p = int((self.path / "cpu.cfs_period_us").read_text())
        else:
            q_text, p_text = (self.path / "cpu.max").read_text().split()
            q, p = (-1 if q_text == "max" else int(q_text)), int(p_text)
        return {"quota_us": q, "period_us": p}

    def join_fd(self) -> int:
        """An fd on cgroup.procs: writing b"0" to it moves the writer into the group.

        Handed to a child's pre-exec hook, so the function's whole life (its
        init included) runs under the quota.
        """
        return os.open(self.path / "cgroup.procs", os.O_WRONLY)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def throttling(self) -> dict:
        """Periods run, periods throttled and time throttled (µs), from cpu.stat."""
        try:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line.strip())
        except OSError:
            return {}
        if self.backend.version == 1:
            return {"periods": int(stat.get("nr_periods", 0)), "throttled": int(stat.get("nr_throttled", 0)),
                    "throttled_us": int(stat.get("throttled_time", 0)) // 1000}
        return {"periods": int(stat.get("nr_periods", 0)), "throttled": int(stat.get("nr_throttled", 0)),
                "throttled_us": int(stat.get("throttled_usec", 0))}

    def remove(self) -> None:
        """Move what is left to the parent group and delete this one."""
        if not self.path.exists():
            return
        parent = self.path.parent / "cgroup.procs"
        for pid in self.pids():
            try:
                parent.write_text(str(pid))
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError:
            pass


class Quotas:
    """The run's groups: made on demand, all removed at the end, on Ctrl-C and on SIGTERM."""

    def __init__(self, backend: Backend | None, period_us: int = DEFAULT_PERIOD_US, tag: str = ""):
        self.backend = backend
        self.period_us = period_us
        self.tag = tag or os.urandom(3).hex()
        self.groups: list[Group] = []
        self._count = 0
        if backend is not None:
            atexit.register(self.close)
            self._previous = signal.getsignal(signal.SIGTERM)
            # SIGTERM would end the interpreter without unwinding; turn it into
            # an exception so the finally blocks (and this cleanup) run.
            signal.signal(signal.SIGTERM, _raise_interrupt)

    @property
    def available(self) -> bool:
        return self.backend is not None

    def group(self, label: str, memory_mb: int) -> Group:
        assert self.backend is not None, "no cgroup backend: the caller must skip quota rows"
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)
        g = Group(self.backend, f"{PREFIX}{self.tag}-{self._count}-{safe}-{memory_mb}mb", memory_mb, self.period_us)
        self.groups.append(g)
        return g

    def release(self, g: Group) -> None:
        g.remove()
        if g in self.groups:
            self.groups.remove(g)

    def close(self) -> None:
        for g in list(self.groups):
            self.release(g)


def _raise_interrupt(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")
