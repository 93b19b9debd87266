"""The audit log: who changed the registry, erased an entity or used a token, and when.

Registry changes and erasures are rare and are appended to the
:class:`~dsfeatures.stores.protocols.AuditLog` as they happen. Token use is
not: writing a record per request would put a store write on the hot path.
Each process instead counts uses in memory per (token, minute), like the
freshness statistics, and appends one ``token.use`` event per token and
minute once that minute is over (first and last use, counts by kind of
request, refusals). A background task flushes every few seconds and once more
at shutdown; a failed flush keeps its counts for the next one. Reads merge the
store with what this process has not flushed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from msgspec import Struct
from prometheus_client import Counter

from dsfeatures.service.clock import from_us, now_us
from dsfeatures.stores.protocols import AuditEvent, AuditLog

__all__ = ["ANONYMOUS", "AuditEvents", "AuditRecorder", "audit_time"]

log = logging.getLogger(__name__)

#: The actor of requests made while authentication is off.
ANONYMOUS: Final = "anonymous"
#: Most (token, minute) counters kept while the audit log is unreachable.
_MAX_PENDING: Final = 100_000

AUDIT_EVENTS = Counter(
    "dsf_audit_events", "Audit events appended, by action and result", ["action", "result"]
)


def audit_time(us: int | None = None) -> str:
    """Fixed-width RFC 3339 UTC (six fractional digits) of ``us`` or of now: sorts as text."""
    return from_us(now_us() if us is None else us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditEvents(Struct):
    """``GET /v1/audit``: events, newest first."""

    events: list[AuditEvent]


class _Use:
    """Uses of one token within one minute."""

    __slots__ = ("denied", "first", "kinds", "last", "n")

    def __init__(self, at: int) -> None:
        self.first = at
        self.last = at
        self.n = 0
        self.denied = 0
        self.kinds: dict[str, int] = {}


class AuditRecorder:
    """Appends audit events, and aggregates token use in memory before appending it.

    Args:
        store: the append-only audit log (shared by every process).
        flush_seconds: interval of :meth:`flush_forever`.
        bucket_seconds: the token-use aggregation window (a minute).
    """

    def __init__(
        self, store: AuditLog, *, flush_seconds: float = 5.0, bucket_seconds: int = 60
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._bucket_us = bucket_seconds * 1_000_000
        self._uses: dict[tuple[str, int], _Use] = {}
        self._inflight: list[AuditEvent] = []
        self._lock = asyncio.Lock()

    # --- direct events ----------------------------------------------------------------

    async def record(
        self,
        action: str,
        target: str,
        *,
        actor: str = "",
        request_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event now and return it.

        Raises:
            BackendUnavailable: the audit log did not take it.
        """
        event = AuditEvent(
            at=audit_time(),
            actor=actor or ANONYMOUS,
            action=action,
            target=target,
            detail=detail or {},
            request_id=request_id,
        )
        try:
            await self.store.record([event])
        except BaseException:
            AUDIT_EVENTS.labels(action, "failed").inc()
            raise
        AUDIT_EVENTS.labels(action, "ok").inc()
        return event

    async def record_or_log(
        self,
        action: str,
        target: str,
        *,
        actor: str = "",
        request_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Like :meth:`record`, for changes already made: a failure is logged with the
        whole event (the log line is then the only trace), never raised."""
        try:
            await self.record(action, target, actor=actor, request_id=request_id, detail=detail)
        except Exception as e:
            log.error(
                "audit event not recorded: action=%s target=%s actor=%s request_id=%s "
                "detail=%s: %r",
                action,
                target,
                actor or ANONYMOUS,
                request_id,
                detail,
                e,
            )

    # --- token use (the request path: no I/O) -----------------------------------------

    def token_used(self, name: str, kind: str, *, denied: bool = False) -> None:
        """Count one request authenticated by token ``name`` (``kind``: read, write or
        admin; ``denied`` when its scopes refused it)."""
        at = now_us()
        key = (name, at // self._bucket_us)
        use = self._uses.get(key)
        if use is None:
            if len(self._uses) >= _MAX_PENDING:
                return  # the audit log has been unreachable for long; counted in logs
            use = self._uses[key] = _Use(at)
        use.last = at
        use.n += 1
        use.kinds[kind] = use.kinds.get(kind, 0) + 1
        if denied:
            use.denied += 1

    def _event(self, name: str, bucket: int, use: _Use) -> AuditEvent:
        detail: dict[str, Any] = {
            "count": use.n,
            "first": audit_time(use.first),
            "last": audit_time(use.last),
            "minute": audit_time(bucket * self._bucket_us),
            **use.kinds,
        }
        if use.denied:
            detail["denied"] = use.denied
        return AuditEvent(
            at=audit_time(use.first),
            actor=name,
            action="token.use",
            target=f"token:{name}",
            detail=detail,
        )

    def _take(self, everything: bool) -> list[tuple[tuple[str, int], _Use]]:
        current = now_us() // self._bucket_us
        done = sorted(k for k in self._uses if everything or k[1] < current)
        return [(k, self._uses.pop(k)) for k in done]

    def _put_back(self, key: tuple[str, int], use: _Use) -> None:
        mine = self._uses.get(key)
        if mine is None:
            self._uses[key] = use
            return
        mine.first = min(mine.first, use.first)
        mine.last = max(mine.last, use.last)
        mine.n += use.n
        mine.denied += use.denied
        for kind, n in use.kinds.items():
            mine.kinds[kind] = mine.kinds.get(kind, 0) + n

    async def flush(self, *, everything: bool = False) -> int:
        """Append the token use of finished minutes (``everything``: of the current one too).

        Returns:
            How many events were appended.

        Raises:
            BackendUnavailable: the audit log failed; the counts are kept for the next flush.
        """
        async with self._lock:
            taken = self._take(everything)
            if not taken:
                return 0
            events = [self._event(name, bucket, use) for (name, bucket), use in taken]
            self._inflight = events
            try:
                await self.store.record(events)
            except BaseException:
                AUDIT_EVENTS.labels("token.use", "failed").inc(len(events))
                for key, use in taken:
                    self._put_back(key, use)
                raise
            finally:
                self._inflight = []
            AUDIT_EVENTS.labels("token.use", "ok").inc(len(events))
            return len(events)

    async def flush_forever(self) -> None:
        """Flush every ``flush_seconds`` until cancelled (failures are logged)."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as e:
                log.warning("token use not audited yet (kept for the next try): %r", e)

    async def close(self) -> None:
        """The last flush, at shutdown, the current minute included (failures are logged)."""
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.flush(everything=True)
            except Exception as e:
                log.error("token use lost from the audit log at shutdown: %r", e)

    # --- reads ------------------------------------------------------------------------

    async def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> AuditEvents:
        """Stored events newest first, with this process's unflushed token use merged in."""
        stored = await self.store.events(action=action, actor=actor, since=since, limit=limit)
        unflushed = [
            e
            for e in (*self._inflight, *(self._event(k[0], k[1], u) for k, u in self._uses.items()))
            if (action is None or e.action == action)
            and (actor is None or e.actor == actor)
            and (since is None or e.at >= since)
        ]
        if not unflushed:
            return AuditEvents(stored)
        merged = sorted([*stored, *unflushed], key=lambda e: e.at, reverse=True)
        return AuditEvents(merged[:limit])
