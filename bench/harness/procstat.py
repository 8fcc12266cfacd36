"""CPU time and memory of one process, read from /proc (Linux only)."""

from __future__ import annotations

import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks_seconds(pid: int) -> float:
    """user+sys of the whole process (all threads, live and exited), /proc/<pid>/stat.

    The kernel reports these in clock ticks (usually 10 ms), so read them
    around a block of invocations, not around one short invocation.
    """
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data.rsplit(b")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def cpu_user_sys_seconds(pid: int) -> tuple[float, float]:
    """user and sys separately (clock ticks, as above)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_clock_seconds(pid: int) -> float | None:
    """The same quantity with nanosecond resolution: the process's CPU-time clock.

    This is clock_getcpuclockid(pid) spelled out (Linux encodes a process's
    CPU clock id as (~pid << 3) | CPUCLOCK_SCHED); None where it is refused.
    """
    clock_id = ((~pid) << 3) | 2
    try:
        return time.clock_gettime_ns(clock_id) / 1e9
    except OSError:
        return None


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS), VmSize, VmPeak from /proc/<pid>/status, in KiB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize", "VmPeak", "Threads"):
                out[key] = int(value.split()[0])
    return out


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine (all CPUs, all processes), /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
