"""Dead-letter destinations: a Kafka topic, a Kinesis stream or a file.

A dead letter is the JSON :class:`~ingest.records.DeadLetter` record (the original bytes,
base64, and the reason). ``put`` returns only once the destination acknowledged every
letter (Kafka ``acks=all``, Kinesis ``PutRecords`` without failed entries, a file
flushed and fsynced), and the source's offsets are committed only after that: a bad
payload is never dropped silently. A destination that keeps failing is retried until the
retry deadline, then the service stops (nothing past it committed).

Kafka letters also carry the reason in headers (``dsf-reason-code``, ``dsf-stage``,
``dsf-source``) and keep the original message key, so they can be filtered or replayed
without decoding the value.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ingest.errors import IngestError
from ingest.records import DEAD_LETTER_ENCODER, DeadLetter
from ingest.uris import FileUri, KafkaUri, KinesisUri, Uri

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_kinesis.type_defs import PutRecordsRequestEntryTypeDef

    from ingest.write import RetryPolicy

__all__ = [
    "DeadLetterSink",
    "FileDeadLetters",
    "KafkaDeadLetters",
    "KinesisDeadLetters",
    "open_dead_letters",
]

_KINESIS_BATCH = 500  # PutRecords limit


class DeadLetterSink(Protocol):
    """Where refused payloads go."""

    uri: str

    async def open(self) -> None:
        """Connect, and check that the destination exists.

        Raises:
            IngestError: it does not exist or cannot be reached.
        """

    async def put(self, letters: Sequence[DeadLetter]) -> None:
        """Store ``letters``; returns once all are acknowledged.

        Raises:
            IngestError: the destination stayed unavailable past the retry deadline.
        """

    async def close(self) -> None:
        """Flush and disconnect."""


class FileDeadLetters:
    """JSON lines appended to a file (``-``: standard error), fsynced on every put.

    Args:
        uri: the destination.
    """

    def __init__(self, uri: FileUri) -> None:
        self.uri = str(uri)
        self._path = uri.path
        self._file: IO[bytes] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._path == "-":
            self._file = sys.stderr.buffer
            return

        def opener() -> IO[bytes]:
            path = Path(self._path)
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "ab")

        try:
            self._file = await asyncio.to_thread(opener)
        except OSError as exc:
            raise IngestError(f"dead-letter file {self._path}: {exc}") from None

    async def put(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        f = self._file
        if f is None:
            raise RuntimeError("FileDeadLetters.put before open")
        data = b"".join(DEAD_LETTER_ENCODER.encode(letter) + b"\n" for letter in letters)
        is_std = self._path == "-"

        def append() -> None:
            f.write(data)
            f.flush()
            if not is_std:
                os.fsync(f.fileno())

        async with self._lock:
            try:
                await asyncio.to_thread(append)
            except OSError as exc:
                raise IngestError(f"dead-letter file {self._path}: {exc}") from None

    async def close(self) -> None:
        f, self._file = self._file, None
        if f is not None and self._path != "-":
            await asyncio.to_thread(f.close)


class KafkaDeadLetters:
    """A Kafka topic; the topic must exist (auto-creation is off in production brokers).

    Args:
        uri: the destination.
        retry: retry policy for failed sends.
    """

    def __init__(self, uri: KafkaUri, retry: RetryPolicy) -> None:
        self.uri = str(uri)
        self._target = uri
        self._retry = retry
        self._producer: Any = None  # AIOKafkaProducer (aiokafka ships no type hints)

    async def open(self) -> None:
        from ingest.kafka import topic_exists
        from ingest.kafka_client import AIOKafkaProducer, KafkaError

        try:
            exists = await topic_exists(self._target)
        except KafkaError as exc:
            raise IngestError(f"dead-letter topic {self.uri}: {exc!r}") from None
        if not exists:
            raise IngestError(
                f"dead-letter topic {self._target.topic!r} does not exist on "
                f"{self._target.bootstrap}; create it (dsfeatures-ingest create {self.uri})"
            )
        producer = AIOKafkaProducer(
            bootstrap_servers=self._target.bootstrap,
            client_id="dsfeatures-ingest-dlq",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise IngestError(f"dead-letter topic {self.uri}: {exc!r}") from None
        self._producer = producer

    async def put(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaDeadLetters.put before open")
        topic = self._target.topic

        async def send_all() -> None:
            futures = []
            for letter in letters:
                headers = [
                    ("dsf-reason-code", letter.reason.code.encode()),
                    ("dsf-stage", letter.reason.stage.encode()),
                    ("dsf-source", letter.source.encode()),
                ]
                futures.append(
                    await producer.send(
                        topic,
                        value=DEAD_LETTER_ENCODER.encode(letter),
                        key=letter.key,
                        headers=headers,
                    )
                )
            await asyncio.gather(*futures)

        await self._retry.run(_kafka_retryable(send_all), "dlq", f"dead letters to {self.uri}")

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


def _kafka_retryable(call: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Wrap a Kafka call so that its retriable errors look retryable to RetryPolicy."""
    from dsfeatures.errors import BackendUnavailable
    from ingest.kafka_client import KafkaError

    async def wrapped() -> None:
        try:
            await call()
        except KafkaError as exc:
            if getattr(exc, "retriable", False) or isinstance(exc, asyncio.TimeoutError):
                raise BackendUnavailable(f"kafka: {exc!r}") from exc
            raise IngestError(f"kafka dead-letter send failed: {exc!r}") from exc

    return wrapped


