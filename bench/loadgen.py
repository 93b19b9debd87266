"""Lean load generators for ceiling measurements, each in its own process.

* :func:`run_wrk`: closed loop (a fixed number of connections, each sending its next
  request when the previous answer arrived) with ``wrk`` (C, one thread) and a Lua script
  that cycles through pre-formatted POST requests and prints wrk's full latency histogram
  as JSON. Its CPU is a small fraction of any Python server's, which matters on 2 cores.
* :func:`run_closed_aiohttp`: the same with an aiohttp client process, when wrk is missing.
* :func:`run_open_loop`: open loop (requests started at a fixed rate whatever the answers
  do) with an aiohttp client process; latency counts from each request's *scheduled*
  start, so a server that falls behind is charged for the queueing it causes.

Every generator returns a :class:`LoadResult` with a latency histogram in microseconds
(merged across slices by :func:`merge_histograms`, read by :func:`percentile`) and the
generator's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LoadResult",
    "merge_histograms",
    "parse_wrk_output",
    "percentile",
    "run_closed_aiohttp",
    "run_open_loop",
    "run_wrk",
    "wrk_available",
]

#: wrk (4.1) script: cycle through one request body per line of a file; print the histogram.
WRK_LUA = r"""
local reqs = {}
local n = 0
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("POST", args[2], {["Content-Type"] = "application/json"}, line)
  end
  i = tonumber(args[3] or "0") % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local parts = {}
  -- wrk 4.1: #latency is the number of distinct values, latency(i) the i-th (value, count)
  for k = 1, #latency do
    local us, c = latency(k)
    parts[#parts + 1] = string.format("%d:%d", us, c)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"hist":"%s"}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
"""


@dataclass
class LoadResult:
    """What one measurement slice produced (client side)."""

    requests: int
    """Answers received (any status)."""
    errors: int
    """Non-2xx answers, timeouts and socket errors."""
    duration_s: float
    """Measured wall time."""
    hist_us: dict[int, int] = field(default_factory=dict)
    """Latency histogram: microseconds -> count."""
    loadgen_cpu_s: float = 0.0
    """CPU seconds the generator used."""
    generator: str = ""
    """``wrk``, ``aiohttp`` or ``aiohttp-open``."""
    offered_rate: float | None = None
    """Requests/s scheduled (open loop only)."""


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of a histogram, nearest rank; None when empty."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, -(-q * total // 100))  # ceil(q/100 * total), at least 1
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= rank:
            return float(value)
    return float(max(hist))


def merge_histograms(hists: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The sum of several histograms."""
    out: Counter[int] = Counter()
    for h in hists:
        out.update(h)
    return dict(out)


def to_histogram(latencies_us: Iterable[int]) -> dict[int, int]:
    """A histogram of integer microsecond latencies."""
    return dict(Counter(latencies_us))


def parse_wrk_output(text: str) -> dict[str, Any]:
    """The JSON line that :data:`WRK_LUA` prints, with ``hist`` as ``{us: count}``."""
    for line in text.splitlines():
        if line.startswith("WRK-JSON "):
            got: dict[str, Any] = json.loads(line[len("WRK-JSON ") :])
            hist: dict[int, int] = {}
            if got["hist"]:
                for pair in got["hist"].split(","):
                    us, count = pair.split(":")
                    hist[int(us)] = int(count)
            got["hist"] = hist
            return got
    raise ValueError(f"no WRK-JSON line in wrk's output:\n{text[-2000:]}")


def wrk_available() -> str | None:
    """The path of ``wrk``, or None."""
    return shutil.which("wrk")


# --- wrk --------------------------------------------------------------------------------


def run_wrk(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    duration: float,
    *,
    start_at: int = 0,
    timeout_s: float = 10.0,
) -> LoadResult:
    """A closed-loop slice with wrk (one thread, ``concurrency`` connections).

    wrk takes whole seconds. ``url`` is the full URL (its path is the POST target);
    ``start_at`` rotates the first body, so that successive slices do not repeat the
    same sequence.
    """
    wrk = wrk_available()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    base, _, path = url.partition("://")[2].partition("/")
    with tempfile.TemporaryDirectory(prefix="dsf-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_LUA)
        body_file = Path(tmp) / "bodies.txt"
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        out = Path(tmp) / "out.txt"
        argv = [
            wrk, "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
            "--timeout", f"{max(1, round(timeout_s))}s", "-s", str(script),
            f"http://{base}/", "--", str(body_file), "/" + path, str(start_at),
        ]  # fmt: skip
        with out.open("wb") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # interrupted: never leave wrk behind
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = out.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    got = parse_wrk_output(text)
    errors = sum(got[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=int(got["requests"]),
        errors=errors,
        duration_s=got["duration_us"] / 1e6,
        hist_us=got["hist"],
        loadgen_cpu_s=usage.ru_utime + usage.ru_stime,
        generator="wrk",
    )


# --- aiohttp generators (in a spawned process) ------------------------------------------


async def _closed(url: str, bodies: Sequence[bytes], concurrency: int, duration: float) -> Any:
    import aiohttp

    lat: list[int] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # one unmeasured request per connection: connect outside the window
        await asyncio.gather(*(_one(session, url, bodies[0], headers) for _ in range(concurrency)))
        cpu0 = time.process_time()
        t0 = time.monotonic()
        t1 = t0 + duration

        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.monotonic() < t1:
                begin = time.perf_counter_ns()
                ok = await _one(session, url, bodies[i % len(bodies)], headers)
                i += concurrency
                lat.append((time.perf_counter_ns() - begin) // 1000)
                if not ok:
                    errors += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        took = time.monotonic() - t0
        cpu = time.process_time() - cpu0
    return {"lat": lat, "errors": errors, "duration": took, "cpu": cpu}


async def _open(url: str, bodies: Sequence[bytes], rate: float, duration: float) -> Any:
    import aiohttp

    lat: list[int] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(_one(session, url, bodies[0], headers) for _ in range(8)))
        count = int(rate * duration)
        cpu0 = time.process_time()
        t0 = time.perf_counter_ns() + 10_000_000
        step = 1e9 / rate

        async def shot(i: int, due: int) -> None:
            nonlocal errors
            ok = await _one(session, url, bodies[i % len(bodies)], headers)
            lat.append((time.perf_counter_ns() - due) // 1000)  # from the scheduled start
            if not ok:
                errors += 1

        tasks = []
        for i in range(count):
            due = t0 + int(i * step)
            wait = (due - time.perf_counter_ns()) / 1e9
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(shot(i, due)))
        await asyncio.wait(tasks, timeout=30)
        took = (time.perf_counter_ns() - t0) / 1e9
        cpu = time.process_time() - cpu0
    return {"lat": lat, "errors": errors + count - len(lat), "duration": took, "cpu": cpu}


async def _one(session: Any, url: str, body: bytes, headers: Mapping[str, str]) -> bool:
    import aiohttp

    try:
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            return bool(r.status == 200)
    except (aiohttp.ClientError, TimeoutError):
        return False


def _child(kind: str, args: tuple[Any, ...], conn: Any) -> None:
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        coro = _closed(*args) if kind == "closed" else _open(*args)
        conn.send(run(coro))
    except BaseException as e:
        conn.send({"error": repr(e)})
    finally:
        conn.close()


def _in_process(kind: str, args: tuple[Any, ...], within: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(kind, args, send), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(within):
            raise RuntimeError(f"the {kind}-loop generator did not finish in {within:.0f} s")
        got: dict[str, Any] = recv.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if "error" in got:
        raise RuntimeError(f"load generator failed: {got['error']}")
    return got


def run_closed_aiohttp(
    url: str, bodies: Sequence[bytes], concurrency: int, duration: float
) -> LoadResult:
    """A closed-loop slice with an aiohttp client process (fallback when wrk is missing)."""
    got = _in_process("closed", (url, list(bodies), concurrency, duration), duration + 60)
    return LoadResult(
        requests=len(got["lat"]),
        errors=got["errors"],
        duration_s=got["duration"],
        hist_us=to_histogram(got["lat"]),
        loadgen_cpu_s=got["cpu"],
        generator="aiohttp",
    )


def run_open_loop(url: str, bodies: Sequence[bytes], rate: float, duration: float) -> LoadResult:
    """An open-loop slice: ``rate`` requests/s for ``duration`` seconds, whatever the answers."""
    got = _in_process("open", (url, list(bodies), rate, duration), duration + 90)
    return LoadResult(
        requests=len(got["lat"]),
        errors=got["errors"],
        duration_s=got["duration"],
        hist_us=to_histogram(got["lat"]),
        loadgen_cpu_s=got["cpu"],
        generator="aiohttp-open",
        offered_rate=rate,
    )
