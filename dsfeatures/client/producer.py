"""The streaming lane's payload envelope, and a tiny helper that builds and encodes it.

Producers put one :class:`FeaturePayload` per message on Kafka or Kinesis; the central
ingest service (``dsfeatures-ingest``) validates it against the registry and writes it
through the daemon's write API with ``lane=stream``. :class:`PayloadBuilder` fills the
envelope, checks it, and encodes it as JSON or msgpack with the key to partition by::

    from dsfeatures.client import PayloadBuilder

    build = PayloadBuilder("pricing-service")
    msg = build("rider_stats", 1, "rider", "r1", {"trips_7d": 3, "avg_fare": 12.5})
    await kafka_producer.send(topic, key=msg.key, value=msg.value)
    # Kinesis: put_record(StreamName=..., PartitionKey=msg.partition_key, Data=msg.value)

The event time defaults to the moment the payload is built: stamping it at the producer
is what makes a redelivery harmless (the write path never lets an older event time
overwrite a newer one). The JSON Schema of the envelope is :func:`payload_json_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta, Struct

from dsfeatures.errors import InvalidRequest
from dsfeatures.registry.models import NAME_PATTERN
from dsfeatures.wire import EntityId

__all__ = [
    "EncodedPayload",
    "FeaturePayload",
    "PayloadBuilder",
    "PayloadFormat",
    "decode_payload",
    "payload_json_schema",
    "payload_key",
]

_Name = Annotated[str, Meta(pattern=NAME_PATTERN, min_length=1, max_length=128)]

#: Wire formats of a payload: JSON text or msgpack (smaller; bytes and timestamps native).
PayloadFormat = Literal["json", "msgpack"]


class FeaturePayload(Struct, frozen=True, forbid_unknown_fields=True):
    """One feature payload of the streaming lane: some values of one group for one entity.

    Unknown fields are refused (a typo never passes silently). ``values`` maps feature
    names to values of their registered types (bytes as base64 in JSON, timestamps as
    RFC 3339 strings or msgpack timestamps). ``event_time`` needs a time zone.

    Attributes:
        group: the feature group's name.
        version: the group version the values belong to (pinned by the producer, so a
            replay never lands in a version registered later).
        entity_type: the group's entity type, for example ``rider``.
        entity_id: the entity id (non-empty UTF-8, at most 1,024 bytes).
        values: feature name to value; at least one.
        event_time: when the values were true; later event times win.
        producer: who produced the payload (a service name), for dead letters and logs.
    """

    group: Annotated[_Name, Meta(description="Feature group name.")]
    version: Annotated[int, Meta(ge=1, description="Group version.")]
    entity_type: Annotated[_Name, Meta(description="Entity type of the group.")]
    entity_id: Annotated[EntityId, Meta(description="Entity id.")]
    values: Annotated[
        dict[_Name, Any],
        Meta(min_length=1, description="Feature name to value, of the registered types."),
    ]
    event_time: Annotated[
        datetime, Meta(tz=True, description="RFC 3339 time with a zone; later ones win.")
    ]
    producer: Annotated[
        str, Meta(min_length=1, max_length=256, description="Id of the producing service.")
    ]


class EncodedPayload(NamedTuple):
    """A payload ready to send.

    Attributes:
        key: the Kafka message key (``entity_type/entity_id``, UTF-8): messages of one
            entity land on one partition, so their order is kept.
        partition_key: the same key as text, for Kinesis ``PartitionKey`` (at most 256
            characters: longer keys are cut, which only changes the shard choice).
        value: the encoded payload.
    """

    key: bytes
    partition_key: str
    value: bytes


_JSON = msgspec.json.Encoder()
_MSGPACK = msgspec.msgpack.Encoder()
_JSON_DECODER = msgspec.json.Decoder(FeaturePayload)
_MSGPACK_DECODER = msgspec.msgpack.Decoder(FeaturePayload)
_WHITESPACE = b" \t\r\n"


def payload_key(entity_type: str, entity_id: str) -> str:
    """The partition key of an entity: ``entity_type/entity_id``."""
    return f"{entity_type}/{entity_id}"


def decode_payload(data: bytes) -> FeaturePayload:
    """Decode a payload, JSON or msgpack (told apart by the first byte).

    JSON is an object, so its first non-blank byte is ``{``; a msgpack map starts
    with a byte of ``0x80``-``0x8f``, ``0xde`` or ``0xdf``.

    Raises:
        msgspec.ValidationError: well-formed, but not a valid envelope (the message
            names the field).
        msgspec.DecodeError: neither JSON nor msgpack.
    """
    if data.lstrip(_WHITESPACE)[:1] == b"{":
        return _JSON_DECODER.decode(data)
    return _MSGPACK_DECODER.decode(data)


def payload_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of :class:`FeaturePayload`, as ``dsfeatures-ingest schema``
    prints it."""
    schema: dict[str, Any] = msgspec.json.schema(FeaturePayload)
    definition = schema["$defs"]["FeaturePayload"]
    definition["description"] = (
        "One feature payload of the dsfeatures streaming lane: values of one feature group "
        "version for one entity, with the time they were true and the producer's id. "
        "Unknown fields are refused."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dsfeatures.dev/schemas/feature-payload-v1.json",
        "title": "dsfeatures feature payload",
        **schema,
    }


class PayloadBuilder:
    """Builds, checks and encodes feature payloads for one producer.

    Args:
        producer: the producing service's id, stamped on every payload.
        format: ``json`` or ``msgpack``.

    Raises:
        ValueError: empty producer id or unknown format.
    """

    __slots__ = ("_encode", "format", "producer")

    def __init__(self, producer: str, format: PayloadFormat = "json") -> None:
        if not isinstance(producer, str) or not producer.strip():
            raise ValueError("producer must be a non-empty string")
        if format not in ("json", "msgpack"):
            raise ValueError(f"format must be 'json' or 'msgpack', got {format!r}")
        self.producer = producer
        self.format: PayloadFormat = format
        self._encode = _MSGPACK.encode if format == "msgpack" else _JSON.encode

    def __repr__(self) -> str:
        return f"PayloadBuilder(producer={self.producer!r}, format={self.format!r})"

    def payload(
        self,
        group: str,
        version: int,
        entity_type: str,
        entity_id: str,
        values: Mapping[str, Any],
        event_time: datetime | None = None,
    ) -> FeaturePayload:
        """A checked payload (the envelope only: value types are checked by the ingest
        service against the registry).

        Args:
            group: the feature group.
            version: the group version.
            entity_type: the group's entity type.
            entity_id: the entity.
            values: feature name to value.
            event_time: when the values were true (aware); default now (UTC).

        Returns:
            The payload.

        Raises:
            InvalidRequest: a field is malformed (the message names it).
        """
        fields = {
            "group": group,
            "version": version,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "values": dict(values) if isinstance(values, Mapping) else values,
            "event_time": datetime.now(UTC) if event_time is None else event_time,
            "producer": self.producer,
        }
        try:
            return msgspec.convert(fields, FeaturePayload, from_attributes=False)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"payload: {exc}") from None

    def encode(self, payload: FeaturePayload) -> EncodedPayload:
        """Encode a payload with its partition key."""
        key = payload_key(payload.entity_type, payload.entity_id)
        return EncodedPayload(key.encode(), key[:256], self._encode(payload))

    def __call__(
        self,
        group: str,
        version: int,
        entity_type: str,
        entity_id: str,
        values: Mapping[str, Any],
        event_time: datetime | None = None,
    ) -> EncodedPayload:
        """Build and encode in one step (arguments and errors of :meth:`payload`)."""
        return self.encode(self.payload(group, version, entity_type, entity_id, values, event_time))
