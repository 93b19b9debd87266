"""Writing micro-batches through the daemon's write API, with retries and isolation of
refused rows.

Every row is an ``upsert`` with the producer's event time and ``lane=stream``. That is
what makes at-least-once delivery safe: the write path never lets an older event time
overwrite a newer one, so a redelivered payload is either ``STALE`` (a newer one is
stored) or rewrites the very values already stored (it *is* the newest).

A retryable failure (daemon unreachable, 429, 5xx, timeout) is retried with exponential
backoff and jitter until ``retry_deadline``; then the service stops without committing
the batch. A refusal (4xx: the daemon's all-or-nothing validation) splits the batch in
two halves, written in order, until the refused rows stand alone; each is then
dead-lettered with the daemon's code and message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from dsfeatures.client import AsyncClient, DSFError
from dsfeatures.wire import WriteResult, WriteRow
from ingest.errors import IngestError
from ingest.metrics import IngestMetrics
from ingest.records import Reason

__all__ = ["DaemonWriter", "RetryPolicy", "WriteOutcome", "is_refusal", "is_retryable"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# 4xx statuses that are not a verdict on the rows: credentials, a timeout, throttling.
_NOT_REFUSALS = frozenset({401, 408, 429})
# Codes of errors raised by the SDK itself that no retry can fix.
_FATAL_CODES = frozenset({"TRANSPORT_ERROR"})


def is_retryable(exc: BaseException) -> bool:
    """Whether repeating the call may succeed (the daemon or a store is briefly away)."""
    if not isinstance(exc, DSFError) or exc.code in _FATAL_CODES:
        return False
    return (
        exc.retryable
        or exc.status in _NOT_REFUSALS
        or exc.status >= 500
        or (exc.code == "BAD_RESPONSE")
    )


def is_refusal(exc: BaseException) -> bool:
    """Whether the daemon refused the request's content (4xx other than 401/408/429)."""
    return (
        isinstance(exc, DSFError)
        and 400 <= exc.status < 500
        and exc.status not in _NOT_REFUSALS
        and not exc.retryable
    )


class RetryPolicy:
    """Exponential backoff with equal jitter, bounded by a deadline per call.

    Args:
        base: seconds of the first backoff.
        cap: seconds: the longest backoff.
        deadline: seconds a call may keep failing (0: forever).
        metrics: where retries are counted.
    """

    def __init__(self, base: float, cap: float, deadline: float, metrics: IngestMetrics) -> None:
        self.base = base
        self.cap = cap
        self.deadline = deadline
        self._metrics = metrics

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        delay = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    async def run(self, call: Callable[[], Awaitable[T]], target: str, what: str) -> T:
        """Run ``call`` until it succeeds, fails for good, or the deadline passes.

        Raises:
            IngestError: still failing with retryable errors after the deadline.
            Exception: the first non-retryable error, as raised.
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                attempt += 1
                elapsed = loop.time() - start
                if self.deadline and elapsed >= self.deadline:
                    raise IngestError(
                        f"{what}: still failing after {elapsed:.0f}s and {attempt} attempts "
                        f"(retry_deadline): {exc}"
                    ) from exc
                delay = self.backoff(attempt)
                if self.deadline:
                    delay = min(delay, max(0.0, self.deadline - elapsed))
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("%s failed (attempt %d), retrying: %s", what, attempt, exc)
                self._metrics.retried(target)
                await asyncio.sleep(delay)


@dataclass
class WriteOutcome:
    """What became of each row of a micro-batch.

    Attributes:
        results: the daemon's result per row, None for a refused row.
        refused: (row index, reason) of each refused row.
        requests: how many write requests were sent (more than one after a split).
    """

    results: list[WriteResult | None]
    refused: list[tuple[int, Reason]] = field(default_factory=list)
    requests: int = 0


class DaemonWriter:
    """Writes micro-batches through one SDK client.

    Args:
        client: the SDK client of the daemon (its own retries off: this class retries).
        writer: the writer id stamped on the rows.
        retry: the retry policy.
        metrics: latency, retries and splits.
        max_concurrent: most write requests at the same time (across partitions).
    """

    def __init__(
        self,
        client: AsyncClient,
        writer: str,
        retry: RetryPolicy,
        metrics: IngestMetrics,
        max_concurrent: int,
    ) -> None:
        self._client = client
        self._writer = writer
        self._retry = retry
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrent)

    async def write(self, rows: Sequence[WriteRow]) -> WriteOutcome:
        """Write ``rows`` in order; refused rows are isolated and reported, not raised.

        Raises:
            IngestError: the daemon stayed unavailable past the retry deadline.
            DSFError: a non-retryable error that is not a refusal of the rows.
        """
        out = WriteOutcome([None] * len(rows))
        if rows:
            await self._span(rows, 0, len(rows), out)
        return out

    async def _span(self, rows: Sequence[WriteRow], lo: int, hi: int, out: WriteOutcome) -> None:
        part = list(rows[lo:hi])
        try:
            results = await self._retry.run(
                lambda: self._send(part), "daemon", f"write of {len(part)} rows"
            )
        except DSFError as exc:
            if not is_refusal(exc):
                raise
            out.requests += 1
            if hi - lo == 1:
                out.refused.append((lo, Reason(exc.code, exc.message, "write")))
                return
            self._metrics.splits.inc()
            mid = (lo + hi) // 2
            # In order: the first half is acknowledged before the second is sent, so
            # rows of one key keep their order across the split.
            await self._span(rows, lo, mid, out)
            await self._span(rows, mid, hi, out)
            return
        out.requests += 1
        if len(results) != len(part):
            raise IngestError(f"the daemon answered {len(results)} results for {len(part)} rows")
        out.results[lo:hi] = results

    async def _send(self, rows: list[WriteRow]) -> list[WriteResult]:
        async with self._slots:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                return await self._client.write(rows, "upsert", "stream", self._writer)
            finally:
                self._metrics.write_seconds.observe(loop.time() - t0)