class KinesisDeadLetters:
    """A Kinesis stream; each letter is one record (partition key: the original key).

    Args:
        uri: the destination.
        client: an open aiobotocore Kinesis client.
        retry: retry policy for failed puts.
    """

    def __init__(self, uri: KinesisUri, client: KinesisClient, retry: RetryPolicy) -> None:
        self.uri = str(uri)
        self._stream = uri.stream
        self._client = client
        self._retry = retry

    async def open(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await self._client.describe_stream_summary(StreamName=self._stream)
        except ClientError as exc:
            raise IngestError(
                f"dead-letter stream {self._stream!r}: {exc} "
                f"(create it: dsfeatures-ingest create {self.uri})"
            ) from None
        except BotoCoreError as exc:
            raise IngestError(f"dead-letter stream {self._stream!r}: {exc}") from None

    async def put(self, letters: Sequence[DeadLetter]) -> None:
        entries: list[PutRecordsRequestEntryTypeDef] = [
            {
                "Data": DEAD_LETTER_ENCODER.encode(letter),
                "PartitionKey": _partition_key(letter),
            }
            for letter in letters
        ]
        for start in range(0, len(entries), _KINESIS_BATCH):
            await self._put_chunk(entries[start : start + _KINESIS_BATCH])

    async def _put_chunk(self, entries: list[PutRecordsRequestEntryTypeDef]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from dsfeatures.errors import BackendUnavailable

        pending = entries

        async def attempt() -> None:
            nonlocal pending
            try:
                resp = await self._client.put_records(
                    StreamName=self._stream,
                    Records=pending,
                )
            except (ClientError, BotoCoreError) as exc:
                raise BackendUnavailable(f"kinesis put_records: {exc}") from exc
            if resp.get("FailedRecordCount", 0):
                pending = [
                    entry
                    for entry, result in zip(pending, resp["Records"], strict=True)
                    if "ErrorCode" in result
                ]
                raise BackendUnavailable(f"kinesis put_records: {len(pending)} records failed")

        await self._retry.run(attempt, "dlq", f"dead letters to {self.uri}")

    async def close(self) -> None:
        """The client belongs to the caller."""


def _partition_key(letter: DeadLetter) -> str:
    if letter.key:
        text = letter.key.decode("utf-8", "replace")
        if text:
            return text[:256]
    return f"{letter.partition}/{letter.position}"[:256]


def open_dead_letters(
    uri: Uri,
    retry: RetryPolicy,
    kinesis: KinesisClient | None = None,
) -> DeadLetterSink:
    """The destination for ``uri`` (not opened yet).

    Args:
        uri: a Kafka, Kinesis or file URI.
        retry: retry policy of sends.
        kinesis: an open Kinesis client, needed for a Kinesis destination.

    Raises:
        IngestError: a Kinesis destination without a client.
    """
    if isinstance(uri, KafkaUri):
        return KafkaDeadLetters(uri, retry)
    if isinstance(uri, KinesisUri):
        if kinesis is None:
            raise IngestError("a Kinesis dead-letter stream needs a Kinesis client")
        return KinesisDeadLetters(uri, kinesis, retry)
    return FileDeadLetters(uri)
