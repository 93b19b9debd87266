"""Source and dead-letter URIs.

* ``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``: a Kafka topic;
* ``kinesis://STREAM``: a Kinesis stream (endpoint and region from the settings);
* ``file:PATH``: a file of JSON payloads, one per line; ``file:-`` is standard input
  (as a source) or standard error (as a dead-letter destination).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.errors import ConfigError

__all__ = [
    "FileUri",
    "KafkaUri",
    "KinesisUri",
    "Uri",
    "default_dead_letter_uri",
    "parse_uri",
]

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_STREAM = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_HOSTPORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True, slots=True)
class KafkaUri:
    """A Kafka topic and the brokers to bootstrap from."""

    bootstrap: str
    topic: str

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{self.topic}"


@dataclass(frozen=True, slots=True)
class KinesisUri:
    """A Kinesis stream."""

    stream: str

    def __str__(self) -> str:
        return f"kinesis://{self.stream}"


@dataclass(frozen=True, slots=True)
class FileUri:
    """A local file; ``-`` is standard input (source) or standard error (dead letters)."""

    path: str

    @property
    def is_std(self) -> bool:
        return self.path == "-"

    def __str__(self) -> str:
        return f"file:{self.path}"


Uri = KafkaUri | KinesisUri | FileUri


def parse_uri(text: str, what: str = "source") -> Uri:
    """Parse a source or dead-letter URI.

    Args:
        text: the URI.
        what: ``source`` or ``dlq``, for messages.

    Raises:
        ConfigError: not one of the forms above.
    """
    if text.startswith("kafka://"):
        rest = text[len("kafka://") :]
        hosts, sep, topic = rest.partition("/")
        if not sep or not _TOPIC.match(topic):
            raise ConfigError(f"{what}: expected kafka://HOST:PORT/TOPIC, got {text!r}")
        parts = [h.strip() for h in hosts.split(",")]
        if not parts or not all(_HOSTPORT.match(h) for h in parts):
            raise ConfigError(f"{what}: bad broker list in {text!r} (HOST:PORT[,HOST:PORT])")
        return KafkaUri(",".join(parts), topic)
    if text.startswith("kinesis://"):
        stream = text[len("kinesis://") :].rstrip("/")
        if not _STREAM.match(stream):
            raise ConfigError(f"{what}: expected kinesis://STREAM, got {text!r}")
        return KinesisUri(stream)
    if text.startswith("file:"):
        path = text[len("file:") :]
        if path.startswith("//"):  # file:///abs/path
            path = path[2:]
        if not path:
            raise ConfigError(f"{what}: expected file:PATH (or file:-), got {text!r}")
        return FileUri(path)
    raise ConfigError(
        f"{what}: unknown URI {text!r} (kafka://HOST:PORT/TOPIC, kinesis://STREAM or file:PATH)"
    )


def default_dead_letter_uri(source: Uri) -> Uri:
    """Where bad payloads go when ``--dlq`` is not given.

    ``TOPIC.dlq`` beside a Kafka topic, ``STREAM-dlq`` for a Kinesis stream,
    ``PATH.dlq.jsonl`` beside a file, and standard error for standard input.
    """
    if isinstance(source, KafkaUri):
        return KafkaUri(source.bootstrap, f"{source.topic}.dlq")
    if isinstance(source, KinesisUri):
        return KinesisUri(f"{source.stream}-dlq")
    if source.is_std:
        return FileUri("-")
    return FileUri(f"{source.path}.dlq.jsonl")
