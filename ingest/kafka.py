"""The Kafka source: one aiokafka consumer in a consumer group, a worker per partition.

Offsets are committed only up to the last acknowledged record of each partition, every
``commit_interval``, when partitions are revoked (a rebalance) and when the service
stops. Producers key messages by entity (``entity_type/entity_id``, what
:class:`dsfeatures.client.PayloadBuilder` does) so that one entity's payloads share a
partition and keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ingest.config import IngestSettings
from ingest.errors import IngestError
from ingest.kafka_client import (
    AIOKafkaAdminClient,
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    KafkaError,
    NewTopic,
    TopicAlreadyExistsError,
    TopicPartition,
)
from ingest.pipeline import PartitionWorker, Pipeline, unless_stopped
from ingest.records import SourceRecord
from ingest.uris import KafkaUri

__all__ = ["KafkaSource", "create_topic", "topic_exists"]

log = logging.getLogger(__name__)

_POLL_MS = 200


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # (an untyped base)
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._source.revoke(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


class KafkaSource:
    """Reads a topic as a member of the consumer group ``settings.group_id``.

    Args:
        uri: the topic.
        settings: the service settings.
        pipeline: where records go.
    """

    def __init__(self, uri: KafkaUri, settings: IngestSettings, pipeline: Pipeline) -> None:
        self.uri = uri
        self._settings = settings
        self._pipeline = pipeline
        self._stopping = asyncio.Event()
        self._workers: dict[TopicPartition, PartitionWorker] = {}
        self._acked: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._consumer: Any = None
        self._commit_lock = asyncio.Lock()

    def stop(self) -> None:
        """Stop fetching; :meth:`run` then commits what was acknowledged and returns."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`.

        Raises:
            IngestError: the topic does not exist or the brokers cannot be reached.
        """
        s = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.uri.bootstrap,
            group_id=s.group_id,
            client_id=f"dsfeatures-ingest-{s.group_id}",
            enable_auto_commit=False,
            auto_offset_reset=s.start,
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=s.kafka_max_poll_interval_ms,
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            raise IngestError(f"kafka {self.uri.bootstrap}: {exc!r}") from None
        self._consumer = consumer
        committer: asyncio.Task[None] | None = None
        try:
            if self.uri.topic not in await consumer.topics():
                raise IngestError(
                    f"topic {self.uri.topic!r} does not exist on {self.uri.bootstrap}; "
                    f"create it (dsfeatures-ingest create {self.uri})"
                )
            consumer.subscribe([self.uri.topic], listener=_Rebalance(self))
            committer = asyncio.create_task(self._commit_loop(), name="ingest-kafka-commit")
            await self._fetch_loop(consumer)
        finally:
            self._stopping.set()
            if committer is not None:
                committer.cancel()
                await asyncio.gather(committer, return_exceptions=True)
            await self._pipeline.stop()
            with contextlib.suppress(Exception):
                await self._commit()
            self._workers.clear()
            await consumer.stop()
            self._consumer = None

    async def _fetch_loop(self, consumer: Any) -> None:
        limiter = self._pipeline.limiter
        metrics = self._pipeline.metrics
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                grant = await unless_stopped(limiter.reserve(self._settings.fetch_records), stopped)
                if not grant:
                    break
                used = 0
                try:
                    data = await consumer.getmany(timeout_ms=_POLL_MS, max_records=grant)
                    assigned = consumer.assignment()
                    for tp, messages in data.items():
                        if not messages or tp not in assigned:
                            continue
                        used += len(messages)
                        self._worker(tp).feed(
                            [
                                SourceRecord(
                                    str(tp.partition),
                                    m.offset,
                                    m.key,
                                    m.value if m.value is not None else b"",
                                    m.timestamp / 1000.0 if m.timestamp else None,
                                )
                                for m in messages
                            ]
                        )
                        metrics.fetched_payloads(len(messages))
                        high = consumer.highwater(tp)
                        if high is not None:
                            metrics.lag_records.labels(str(tp.partition)).set(
                                max(0, high - self._acked.get(tp, messages[0].offset))
                            )
                finally:
                    limiter.settle(grant, used)
        finally:
            stopped.cancel()

    def _worker(self, tp: TopicPartition) -> PartitionWorker:
        w = self._workers.get(tp)
        if w is None:

            def on_ack(rec: SourceRecord) -> None:
                self._acked[tp] = rec.position + 1
                high = self._consumer.highwater(tp) if self._consumer is not None else None
                if high is not None:
                    self._pipeline.metrics.lag_records.labels(str(tp.partition)).set(
                        max(0, high - rec.position - 1)
                    )

            w = self._workers[tp] = self._pipeline.worker(str(tp.partition), on_ack)
        return w

    async def revoke(self, revoked: list[TopicPartition]) -> None:
        """Partitions move to another member: finish their batches being written, commit
        what was acknowledged, give up the rest (the next owner reads it)."""
        if revoked:
            log.info("revoked partitions %s", sorted(tp.partition for tp in revoked))
        workers = [self._workers.pop(tp) for tp in revoked if tp in self._workers]
        await asyncio.gather(*(self._pipeline.stop_worker(w, drain=False) for w in workers))
        try:
            await self._commit(set(revoked))
        except KafkaError as exc:
            log.warning("commit on revocation failed (records will be read again): %r", exc)
        for tp in revoked:
            self._acked.pop(tp, None)
            self._committed.pop(tp, None)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.commit_interval)
            try:
                await self._commit()
            except KafkaError as exc:
                # Offsets stay pending and are tried again; at worst records are read twice.
                self._pipeline.metrics.commits.labels("failed").inc()
                log.warning("offset commit failed, will retry: %r", exc)

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            assigned = consumer.assignment()
            due = {
                tp: offset
                for tp, offset in self._acked.items()
                if self._committed.get(tp) != offset
                and tp in assigned
                and (only is None or tp in only)
            }
            if not due:
                return
            await consumer.commit(due)
            self._committed.update(due)
            self._pipeline.metrics.commits.labels("ok").inc()


async def topic_exists(uri: KafkaUri) -> bool:
    """Whether the topic exists (a metadata request)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=uri.bootstrap)
    await admin.start()
    try:
        return uri.topic in set(await admin.list_topics())
    finally:
        await admin.close()


async def create_topic(uri: KafkaUri, partitions: int, replication: int = 1) -> bool:
    """Create the topic; False if it exists already.

    Raises:
        IngestError: the brokers refused it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=uri.bootstrap)
    await admin.start()
    try:
        if uri.topic in set(await admin.list_topics()):
            return False
        try:
            resp = await admin.create_topics([NewTopic(uri.topic, partitions, replication)])
        except TopicAlreadyExistsError:
            return False
        for topic, code, message in getattr(resp, "topic_errors", []) or []:
            if code == TopicAlreadyExistsError.errno:
                return False
            if code:
                raise IngestError(f"create topic {topic}: error {code} {message or ''}".strip())
        return True
    finally:
        await admin.close()
