"""Prometheus metrics of the ingest service and its small ``/metrics`` endpoint.

Every metric is named ``dsf_ingest_*`` and lives in the service's own registry (no
process-global state), so tests can build several services in one process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["IngestMetrics", "MetricsServer", "Totals"]

log = logging.getLogger(__name__)

_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass
class Totals:
    """Plain counts for the end-of-run summary (the same events as the counters)."""

    fetched: int = 0
    written: int = 0
    stale: int = 0
    conflict: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def acknowledged(self) -> int:
        return self.written + self.stale + self.conflict + self.dead_lettered


class IngestMetrics:
    """The service's metrics.

    Args:
        source: the source URI, a constant label of ``dsf_ingest_info``.
    """

    def __init__(self, source: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.totals = Totals()
        r = self.registry
        self.info = Gauge("dsf_ingest_info", "The ingest service's source.", ["source"], registry=r)
        self.info.labels(source).set(1)
        self.fetched = Counter(
            "dsf_ingest_fetched_payloads", "Payloads read from the source.", registry=r
        )
        self.outcomes = Counter(
            "dsf_ingest_payloads",
            "Acknowledged payloads by outcome: written, stale (an older event time than "
            "stored), conflict, dead_lettered.",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "dsf_ingest_dead_letters",
            "Dead-lettered payloads by reason code.",
            ["code"],
            registry=r,
        )
        self.batch_size = Histogram(
            "dsf_ingest_batch_payloads",
            "Payloads per micro-batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.write_seconds = Histogram(
            "dsf_ingest_write_seconds",
            "Latency of one write request to the daemon (acknowledged or refused).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "dsf_ingest_end_to_end_seconds",
            "From the source's timestamp of a payload to its acknowledgement.",
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "dsf_ingest_retries",
            "Retried calls after a retryable failure, by target (daemon, registry, dlq).",
            ["target"],
            registry=r,
        )
        self.splits = Counter(
            "dsf_ingest_batch_splits", "Refused batches split to isolate bad rows.", registry=r
        )
        self.in_flight = Gauge(
            "dsf_ingest_in_flight", "Payloads read and not yet acknowledged.", registry=r
        )
        self.in_flight_peak = Gauge(
            "dsf_ingest_in_flight_peak", "Highest dsf_ingest_in_flight so far.", registry=r
        )
        self.in_flight_limit = Gauge(
            "dsf_ingest_in_flight_limit",
            "Bound of dsf_ingest_in_flight (max_in_flight).",
            registry=r,
        )
        self.lag_records = Gauge(
            "dsf_ingest_lag_records",
            "Kafka: records in the partition after the last acknowledged one.",
            ["partition"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "dsf_ingest_lag_seconds",
            "Age of the last acknowledged payload (from its source timestamp) when it was "
            "acknowledged.",
            ["partition"],
            registry=r,
        )
        self.behind_latest = Gauge(
            "dsf_ingest_behind_latest_seconds",
            "Kinesis: MillisBehindLatest of the last GetRecords of a shard, in seconds.",
            ["partition"],
            registry=r,
        )
        self.commits = Counter(
            "dsf_ingest_commits",
            "Offset or checkpoint commits by result (ok, failed).",
            ["result"],
            registry=r,
        )

    def outcome(self, name: str, n: int = 1) -> None:
        """Count ``n`` acknowledged payloads of outcome ``name``."""
        if n <= 0:
            return
        self.outcomes.labels(name).inc(n)
        if name == "written":
            self.totals.written += n
        elif name == "stale":
            self.totals.stale += n
        elif name == "conflict":
            self.totals.conflict += n

    def dead_lettered(self, code: str) -> None:
        """Count one dead-lettered payload."""
        self.outcomes.labels("dead_lettered").inc()
        self.dead_letters.labels(code).inc()
        self.totals.dead_lettered += 1
        self.totals.by_reason[code] = self.totals.by_reason.get(code, 0) + 1

    def fetched_payloads(self, n: int) -> None:
        self.fetched.inc(n)
        self.totals.fetched += n

    def retried(self, target: str) -> None:
        self.retries.labels(target).inc()
        self.totals.retries += 1

    def acked_at(self, partition: str, timestamp: float | None) -> None:
        """Record the source timestamp of the last payload of an acknowledged batch."""
        if timestamp is None:
            return
        age = max(0.0, time.time() - timestamp)
        self.end_to_end.observe(age)
        self.lag_seconds.labels(partition).set(age)

    def expose(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz`` on one address.

    Args:
        metrics: what to expose.
        host: address to bind.
        port: port (0 picks a free one; see :attr:`port` after :meth:`start`).
    """

    def __init__(self, metrics: IngestMetrics, host: str, port: int) -> None:
        self._metrics = metrics
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/metrics", self._expose)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def _expose(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.expose(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def start(self) -> None:
        """Listen; the chosen port is then in :attr:`port`."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        await self._runner.cleanup()
