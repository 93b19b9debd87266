"""The bulk loader: rows (Parquet, CSV, JSON lines, any iterable) to the daemon's write API.

It is the online-write step of every generated DAG and the ``dsfeatures-codegen load``
command. Rows are cut into chunks of ``chunk_size``; up to ``concurrency`` chunks are in
flight at once; each is an ``upsert`` through the Python SDK with ``lane=batch`` and an
event time on every row, which is what makes repeating a chunk harmless (the write path
never lets an older event time overwrite a newer one, and the same event time rewrites
the same values). So:

* a retryable failure (daemon away, 429, 5xx, timeout) is retried with exponential
  backoff and jitter, up to ``max_attempts`` per chunk;
* a refusal (400: the daemon validates a request all or nothing) stops the load with the
  daemon's message and the rows of the refused chunk;
* with a :class:`Checkpoint`, every acknowledged chunk is recorded, and a new run over
  the same input skips them (resume after a crash or a failed Airflow try).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from codegen.errors import LoadError
from codegen.files import remove_file, write_atomic
from dsfeatures.client import AsyncClient, DSFError
from dsfeatures.registry.models import FeatureGroup
from dsfeatures.wire import Lane, WriteRow

__all__ = [
    "Checkpoint",
    "LoadOptions",
    "LoadReport",
    "LoadTarget",
    "is_retryable",
    "load_rows",
]

#: Called with the number of rows just acknowledged (or skipped on resume).
Progress = Callable[[int], None]

# 4xx statuses that are no verdict on the rows: a timeout or throttling.
_RETRY_4XX: Final = frozenset({408, 429})


def is_retryable(exc: BaseException) -> bool:
    """Whether repeating a failed write may succeed (the daemon or a store is away)."""
    if not isinstance(exc, DSFError) or exc.code == "TRANSPORT_ERROR":
        return False
    return exc.retryable or exc.status in _RETRY_4XX or exc.status >= 500


# --- rows to write requests -------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    # A naive time is taken as UTC: Spark and Parquet writers here keep UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value  # a string: the daemon parses and checks RFC 3339


def _plain(value: Any, ftype: str) -> Any:
    """A value as the SDK sends it; the daemon checks it against the type."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    if ftype == "timestamp":
        return _timestamp(value)
    if ftype == "float64" and isinstance(value, Decimal):
        return float(value)
    if ftype == "bytes" and isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, tuple):
        return list(value)
    if ftype.startswith("list<timestamp") and isinstance(value, list):
        return [_timestamp(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class LoadTarget:
    """What the rows are written to, and which columns hold what.

    Attributes:
        group: the feature group.
        version: its version.
        entity_type: its entity type.
        key_column: the column holding entity ids.
        features: ``(name, type)`` of the group's features; other columns are ignored.
        event_time_column: the column holding each row's event time, or ``None``.
        default_event_time: the event time of rows without one (fixed for a whole load,
            so a repeated chunk is the same write).
    """

    group: str
    version: int
    entity_type: str
    key_column: str
    features: tuple[tuple[str, str], ...]
    event_time_column: str | None
    default_event_time: datetime

    @classmethod
    def for_group(
        cls,
        group: FeatureGroup,
        key_column: str,
        event_time_column: str | None,
        default_event_time: datetime,
    ) -> LoadTarget:
        """The target of a registered group version."""
        return cls(
            group=group.name,
            version=group.version,
            entity_type=group.entity_type,
            key_column=key_column,
            features=tuple((f.name, f.type) for f in group.features),
            event_time_column=event_time_column,
            default_event_time=_utc(default_event_time),
        )

    def encode(self, row: Mapping[str, Any], number: int) -> WriteRow:
        """One input row as a write row.

        Args:
            row: column name to value.
            number: the row's position in the input (0-based), for messages.

        Raises:
            LoadError: no entity id, or a value the SDK cannot carry.
        """
        key = row.get(self.key_column)
        if key is None or key == "":
            raise LoadError(f"row {number}: no entity id in column {self.key_column!r}")
        values = {}
        for name, ftype in self.features:
            v = row.get(name)
            if v is not None:
                values[name] = _plain(v, ftype)
        et: Any = None
        if self.event_time_column is not None:
            et = row.get(self.event_time_column)
        if et is None:
            event_time = self.default_event_time
        else:
            ts = _timestamp(et)
            if isinstance(ts, str):
                try:
                    ts = _utc(datetime.fromisoformat(ts))
                except ValueError:
                    raise LoadError(
                        f"row {number}: {self.event_time_column}: not an RFC 3339 time: {et!r}"
                    ) from None
            if not isinstance(ts, datetime):
                raise LoadError(f"row {number}: {self.event_time_column}: not a time: {et!r}")
            event_time = ts
        return WriteRow(
            group=self.group,
            entity_id=str(key),
            values=values,
            version=self.version,
            event_time=event_time,
            entity_type=self.entity_type,
        )


# --- checkpoints ------------------------------------------------------------------------


class _CheckpointFile(msgspec.Struct):
    identity: str
    done: list[int]
    default_event_time: datetime | None = None


class Checkpoint:
    """Chunks the daemon acknowledged, in a JSON file, so a failed load can resume.

    The identity names the input and the target (file, size and time, group, version,
    chunk size); a checkpoint of another identity is ignored. The file is rewritten
    atomically after every chunk and removed when the load completes.

    Args:
        path: the checkpoint file.
        identity: what this load is; see :meth:`identity_of`.
    """

    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity
        self._done: set[int] = set()
        self.default_event_time: datetime | None = None

    @staticmethod
    def identity_of(*parts: object) -> str:
        """A short hash of what identifies a load."""
        return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]

    def load(self) -> set[int]:
        """Chunks done by an earlier run of the same load (empty if none)."""
        try:
            state = msgspec.json.decode(self.path.read_bytes(), type=_CheckpointFile)
        except (FileNotFoundError, msgspec.MsgspecError):
            return set()
        if state.identity != self.identity:
            return set()
        self._done = set(state.done)
        self.default_event_time = state.default_event_time
        return set(self._done)

    def mark(self, index: int) -> None:
        """Record one acknowledged chunk."""
        self._done.add(index)
        state = _CheckpointFile(self.identity, sorted(self._done), self.default_event_time)
        write_atomic(self.path, msgspec.json.encode(state).decode())

    def clear(self) -> None:
        """Forget the load (it completed)."""
        remove_file(self.path)


# --- the load ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to load.

    Attributes:
        chunk_size: rows per write request.
        concurrency: write requests in flight at once.
        max_attempts: attempts per chunk for retryable failures.
        backoff_base: seconds before the first retry; doubles each time, with jitter.
        backoff_max: seconds: the cap of one backoff.
        lane: the lane recorded in row metadata.
        writer: the writer recorded in row metadata.
    """

    chunk_size: int = 500
    concurrency: int = 4
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    lane: Lane = "batch"
    writer: str = "dsfeatures-codegen"

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or self.concurrency < 1 or self.max_attempts < 1:
            raise ValueError("chunk_size, concurrency and max_attempts must be >= 1")


@dataclass(slots=True)
class LoadReport:
    """What a load did.

    Attributes:
        rows: rows sent by this run.
        resumed_rows: rows of chunks an earlier run had written (skipped).
        chunks: chunks sent by this run.
        written: rows applied (``WRITTEN``).
        stale: rows not applied because newer data is stored (``STALE``).
        conflicts: rows not applied because a condition failed (``CONFLICT``).
        retries: chunk attempts repeated after a retryable failure.
        seconds: wall time.
    """

    rows: int = 0
    resumed_rows: int = 0
    chunks: int = 0
    written: int = 0
    stale: int = 0
    conflicts: int = 0
    retries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (Airflow XCom, logs)."""
        return {
            "rows": self.rows,
            "resumed_rows": self.resumed_rows,
            "chunks": self.chunks,
            "written": self.written,
            "stale": self.stale,
            "conflicts": self.conflicts,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }


def _chunks(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    chunk: list[Mapping[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def load_rows(
    rows: Iterable[Mapping[str, Any]],
    target: LoadTarget,
    client: AsyncClient,
    options: LoadOptions | None = None,
    checkpoint: Checkpoint | None = None,
    on_progress: Progress | None = None,
) -> LoadReport:
    """Write rows to the daemon, chunked, concurrent, retried and resumable.

    Args:
        rows: the input, in a stable order (resume counts chunks).
        target: the group version and the columns to read.
        client: an open SDK client.
        options: chunking, concurrency and retries.
        checkpoint: record acknowledged chunks and skip those an earlier run wrote.
        on_progress: called with the rows of each acknowledged or skipped chunk.

    Returns:
        Counts of rows and outcomes.

    Raises:
        LoadError: a row cannot be encoded, the daemon refused a chunk, or a chunk
            still failed after ``max_attempts``; chunks acknowledged before stay
            recorded in the checkpoint.
    """
    opts = options or LoadOptions()
    report = LoadReport()
    started = time.monotonic()
    done = checkpoint.load() if checkpoint is not None else set()
    if checkpoint is not None:
        if checkpoint.default_event_time is not None and done:
            target = _with_default_time(target, checkpoint.default_event_time)
        checkpoint.default_event_time = target.default_event_time
    slots = asyncio.Semaphore(opts.concurrency)
    pending: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def send(index: int, first: int, batch: list[WriteRow]) -> None:
        try:
            await _write_chunk(client, opts, report, index, first, batch)
            if checkpoint is not None:
                checkpoint.mark(index)
            if on_progress is not None:
                on_progress(len(batch))
        except BaseException as e:
            failures.append(e)
            raise
        finally:
            slots.release()

    number = 0
    try:
        for index, chunk in enumerate(_chunks(rows, opts.chunk_size)):
            first = number
            number += len(chunk)
            if failures:
                break
            if index in done:
                report.resumed_rows += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
                continue
            batch = [target.encode(r, first + i) for i, r in enumerate(chunk)]
            await slots.acquire()
            if failures:
                slots.release()
                break
            task = asyncio.create_task(send(index, first, batch))
            pending.add(task)
            task.add_done_callback(pending.discard)
            report.rows += len(batch)
            report.chunks += 1
    finally:
        # Chunks in flight finish (they are harmless to complete) before we report.
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        report.seconds = time.monotonic() - started
    if failures:
        err = failures[0]
        if isinstance(err, LoadError):
            raise err
        raise LoadError(str(err)) from err
    if checkpoint is not None:
        checkpoint.clear()
    return report


def _with_default_time(target: LoadTarget, when: datetime) -> LoadTarget:
    return LoadTarget(
        target.group,
        target.version,
        target.entity_type,
        target.key_column,
        target.features,
        target.event_time_column,
        _utc(when),
    )


async def _write_chunk(
    client: AsyncClient,
    opts: LoadOptions,
    report: LoadReport,
    index: int,
    first: int,
    batch: Sequence[WriteRow],
) -> None:
    where = f"chunk {index} (rows {first}-{first + len(batch) - 1})"
    attempt = 0
    while True:
        attempt += 1
        try:
            results = await client.write(batch, mode="upsert", lane=opts.lane, writer=opts.writer)
        except DSFError as e:
            if is_retryable(e) and attempt < opts.max_attempts:
                report.retries += 1
                delay = min(opts.backoff_max, opts.backoff_base * 2.0 ** (attempt - 1))
                await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
                continue
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            raise LoadError(f"{where}: {e.code}: {e.message}{tries}") from e
        for r in results:
            if r.status == "WRITTEN":
                report.written += 1
            elif r.status == "STALE":
                report.stale += 1
            else:
                report.conflicts += 1
        return
