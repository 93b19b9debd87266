"""The source-independent core: bounded in-flight work, one worker per partition,
micro-batches, and acknowledgement.

A source (Kafka, Kinesis, file) reserves room in :class:`InFlight` before it fetches,
fetches at most that many records, and feeds them to the :class:`PartitionWorker` of
their partition (Kafka partition, Kinesis shard, the file). Each worker takes its
records in order, one micro-batch at a time (``batch_rows`` / ``batch_bytes``, or
``linger_ms`` after the first record), so the payloads of one key, which share a
partition, are written in the order they were produced; partitions run concurrently.

A micro-batch is acknowledged once every payload in it is either written by the daemon
(``WRITTEN`` or ``STALE``) or stored in the dead-letter destination. Only then does the
worker call the source's ``on_ack`` with the batch's last record, and only then is its
room in :class:`InFlight` given back: the source commits offsets or checkpoints up to
acknowledged records only, and never holds more than ``max_in_flight`` payloads.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from ingest.config import IngestSettings
from ingest.deadletter import DeadLetterSink
from ingest.metrics import IngestMetrics
from ingest.records import DeadLetter, Reason, SourceRecord
from ingest.validate import Validator, decode
from ingest.write import DaemonWriter, RetryPolicy

__all__ = ["InFlight", "PartitionWorker", "Pipeline", "unless_stopped"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Called with the last record of each acknowledged micro-batch, in order.
OnAck = Callable[[SourceRecord], None]


class InFlight:
    """Keeps the payloads read and not yet acknowledged under a limit.

    A reader first :meth:`reserve` s room, fetches at most the granted number of
    records, then :meth:`settle` s the reservation with the number it got; a worker
    :meth:`release` s a payload once it is acknowledged (or given up). Reserved plus
    held never exceeds ``limit``, so neither does held (the ``dsf_ingest_in_flight``
    gauge).

    Args:
        limit: the bound (``max_in_flight``).
        metrics: gauges of the held count, its peak and the limit.
    """

    def __init__(self, limit: int, metrics: IngestMetrics) -> None:
        self.limit = limit
        self.held = 0
        self.reserved = 0
        self.peak = 0
        self._waiting = 0
        self._metrics = metrics
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        metrics.in_flight_limit.set(limit)

    @property
    def count(self) -> int:
        """Held plus reserved."""
        return self.held + self.reserved

    @property
    def full(self) -> bool:
        """A reader waits for room: partial batches are then written without lingering."""
        return self._waiting > 0

    async def reserve(self, want: int) -> int:
        """Wait for room, then reserve up to ``want`` payloads; 0 once closed."""
        while self.count >= self.limit and not self._closed:
            self._room.clear()
            self._waiting += 1
            try:
                await self._room.wait()
            finally:
                self._waiting -= 1
        if self._closed or want <= 0:
            return 0
        grant = min(want, self.limit - self.count)
        self.reserved += grant
        return grant

    def settle(self, grant: int, used: int) -> None:
        """End a reservation of ``grant``: ``used`` payloads were read and are now held."""
        self.reserved -= grant
        self.held += used
        if self.held > self.peak:
            self.peak = self.held
            self._metrics.in_flight_peak.set(self.peak)
        self._metrics.in_flight.set(self.held)
        if self.count < self.limit:
            self._room.set()

    def release(self, n: int) -> None:
        """``n`` held payloads are acknowledged (or given up): their room is free again."""
        if n <= 0:
            return
        self.held -= n
        if self.held < 0:  # pragma: no cover - a bookkeeping bug
            log.error("in-flight count went negative (%d)", self.held)
            self.held = 0
        self._metrics.in_flight.set(self.held)
        if self.count < self.limit:
            self._room.set()

    def close(self) -> None:
        """Wake every waiting reader with nothing (the service is stopping)."""
        self._closed = True
        self._room.set()


class PartitionWorker:
    """Writes the records of one partition in order, one micro-batch at a time.

    Created by :meth:`Pipeline.worker`; the source feeds it with :meth:`feed`.
    """

    def __init__(self, pipeline: Pipeline, partition: str, on_ack: OnAck) -> None:
        self.partition = partition
        self._pipeline = pipeline
        self._on_ack = on_ack
        self._buf: collections.deque[SourceRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._drop_rest = False
        self._flush = False
        self._first_at = 0.0  # when the oldest buffered record arrived (loop time)
        self.acked = 0
        self._task = asyncio.create_task(self._run(), name=f"ingest-partition-{partition}")

    @property
    def buffered(self) -> int:
        """Records fed and not yet taken into a batch."""
        return len(self._buf)

    def feed(self, records: list[SourceRecord]) -> None:
        """Queue records (already held in :class:`InFlight`)."""
        if not records:
            return
        if self._closing:
            self._pipeline.limiter.release(len(records))
            return
        if not self._buf:
            self._first_at = asyncio.get_running_loop().time()
        self._buf.extend(records)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything fed so far is acknowledged (or the worker failed)."""
        self._flush = True  # a partial batch need not linger: nothing more is coming
        self._wake.set()
        while not self._idle.is_set():
            idle = asyncio.ensure_future(self._idle.wait())
            try:
                await asyncio.wait({idle, self._task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                idle.cancel()
            if self._task.done():
                return

    async def stop(self, drain: bool, grace: float) -> None:
        """Stop the worker.

        Args:
            drain: write what is buffered first; otherwise only the batch being written
                is finished and the rest is given up (it was not acknowledged, so it is
                read again after a restart or by the partition's next owner).
            grace: seconds to wait; then the batch being written is given up too.
        """
        self._closing = True
        self._drop_rest = not drain
        self._wake.set()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            log.warning(
                "partition %s: batch not acknowledged within %.0fs of stopping; given up",
                self.partition,
                grace,
            )
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._discard()

    def _discard(self) -> None:
        if self._buf:
            self._pipeline.limiter.release(len(self._buf))
            self._buf.clear()
        self._idle.set()

    async def _run(self) -> None:
        pipeline = self._pipeline
        try:
            while True:
                batch = await self._next_batch()
                if batch is None:
                    break
                try:
                    await pipeline.process(self.partition, batch)
                except BaseException:
                    pipeline.limiter.release(len(batch))
                    raise
                self._on_ack(batch[-1])
                self.acked += len(batch)
                pipeline.limiter.release(len(batch))
                if not self._buf:
                    self._idle.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            pipeline.fail(exc)
        finally:
            self._discard()

    async def _next_batch(self) -> list[SourceRecord] | None:
        settings = self._pipeline.settings
        while not self._buf:
            if self._closing:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._closing and self._drop_rest:
            return None
        # Linger for a fuller batch, counted from the arrival of its oldest record (records
        # that came in while the previous batch was written go at once), unless it is full
        # already, a reader is blocked on the in-flight bound (nothing more can come), or
        # the source said it is done.
        loop = asyncio.get_running_loop()
        deadline = self._first_at + settings.linger_ms / 1000.0
        limiter = self._pipeline.limiter
        while len(self._buf) < settings.batch_rows and not (
            self._closing or self._flush or limiter.full
        ):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                break
        if self._closing and self._drop_rest:
            return None  # stopped while lingering: nothing of it was being written
        batch: list[SourceRecord] = []
        size = 0
        while self._buf and len(batch) < settings.batch_rows:
            rec = self._buf[0]
            if batch and size + rec.size > settings.batch_bytes:
                break
            batch.append(self._buf.popleft())
            size += rec.size
        return batch


class Pipeline:
    """Validates, writes and dead-letters micro-batches for the workers of one source.

    Args:
        settings: the service settings.
        source: the source URI (stamped on dead letters).
        validator: local validation against the registry.
        writer: writes through the daemon.
        dead_letters: the dead-letter destination (open).
        retry: retry policy of registry lookups.
        metrics: the service metrics.
    """

    def __init__(
        self,
        settings: IngestSettings,
        source: str,
        validator: Validator,
        writer: DaemonWriter,
        dead_letters: DeadLetterSink,
        retry: RetryPolicy,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.source = source
        self.validator = validator
        self.writer = writer
        self.dead_letters = dead_letters
        self.retry = retry
        self.metrics = metrics
        self.limiter = InFlight(settings.max_in_flight, metrics)
        self.failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._workers: set[PartitionWorker] = set()

    def worker(self, partition: str, on_ack: OnAck) -> PartitionWorker:
        """Start a worker for one partition."""
        w = PartitionWorker(self, partition, on_ack)
        self._workers.add(w)
        return w

    async def stop_worker(self, worker: PartitionWorker, drain: bool) -> None:
        """Stop one worker (a revoked partition, a finished shard, the end of a file)."""
        await worker.stop(drain, self.settings.shutdown_timeout)
        self._workers.discard(worker)

    async def stop(self) -> None:
        """Stop reading and every worker: finish the batches being written, give up the
        rest (not acknowledged, so read again after a restart)."""
        self.limiter.close()
        workers = list(self._workers)
        await asyncio.gather(*(self.stop_worker(w, drain=False) for w in workers))

    def fail(self, exc: BaseException) -> None:
        """Record the first fatal error; the service then stops."""
        if not self.failure.done():
            log.error("stopping: %s", exc)
            self.failure.set_exception(exc)
            self.failure.exception()  # retrieved here; the service re-raises it

    async def process(self, partition: str, batch: list[SourceRecord]) -> None:
        """Write or dead-letter every record of ``batch``; return when all are acknowledged.

        Raises:
            IngestError: the daemon, registry or dead-letter destination stayed
                unavailable past the retry deadline (nothing acknowledged).
        """
        metrics = self.metrics
        metrics.batch_size.observe(len(batch))
        metrics.totals.batches += 1
        letters: list[DeadLetter] = []
        decoded: list[SourceRecord] = []
        for rec in batch:
            if rec.payload is None:
                got = decode(rec.value)
                if isinstance(got, Reason):
                    letters.append(self._letter(rec, got))
                    continue
                rec.payload = got
            decoded.append(rec)
        payloads = [rec.payload for rec in decoded if rec.payload is not None]
        groups = await self.retry.run(
            lambda: self.validator.load(payloads), "registry", "registry lookup"
        )
        rows = []
        row_records: list[SourceRecord] = []
        for rec, payload in zip(decoded, payloads, strict=True):
            checked = self.validator.check(payload, groups)
            if isinstance(checked, Reason):
                letters.append(self._letter(rec, checked))
            else:
                rows.append(checked)
                row_records.append(rec)
        outcome = await self.writer.write(rows)
        for index, reason in outcome.refused:
            rec = row_records[index]
            letters.append(self._letter(rec, reason))
            if reason.code == "UNKNOWN_FEATURE" and rec.payload is not None:
                self.validator.groups.forget(rec.payload.group, rec.payload.version)
        written = stale = conflict = 0
        for result in outcome.results:
            if result is None:
                continue
            if result.status == "WRITTEN":
                written += 1
            elif result.status == "STALE":
                stale += 1
            else:
                conflict += 1
        if letters:
            await self.dead_letters.put(letters)
            for letter in letters:
                metrics.dead_lettered(letter.reason.code)
            log.warning(
                "partition %s: %d payloads dead-lettered to %s (first: %s %s)",
                partition,
                len(letters),
                self.dead_letters.uri,
                letters[0].reason.code,
                letters[0].reason.message,
            )
        metrics.outcome("written", written)
        metrics.outcome("stale", stale)
        metrics.outcome("conflict", conflict)
        metrics.acked_at(partition, batch[-1].timestamp)

    def _letter(self, rec: SourceRecord, reason: Reason) -> DeadLetter:
        p = rec.payload
        return DeadLetter(
            reason=reason,
            payload=rec.value,
            source=self.source,
            partition=rec.partition,
            position=str(rec.position),
            dead_lettered_at=datetime.now(UTC),
            ingest=self.settings.writer,
            key=rec.key,
            producer=p.producer if p is not None else "",
            group=p.group if p is not None else "",
            entity_id=p.entity_id if p is not None else "",
        )


async def unless_stopped(aw: Awaitable[T], stopped: asyncio.Future[Any]) -> T | None:
    """The result of ``aw``, or None if ``stopped`` completes first (``aw`` is then
    cancelled)."""
    task = asyncio.ensure_future(aw)
    waits: set[asyncio.Future[Any]] = {task, stopped}
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None
