"""CPU accounting from /proc, and the facts about the machine and the code that a result records.

Server CPU is read per process tree: utime + stime of every live process under a root PID
plus cutime + cstime (children that exited and were reaped, such as a recycled gunicorn
worker), so a before/after difference is the CPU the server spent in between, whatever its
process model. Linux only.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "CLK_TCK",
    "cpu_seconds",
    "git_commit",
    "host_busy_seconds",
    "machine",
    "package_versions",
    "process_tree",
]

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (the workers of a multi-process server)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def parse_stat_times(stat: str) -> tuple[int, int, int, int]:
    """(utime, stime, cutime, cstime) in clock ticks from one ``/proc/PID/stat`` line.

    The command name (field 2) may hold spaces and parentheses: fields are counted
    from the last ``)``.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def cpu_seconds(root: int) -> float:
    """CPU seconds spent so far by the process tree under ``root`` (reaped children too)."""
    ticks = 0
    for p in process_tree(root):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        ticks += sum(parse_stat_times(stat))
    return ticks / CLK_TCK


def host_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``, first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already inside user/nice: count the first 8 fields only
    return (sum(fields[:8]) - idle) / CLK_TCK


def machine() -> dict[str, Any]:
    """CPU model, cores, kernel, Python, and the load average now."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_before": list(os.getloadavg()),
    }


def git_commit() -> tuple[str, bool]:
    """(HEAD commit, whether ``dsfeatures/`` has uncommitted changes)."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--", "dsfeatures"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names`` in this interpreter (``-`` when missing)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out
