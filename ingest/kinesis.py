"""The Kinesis source: shard discovery, one reader and worker per shard, durable
checkpoints, resharding.

Every ``kinesis_shard_refresh`` seconds (and at once when a shard ends) the shards are
listed. A shard is read once each of its parents was read to its end, so the payloads
of one key keep their order across a split or a merge (the key's records move from the
parent to a child). Reading starts after the shard's checkpoint (the last acknowledged
sequence number), at the beginning of a child shard, or per ``start`` for a shard that
has neither. When GetRecords returns no next iterator the shard is closed: once all of
it is acknowledged it is marked finished and its children start.

Checkpoints are flushed every ``commit_interval``, when a shard ends and when the
service stops (see :mod:`ingest.checkpoints`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError

from dsfeatures.errors import BackendUnavailable
from ingest.checkpoints import Checkpoint, CheckpointStore
from ingest.config import IngestSettings
from ingest.errors import IngestError
from ingest.pipeline import PartitionWorker, Pipeline
from ingest.records import SourceRecord
from ingest.uris import KinesisUri
from ingest.write import RetryPolicy

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_kinesis.literals import ShardIteratorTypeType
    from types_aiobotocore_kinesis.type_defs import ShardTypeDef

__all__ = ["KinesisSource", "create_stream"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_GET_RECORDS = 10_000
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class _Shard:
    shard_id: str
    parents: tuple[str, ...]
    worker: PartitionWorker
    task: asyncio.Task[None] | None = None
    last_fetched: str = ""


class KinesisSource:
    """Reads every shard of a stream, in parent-before-child order.

    Args:
        uri: the stream.
        settings: the service settings.
        pipeline: where records go.
        client: an open aiobotocore Kinesis client.
        checkpoints: the checkpoint store (not opened yet).
        retry: retry policy of Kinesis calls.
    """

    def __init__(
        self,
        uri: KinesisUri,
        settings: IngestSettings,
        pipeline: Pipeline,
        client: KinesisClient,
        checkpoints: CheckpointStore,
        retry: RetryPolicy,
    ) -> None:
        self.uri = uri
        self._settings = settings
        self._pipeline = pipeline
        self._client = client
        self._store = checkpoints
        self._retry = retry
        self._stopping = asyncio.Event()
        self._refresh = asyncio.Event()
        self._shards: dict[str, _Shard] = {}
        self._saved: dict[str, Checkpoint] = {}
        self._finished: set[str] = set()
        self._acked: dict[str, str] = {}
        self._flushed: dict[str, str] = {}
        self._flush_lock = asyncio.Lock()

    def stop(self) -> None:
        """Stop reading; :meth:`run` then checkpoints what was acknowledged and returns."""
        self._stopping.set()
        self._refresh.set()

    async def run(self) -> None:
        """Read until :meth:`stop`.

        Raises:
            IngestError: the stream does not exist, or Kinesis stayed unavailable.
        """
        await self._describe()
        await self._store.open()
        committer: asyncio.Task[None] | None = None
        try:
            self._saved = await self._store.load()
            self._finished = {sid for sid, cp in self._saved.items() if cp.finished}
            self._flushed = {sid: cp.sequence for sid, cp in self._saved.items() if cp.sequence}
            committer = asyncio.create_task(self._commit_loop(), name="ingest-kinesis-commit")
            while not self._stopping.is_set():
                shards = await self._call(self._list_shards, "list shards")
                self._start_eligible(shards)
                self._refresh.clear()
                try:
                    async with asyncio.timeout(self._settings.kinesis_shard_refresh):
                        await self._refresh.wait()
                except TimeoutError:
                    pass
        finally:
            self._stopping.set()
            tasks = [s.task for s in self._shards.values() if s.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if committer is not None:
                committer.cancel()
                await asyncio.gather(committer, return_exceptions=True)
            await self._pipeline.stop()
            try:
                await self._flush()
            finally:
                await self._store.close()

    async def _describe(self) -> None:
        try:
            await self._client.describe_stream_summary(StreamName=self.uri.stream)
        except ClientError as exc:
            raise IngestError(
                f"stream {self.uri.stream!r}: {exc} "
                f"(create it: dsfeatures-ingest create {self.uri})"
            ) from None
        except BotoCoreError as exc:
            raise IngestError(f"kinesis: {exc}") from None

    async def _call(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a Kinesis call, retrying throttling and transport errors."""

        async def attempt() -> T:
            try:
                return await fn()
            except ClientError as exc:
                code = _code(exc)
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in _THROTTLED or status >= 500:
                    raise BackendUnavailable(f"kinesis {what}: {exc}") from exc
                raise
            except BotoCoreError as exc:
                raise BackendUnavailable(f"kinesis {what}: {exc}") from exc

        return await self._retry.run(attempt, "kinesis", f"kinesis {what}")

    async def _list_shards(self) -> list[ShardTypeDef]:
        shards: list[ShardTypeDef] = []
        resp = await self._client.list_shards(StreamName=self.uri.stream)
        shards.extend(resp.get("Shards", []))
        token = resp.get("NextToken")
        while token:
            resp = await self._client.list_shards(NextToken=token)
            shards.extend(resp.get("Shards", []))
            token = resp.get("NextToken")
        return shards

    def _start_eligible(self, shards: list[ShardTypeDef]) -> None:
        known = {s["ShardId"] for s in shards}
        for s in shards:
            sid = s["ShardId"]
            if sid in self._finished or sid in self._shards:
                continue
            parents = tuple(
                p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p is not None
            )
            # A parent no longer listed has expired: nothing of it is left to wait for.
            if any(p in known and p not in self._finished for p in parents):
                continue
            worker = self._pipeline.worker(sid, self._on_ack(sid))
            shard = _Shard(sid, parents, worker)
            self._shards[sid] = shard
            shard.task = asyncio.create_task(self._read(shard), name=f"ingest-kinesis-{sid}")
            log.info("reading shard %s (parents %s)", sid, ", ".join(parents) or "none")

    def _on_ack(self, shard_id: str) -> Callable[[SourceRecord], None]:
        def on_ack(rec: SourceRecord) -> None:
            self._acked[shard_id] = str(rec.position)

        return on_ack

    async def _iterator(self, shard: _Shard) -> str:
        after = shard.last_fetched or self._flushed.get(shard.shard_id, "")
        kind: ShardIteratorTypeType
        if after:
            kind = "AFTER_SEQUENCE_NUMBER"
        elif shard.parents or self._settings.start == "earliest":
            kind = "TRIM_HORIZON"  # a child shard always starts at its beginning
        else:
            kind = "LATEST"

        async def get() -> str:
            if after:
                resp = await self._client.get_shard_iterator(
                    StreamName=self.uri.stream,
                    ShardId=shard.shard_id,
                    ShardIteratorType=kind,
                    StartingSequenceNumber=after,
                )
            else:
                resp = await self._client.get_shard_iterator(
                    StreamName=self.uri.stream, ShardId=shard.shard_id, ShardIteratorType=kind
                )
            return resp["ShardIterator"]

        return await self._call(get, f"get_shard_iterator {shard.shard_id}")

    async def _read(self, shard: _Shard) -> None:
        try:
            await self._read_shard(shard)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._pipeline.fail(exc)

    async def _read_shard(self, shard: _Shard) -> None:
        limiter = self._pipeline.limiter
        metrics = self._pipeline.metrics
        sid = shard.shard_id
        iterator: str | None = await self._iterator(shard)
        want = min(_MAX_GET_RECORDS, self._settings.fetch_records)
        while not self._stopping.is_set() and iterator is not None:
            grant = await limiter.reserve(want)
            if grant == 0:
                return
            try:
                resp = await self._call(
                    functools.partial(
                        self._client.get_records, ShardIterator=iterator, Limit=grant
                    ),
                    f"get_records {sid}",
                )
            except ClientError as exc:
                limiter.settle(grant, 0)
                if _code(exc) == "ExpiredIteratorException":
                    iterator = await self._iterator(shard)
                    continue
                raise
            except BaseException:
                limiter.settle(grant, 0)
                raise
            records = resp.get("Records", [])
            limiter.settle(grant, len(records))
            if records:
                shard.worker.feed(
                    [
                        SourceRecord(
                            sid,
                            int(r["SequenceNumber"]),
                            r["PartitionKey"].encode(),
                            bytes(r["Data"]),
                            r["ApproximateArrivalTimestamp"].timestamp()
                            if "ApproximateArrivalTimestamp" in r
                            else None,
                        )
                        for r in records
                    ]
                )
                metrics.fetched_payloads(len(records))
                shard.last_fetched = records[-1]["SequenceNumber"]
            if "MillisBehindLatest" in resp:
                metrics.behind_latest.labels(sid).set(resp["MillisBehindLatest"] / 1000.0)
            # Absent once a closed shard is read to its end (the stubs say always there).
            iterator = cast("str | None", resp.get("NextShardIterator"))
            if iterator is None:
                await self._finish(shard)
                return
            if not records:
                try:
                    async with asyncio.timeout(self._settings.kinesis_poll_interval):
                        await self._stopping.wait()
                except TimeoutError:
                    pass

    async def _finish(self, shard: _Shard) -> None:
        """The shard is closed and read: once all of it is acknowledged, mark it finished
        so that its children start."""
        await shard.worker.drain()
        if self._pipeline.failure.done() or self._stopping.is_set():
            return
        await self._pipeline.stop_worker(shard.worker, drain=True)
        await self._flush(finished={shard.shard_id})
        self._finished.add(shard.shard_id)
        log.info("shard %s read to its end", shard.shard_id)
        self._refresh.set()  # list again now: its children may start

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.commit_interval)
            try:
                await self._flush()
            except Exception as exc:  # sqlite3.Error, OSError: retried next time
                self._pipeline.metrics.commits.labels("failed").inc()
                log.warning("checkpoint write failed, will retry: %r", exc)

    async def _flush(self, finished: set[str] | None = None) -> None:
        async with self._flush_lock:
            due = {sid: seq for sid, seq in self._acked.items() if self._flushed.get(sid) != seq}
            if not due and not finished:
                return
            await self._store.save(due, finished)
            self._flushed.update(due)
            self._pipeline.metrics.commits.labels("ok").inc()


async def create_stream(client: KinesisClient, stream: str, shards: int) -> bool:
    """Create a stream and wait until it is active; False if it exists already."""
    try:
        await client.create_stream(StreamName=stream, ShardCount=shards)
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise IngestError(f"create stream {stream}: {exc}") from None
        return False
    for _ in range(300):
        summary = await client.describe_stream_summary(StreamName=stream)
        if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return True
        await asyncio.sleep(0.1)
    raise IngestError(f"create stream {stream}: not active after 30s")
