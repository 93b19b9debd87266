"""What flows through the pipeline: source records, rejection reasons and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from msgspec import Struct

from dsfeatures.client.producer import FeaturePayload

__all__ = [
    "DEAD_LETTER_DECODER",
    "DEAD_LETTER_ENCODER",
    "DeadLetter",
    "Reason",
    "SourceRecord",
    "Stage",
]

#: Where a payload was refused: decoding the envelope, validating it against the
#: registry, or by the daemon's write API.
Stage = Literal["decode", "validate", "write"]


@dataclass(slots=True)
class SourceRecord:
    """One message read from a source.

    Attributes:
        partition: the Kafka partition, Kinesis shard id or ``0`` for a file.
        position: the Kafka offset, Kinesis sequence number or 1-based line number.
        key: the message key (Kafka key, Kinesis partition key), if any.
        value: the original bytes.
        timestamp: when the source says it was produced (seconds since the epoch), if known.
        payload: the decoded payload, once decoded.
        size: bytes counted against the batch size.
    """

    partition: str
    position: int
    key: bytes | None
    value: bytes
    timestamp: float | None = None
    payload: FeaturePayload | None = None

    @property
    def size(self) -> int:
        return len(self.value)


class Reason(Struct, frozen=True):
    """Why a payload was dead-lettered.

    ``code`` is ``MALFORMED_PAYLOAD`` (neither JSON nor msgpack), ``INVALID_PAYLOAD``
    (the envelope does not fit the schema), ``UNKNOWN_FEATURE`` (group, version or
    feature not registered, or retired), ``INVALID_VALUE`` (a value of the wrong type,
    a bad id, an entity type that is not the group's), or the daemon's error code
    when the write API refused the row.
    """

    code: str
    message: str
    stage: Stage


class DeadLetter(Struct, omit_defaults=True):
    """A dead-lettered payload: the original bytes and the reason (JSON, one per message
    or line; ``payload`` and ``key`` are base64 in JSON).

    Attributes:
        reason: why it was refused.
        payload: the original message bytes, unchanged.
        source: the source URI it was read from.
        partition: the Kafka partition, Kinesis shard or ``0`` for a file.
        position: the offset, sequence number or line number (as text).
        dead_lettered_at: when the ingest service refused it (UTC).
        ingest: the ingest service's writer id.
        key: the original message key, if any.
        producer: the payload's producer id, when the envelope could be read.
        group: the payload's group, when the envelope could be read.
        entity_id: the payload's entity id, when the envelope could be read.
    """

    reason: Reason
    payload: bytes
    source: str
    partition: str
    position: str
    dead_lettered_at: datetime
    ingest: str
    key: bytes | None = None
    producer: str = ""
    group: str = ""
    entity_id: str = ""


DEAD_LETTER_ENCODER = msgspec.json.Encoder()
DEAD_LETTER_DECODER = msgspec.json.Decoder(DeadLetter)
