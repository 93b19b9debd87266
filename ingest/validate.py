"""Local validation of payloads against the registry, before anything is written.

The daemon validates a write all-or-nothing: one bad row refuses the whole request. So
each payload is checked here first with the registry's own type checks
(:class:`dsfeatures.registry.CompiledGroup`, ``FeatureType.check``) and a bad one is
dead-lettered alone instead of sinking its micro-batch. Group definitions are fetched
through the SDK's registry calls and cached (``registry_ttl``; a miss for
``registry_miss_ttl``, so a group registered after the service started is picked up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

import msgspec

from dsfeatures.client import AsyncClient, NotFound
from dsfeatures.client.producer import FeaturePayload, decode_payload
from dsfeatures.registry import CompiledGroup, InvalidValue
from dsfeatures.wire import MAX_ENTITY_ID_BYTES, WriteRow
from ingest.records import Reason

__all__ = ["GroupCache", "Groups", "Validator", "decode"]

_MAX_SNIPPET = 300
# fixmap (0x80-0x8f), map 16, map 32
_MSGPACK_MAP_PREFIXES = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])


def decode(data: bytes) -> FeaturePayload | Reason:
    """Decode one message into a payload, or the reason it cannot be."""
    first = data.lstrip(b" \t\r\n")[:1]
    if not first:
        return Reason("MALFORMED_PAYLOAD", "empty message", "decode")
    if first != b"{" and first[0] not in _MSGPACK_MAP_PREFIXES:
        return Reason(
            "MALFORMED_PAYLOAD",
            f"neither a JSON object nor a msgpack map (first byte {first[0]:#04x})",
            "decode",
        )
    try:
        return decode_payload(data)
    except msgspec.ValidationError as exc:
        return Reason("INVALID_PAYLOAD", f"envelope: {exc}"[:_MAX_SNIPPET], "decode")
    except msgspec.DecodeError as exc:
        kind = "JSON" if first == b"{" else "msgpack"
        return Reason("MALFORMED_PAYLOAD", f"invalid {kind}: {exc}"[:_MAX_SNIPPET], "decode")


Fetch = Callable[[str, int], Awaitable[CompiledGroup | None]]


class GroupCache:
    """Group versions by (name, version), fetched on a miss and kept for a while.

    Concurrent lookups of one key share one fetch. A fetch failure (daemon
    unreachable) propagates: the caller retries the batch.

    Args:
        fetch: returns the compiled group, or None when it is not registered.
        ttl: seconds a found group is kept.
        miss_ttl: seconds a missing group is remembered as missing.
    """

    def __init__(self, fetch: Fetch, ttl: float, miss_ttl: float) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._entries: dict[tuple[str, int], tuple[float, CompiledGroup | None]] = {}
        self._pending: dict[tuple[str, int], asyncio.Future[CompiledGroup | None]] = {}
        self.fetches = 0

    @classmethod
    def for_client(cls, client: AsyncClient, ttl: float, miss_ttl: float) -> GroupCache:
        """A cache that fetches through the SDK's ``get_group_version``."""

        async def fetch(name: str, version: int) -> CompiledGroup | None:
            try:
                registered = await client.get_group_version(name, version)
            except NotFound:
                return None
            return CompiledGroup(registered)

        return cls(fetch, ttl, miss_ttl)

    def forget(self, name: str, version: int) -> None:
        """Drop one entry (the daemon said it changed)."""
        self._entries.pop((name, version), None)

    async def get(self, name: str, version: int) -> CompiledGroup | None:
        """The group version, or None when it is not registered."""
        key = (name, version)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[CompiledGroup | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            self.fetches += 1
            group = await self._fetch(name, version)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it, nobody logs "never retrieved"
            raise
        finally:
            self._pending.pop(key, None)
        ttl = self._ttl if group is not None else self._miss_ttl
        self._entries[key] = (time.monotonic() + ttl, group)
        fut.set_result(group)
        return group


Groups = dict[tuple[str, int], CompiledGroup | None]


class Validator:
    """Turns a payload into the row to write, or the reason it is refused.

    :meth:`load` fetches the group versions a micro-batch names (the only step that
    can fail and be retried); :meth:`check` then decides each payload without I/O.

    Args:
        groups: the registry cache.
    """

    def __init__(self, groups: GroupCache) -> None:
        self.groups = groups

    async def load(self, payloads: Iterable[FeaturePayload]) -> Groups:
        """The group versions named by ``payloads`` (None for an unregistered one).

        Raises:
            DSFError: the registry could not be read (retryable).
        """
        keys = {(p.group, p.version) for p in payloads}
        found = await asyncio.gather(*(self.groups.get(name, v) for name, v in keys))
        return dict(zip(keys, found, strict=True))

    @staticmethod
    def check(p: FeaturePayload, groups: Groups) -> WriteRow | Reason:
        """The write row of ``p`` (values unchanged: the daemon stores its own coercion).

        Args:
            p: the payload.
            groups: the result of :meth:`load` for a set of payloads including ``p``.
        """
        cg = groups.get((p.group, p.version))
        if cg is None:
            return Reason(
                "UNKNOWN_FEATURE", f"group {p.group}@{p.version} is not registered", "validate"
            )
        if cg.retired:
            return Reason("UNKNOWN_FEATURE", f"group {cg.label} is retired", "validate")
        if p.entity_type != cg.entity_type:
            return Reason(
                "INVALID_VALUE",
                f"entity_type: group {cg.label} is keyed by {cg.entity_type!r}, "
                f"not {p.entity_type!r}",
                "validate",
            )
        try:
            id_bytes = len(p.entity_id.encode("utf-8"))
        except UnicodeEncodeError:
            return Reason("INVALID_VALUE", "entity_id: not valid UTF-8", "validate")
        if id_bytes > MAX_ENTITY_ID_BYTES:
            return Reason(
                "INVALID_VALUE", f"entity_id: longer than {MAX_ENTITY_ID_BYTES} bytes", "validate"
            )
        for name, value in p.values.items():
            slot = cg.features.get(name)
            if slot is None:
                return Reason(
                    "UNKNOWN_FEATURE",
                    f"values.{name}: group {cg.label} has no such feature",
                    "validate",
                )
            if value is None:
                continue
            try:
                slot.ftype.check(value)
            except InvalidValue as exc:
                return Reason("INVALID_VALUE", f"values.{name}: {exc}", "validate")
        vec = cg.vector_feature
        if vec is not None and p.values.get(vec.name) is None:
            return Reason(
                "INVALID_VALUE", f"values.{vec.name}: an embedding row needs its vector", "validate"
            )
        return WriteRow(
            group=p.group,
            entity_id=p.entity_id,
            values=p.values,
            version=p.version,
            event_time=p.event_time,
            entity_type=p.entity_type,
        )
