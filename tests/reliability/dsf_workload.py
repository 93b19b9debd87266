"""A bounded mixed load on a running daemon, and the checks of the reliability suites.

Writers own disjoint sets of keys and write them with ``if_revision`` (the revision
they last saw) and increasing event times, so the revision a write produces is known
in advance: each row stores it in its ``rev`` feature, next to a ``tag`` derived from
(key, revision). A write that failed (5xx, timeout, reset) may or may not have been
applied; the next write of that key then answers ``CONFLICT`` with the stored revision,
which the writer adopts. Readers read random keys and note, per key, the revision seen
and when their request started.

The record gives three checks:

* **nothing acknowledged is lost**: at the end every key holds at least the revision of
  its last acknowledged write, with the values written at that revision;
* **no stale read**: no read returned a revision older than one acknowledged before
  the read started (both times from one monotonic clock in this process);
* **recovery**: requests fail only during a fault and a short time after it.

Only loopback addresses are used. Every figure of a run is in :class:`LoadReport`.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "FIGURES",
    "Fault",
    "Key",
    "LoadReport",
    "LoadSpec",
    "report_figure",
    "run_load",
    "values_for",
]

#: Summary lines of every scenario run in this session (printed at the end of the run).
FIGURES: list[str] = []


def report_figure(line: str) -> None:
    """Keep one summary line for the end of the session, and print it now."""
    FIGURES.append(line)
    print(line)


#: (group, entity id)
Key = tuple[str, str]


def values_for(key: Key, rev: int, dim: int) -> dict[str, Any]:
    """The values written to ``key`` at revision ``rev`` (a vector too when ``dim``)."""
    values: dict[str, Any] = {"rev": rev, "tag": f"{key[1]}/{rev}"}
    if dim:
        values["vec"] = [float(rev % 97) + 1.0] + [float(i + 1) for i in range(dim - 1)]
    return values


@dataclass
class LoadSpec:
    """What to run: one scalar group, optionally one embedding group with a vector of ``dim``."""

    url: str
    entity_type: str
    scalar_group: str
    embedding_group: str = ""
    dim: int = 0
    scalar_writers: int = 4
    embedding_writers: int = 2
    keys_per_writer: int = 8
    rows_per_write: int = 3
    scalar_readers: int = 3
    embedding_readers: int = 1
    searchers: int = 1
    timeout: float = 5.0
    seed: int = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What a fault coroutine reports: when it began and ended, and what was injected."""

    name: str
    started: float = 0.0
    ended: float = 0.0
    injected: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadReport:
    """Everything one run observed, and the results of the checks."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failure_kinds: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    conflicts_adopted: int = 0
    lost: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    reads_checked: int = 0
    keys: int = 0
    fault: Fault | None = None
    #: (time done, operation, lane, ok) of every request.
    timeline: list[tuple[float, str, str, bool]] = field(default_factory=list)
    #: (time done, "operation:lane", kind, the daemon's message) of every failure.
    failure_log: list[tuple[float, str, str, str]] = field(default_factory=list)
    run_started: float = 0.0
    run_ended: float = 0.0

    def failures_between(self, start: float, end: float, lane: str | None = None) -> int:
        return sum(
            1
            for t, _, ln, ok in self.timeline
            if not ok and start <= t < end and (lane is None or ln == lane)
        )

    def failure_detail(
        self, start: float = 0.0, end: float = float("inf"), what: str | None = None
    ) -> Counter[str]:
        """Failures counted by ``operation:lane``, kind and message (for assertion messages).

        Args:
            start, end: the window (monotonic seconds; default: the whole run).
            what: only this ``operation:lane`` (for example ``write:scalar``).
        """
        return Counter(
            f"{w} {kind}: {message}"
            for t, w, kind, message in self.failure_log
            if start <= t < end and (what is None or w == what)
        )

    def requests_between(self, start: float, end: float, lane: str | None = None) -> int:
        return sum(
            1 for t, _, ln, _ in self.timeline if start <= t < end and (lane is None or ln == lane)
        )

    def recovery_seconds(self) -> float:
        """Seconds from the end of the fault to the last failed request (0 if none failed)."""
        assert self.fault is not None
        last = max(
            (t for t, _, _, ok in self.timeline if not ok and t >= self.fault.ended), default=None
        )
        return 0.0 if last is None else last - self.fault.ended

    def summary(self) -> str:
        f = self.fault
        assert f is not None
        total = sum(self.requests.values())
        failed = sum(self.failures.values())
        injected = ", ".join(f"{k} {v}" for k, v in f.injected.items()) or "none"
        return (
            f"{f.name}: requests {total} (failed {failed}, during the fault "
            f"{self.failures_between(f.started, f.ended + 0.5)}), faults injected: {injected}; "
            f"fault {f.ended - f.started:.1f}s; writes acknowledged {self.acknowledged}; "
            f"lost {len(self.lost)}; stale reads {len(self.stale_reads)} of "
            f"{self.reads_checked}; recovered {self.recovery_seconds():.2f}s after the fault"
        )


class _Run:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.report = LoadReport()
        self.acks: dict[Key, list[tuple[float, int]]] = defaultdict(list)
        self.reads: list[tuple[float, Key, int]] = []
        self.stop = asyncio.Event()
        self.rng = random.Random(spec.seed)

    def note(self, op: str, lane: str, ok: bool, kind: str = "", message: str = "") -> None:
        r = self.report
        now = time.monotonic()
        r.requests[f"{op}:{lane}"] += 1
        if not ok:
            r.failures[f"{op}:{lane}"] += 1
            r.failure_kinds[kind] += 1
            r.failure_log.append((now, f"{op}:{lane}", kind, message))
        r.timeline.append((now, op, lane, ok))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.spec.url,
            timeout=self.spec.timeout,
            headers=self.spec.headers,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        )

    # --- writers --------------------------------------------------------------------------

    async def writer(self, keys: list[Key], dim: int, lane: str) -> None:
        expected = dict.fromkeys(keys, 0)
        rng = random.Random(self.rng.random())
        async with self.client() as c:
            while not self.stop.is_set():
                batch = rng.sample(keys, min(self.spec.rows_per_write, len(keys)))
                now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                rows = [
                    {
                        "group": k[0],
                        "entity_id": k[1],
                        "values": values_for(k, expected[k] + 1, dim),
                        "if_revision": expected[k],
                        "event_time": now,
                    }
                    for k in batch
                ]
                try:
                    r = await c.post(
                        "/v1/features/write",
                        json={"mode": "upsert", "lane": "stream", "rows": rows},
                    )
                except httpx.HTTPError as e:
                    self.note("write", lane, False, type(e).__name__, str(e)[:120])
                    await asyncio.sleep(0.05)
                    continue
                done = time.monotonic()
                if r.status_code != 200:
                    self.note("write", lane, False, f"{r.status_code} {_code(r)}", _message(r))
                    await asyncio.sleep(0.05)  # a client's backoff
                    continue
                self.note("write", lane, True)
                for k, res in zip(batch, r.json()["results"], strict=True):
                    status, rev = res["status"], res.get("revision", 0)
                    if status == "WRITTEN":
                        if rev != expected[k] + 1:
                            self.report.inconsistent.append(
                                f"{k}: WRITTEN revision {rev} after {expected[k]}"
                            )
                        self.acks[k].append((done, rev))
                        self.report.acknowledged += 1
                        expected[k] = rev
                    elif status == "CONFLICT":
                        # A write that failed earlier was applied after all.
                        if rev < expected[k]:
                            self.report.lost.append(
                                f"{k}: stored revision {rev} below acknowledged {expected[k]}"
                            )
                        self.report.conflicts_adopted += 1
                        expected[k] = rev
                    else:
                        self.report.inconsistent.append(f"{k}: unexpected {status}")

    # --- readers --------------------------------------------------------------------------

    async def reader(self, group: str, keys: list[Key], lane: str) -> None:
        rng = random.Random(self.rng.random())
        etype = self.spec.entity_type
        async with self.client() as c:
            while not self.stop.is_set():
                sample = rng.sample(keys, min(10, len(keys)))
                started = time.monotonic()
                try:
                    r = await c.post(
                        "/v1/features/get",
                        json={
                            "entities": {etype: [k[1] for k in sample]},
                            "features": [f"{group}:rev"],
                        },
                    )
                except httpx.HTTPError as e:
                    self.note("read", lane, False, type(e).__name__, str(e)[:120])
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code != 200:
                    self.note("read", lane, False, f"{r.status_code} {_code(r)}", _message(r))
                    await asyncio.sleep(0.05)
                    continue
                unavailable = False
                for k, row in zip(sample, r.json()["rows"], strict=True):
                    status = row["statuses"][0]
                    if status == "PRESENT":
                        self.reads.append((started, k, int(row["values"][0])))
                    elif status == "NOT_FOUND":
                        self.reads.append((started, k, 0))
                    else:
                        unavailable = True
                self.note("read", lane, not unavailable, "UNAVAILABLE value")
                if unavailable:
                    await asyncio.sleep(0.05)

    async def searcher(self, group: str, dim: int) -> None:
        async with self.client() as c:
            while not self.stop.is_set():
                try:
                    r = await c.post(
                        "/v1/embeddings/search",
                        json={"group": group, "vector": [1.0] * dim, "k": 5},
                    )
                except httpx.HTTPError as e:
                    self.note("search", "embedding", False, type(e).__name__, str(e)[:120])
                    await asyncio.sleep(0.05)
                    continue
                ok = r.status_code == 200
                kind = f"{r.status_code} {_code(r)}"
                self.note("search", "embedding", ok, kind, "" if ok else _message(r))
                await asyncio.sleep(0.02 if ok else 0.05)

    # --- the checks -----------------------------------------------------------------------

    def check_reads(self) -> None:
        times: dict[Key, list[float]] = {k: [t for t, _ in v] for k, v in self.acks.items()}
        for started, k, rev in self.reads:
            acks = self.acks.get(k)
            if not acks:
                continue
            i = bisect.bisect_left(times[k], started)  # acks strictly before the read began
            if i and rev < acks[i - 1][1]:
                self.report.stale_reads.append(
                    f"{k}: read revision {rev} after revision {acks[i - 1][1]} was acknowledged"
                )
        self.report.reads_checked = len(self.reads)

    async def check_final(self, groups: dict[str, list[Key]], dims: dict[str, int]) -> None:
        """Read every key back (retrying values that are UNAVAILABLE for a while)."""
        etype = self.spec.entity_type
        async with self.client() as c:
            for group, keys in groups.items():
                for i in range(0, len(keys), 100):
                    chunk = keys[i : i + 100]
                    rows = await _read_until_available(
                        c, etype, group, [k[1] for k in chunk], with_vector=bool(dims[group])
                    )
                    for k, row in zip(chunk, rows, strict=True):
                        self._check_key(k, row, dims[group])
        self.report.keys = sum(len(v) for v in groups.values())

    def _check_key(self, k: Key, row: dict[str, Any], dim: int) -> None:
        acked = self.acks[k][-1][1] if self.acks.get(k) else 0
        if row["statuses"][0] == "NOT_FOUND":
            if acked:
                self.report.lost.append(f"{k}: gone, revision {acked} was acknowledged")
            return
        rev = int(row["values"][0])
        if rev < acked:
            self.report.lost.append(f"{k}: holds revision {rev}, {acked} was acknowledged")
            return
        want = values_for(k, rev, dim)
        got = {"rev": rev, "tag": row["values"][1]}
        if dim:
            got["vec"] = row["values"][2]
        if got != want:
            self.report.inconsistent.append(f"{k}: revision {rev} holds {got}, wrote {want}")


async def _read_until_available(
    c: httpx.AsyncClient, etype: str, group: str, ids: list[str], *, with_vector: bool
) -> list[dict[str, Any]]:
    features = [f"{group}:rev", f"{group}:tag"] + ([f"{group}:vec"] if with_vector else [])
    deadline = time.monotonic() + 15.0
    while True:
        r = await c.post("/v1/features/get", json={"entities": {etype: ids}, "features": features})
        if r.status_code == 200:
            rows: list[dict[str, Any]] = r.json()["rows"]
            if all(s in ("PRESENT", "NOT_FOUND") for row in rows for s in row["statuses"]):
                return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"final read still failing: {r.status_code} {r.text[:300]}")
        await asyncio.sleep(0.2)


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", ""))[:160]
    except ValueError:
        return r.text[:160]


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json().get("code", ""))
    except ValueError:
        return r.text[:40]


async def run_load(
    spec: LoadSpec,
    seconds: float,
    fault: Callable[[], Awaitable[Fault]],
    *,
    final_url: Callable[[], str] | None = None,
) -> LoadReport:
    """Run the load for ``seconds`` while ``fault()`` runs; then check everything.

    ``fault`` sleeps, injects, lifts the fault and returns what it did; the load keeps
    running until ``seconds`` have passed, so the time after the fault shows recovery.
    The final read-back goes to ``final_url()`` if given (a daemon restarted elsewhere).
    """
    run = _Run(spec)
    scalar: list[Key] = []
    embedding: list[Key] = []
    tasks: list[asyncio.Task[None]] = []
    for w in range(spec.scalar_writers):
        keys = [(spec.scalar_group, f"s{w}-{i}") for i in range(spec.keys_per_writer)]
        scalar += keys
        tasks.append(asyncio.create_task(run.writer(keys, 0, "scalar")))
    if spec.embedding_group:
        for w in range(spec.embedding_writers):
            keys = [(spec.embedding_group, f"e{w}-{i}") for i in range(spec.keys_per_writer)]
            embedding += keys
            tasks.append(asyncio.create_task(run.writer(keys, spec.dim, "embedding")))
        for _ in range(spec.embedding_readers):
            tasks.append(
                asyncio.create_task(run.reader(spec.embedding_group, embedding, "embedding"))
            )
        for _ in range(spec.searchers):
            tasks.append(asyncio.create_task(run.searcher(spec.embedding_group, spec.dim)))
    for _ in range(spec.scalar_readers):
        tasks.append(asyncio.create_task(run.reader(spec.scalar_group, scalar, "scalar")))
    run.report.run_started = time.monotonic()
    try:
        run.report.fault = await fault()
        left = run.report.run_started + seconds - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)
    finally:
        run.stop.set()
        await asyncio.gather(*tasks, return_exceptions=False)
    run.report.run_ended = time.monotonic()
    run.check_reads()
    groups = {spec.scalar_group: scalar}
    dims = {spec.scalar_group: 0}
    if spec.embedding_group:
        groups[spec.embedding_group] = embedding
        dims[spec.embedding_group] = spec.dim
    if final_url is not None:
        run.spec = dataclasses.replace(spec, url=final_url())
    await run.check_final(groups, dims)
    return run.report
