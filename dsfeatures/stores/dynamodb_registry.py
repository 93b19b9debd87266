"""The registry and the erasure audit log on the same DynamoDB table as the rows.

Registered group versions live in partition ``__registry__`` (sort key
``{name}#{version:010d}``, plus a generation counter item), erasure records in
partitions ``__erasure__:{entity_type}:{entity_hash}``, audit events in partition
``__audit__``. Row partitions always contain ``#`` and these never do, so they cannot
collide with any entity.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import RegisteredGroup
from dsfeatures.stores.dynamodb import (
    DynamoTable,
    _call,
    _code,
    _key_item,
    _query,
    _retrying,
    _unavailable,
)
from dsfeatures.stores.protocols import AuditEvent, ErasureAudit

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

    from dsfeatures.stores.dynamodb import _Item

__all__ = ["DynamoAuditLog", "DynamoRegistryStore"]

_AUDIT_DEC = msgspec.json.Decoder(ErasureAudit)
_AUDIT_PK: Final = "__audit__"
#: Audit event puts in flight at once.
_AUDIT_CONCURRENCY: Final = 16
_EVENT_DEC = msgspec.json.Decoder(AuditEvent)
_EVENT_ENC = msgspec.json.Encoder()
_ERASURE_PK: Final = "__erasure__"
_GEN_SK: Final = "__gen__"
_REGISTRY_PK: Final = "__registry__"
_REG_DEC = msgspec.json.Decoder(RegisteredGroup)
_REG_ENC = msgspec.json.Encoder()


# --- registry -------------------------------------------------------------------------


class DynamoRegistryStore:
    """Registered group versions in partition ``__registry__`` (a RegistryStore).

    Args:
        table: the opened table (shared with the row store).
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table
        self._name = table.name

    async def open(self) -> None:
        """Nothing to do: the table owns the client."""

    async def close(self) -> None:
        """Nothing to do: the table owns the client."""

    async def load(self) -> tuple[list[RegisteredGroup], int]:
        """Every stored version and the generation read just before them."""
        gen = await self.generation()
        items = await _query(self._table, _REGISTRY_PK)
        groups = [_REG_DEC.decode(i["b"]["S"]) for i in items if i["sk"]["S"] != _GEN_SK]
        return groups, gen

    async def generation(self) -> int:
        """The registry generation (grows with every change; 0 when never changed)."""
        client = self._table.client
        resp = await _call(
            "GetItem",
            lambda: client.get_item(
                TableName=self._name,
                Key=_key_item(_REGISTRY_PK, _GEN_SK),
                ProjectionExpression="#g",
                ExpressionAttributeNames={"#g": "g"},
                ConsistentRead=True,
            ),
            until=self._until(),
        )
        item = resp.get("Item")
        return int(item["g"]["N"]) if item and "g" in item else 0

    async def insert(self, group: RegisteredGroup) -> RegisteredGroup | None:
        """Insert unless that name and version exist; then return the stored one."""
        d = group.definition
        sk = _registry_sk(d.name, d.version)
        try:
            await self._table.client.put_item(
                TableName=self._name,
                Item={**_key_item(_REGISTRY_PK, sk), "b": {"S": _REG_ENC.encode(group).decode()}},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except ClientError as e:
            if _code(e) != "ConditionalCheckFailedException":
                raise _unavailable("PutItem", e) from e
            return await self._get(sk)
        except BotoCoreError as e:
            raise _unavailable("PutItem", e) from e
        await self._bump()
        return None

    async def replace(self, group: RegisteredGroup) -> None:
        """Overwrite a stored version."""
        d = group.definition
        item = {
            **_key_item(_REGISTRY_PK, _registry_sk(d.name, d.version)),
            "b": {"S": _REG_ENC.encode(group).decode()},
        }
        client = self._table.client
        await _call(
            "PutItem",
            lambda: client.put_item(TableName=self._name, Item=item),
            until=self._until(),  # putting the same item twice is harmless
        )
        await self._bump()

    async def _get(self, sk: str) -> RegisteredGroup:
        client = self._table.client
        resp = await _call(
            "GetItem",
            lambda: client.get_item(
                TableName=self._name, Key=_key_item(_REGISTRY_PK, sk), ConsistentRead=True
            ),
            until=self._until(),
        )
        item = resp.get("Item")
        if not item:  # versions are never deleted, so this is not a race we can lose
            raise BackendUnavailable(f"DynamoDB: registry item {sk} vanished")
        return _REG_DEC.decode(item["b"]["S"])

    async def _bump(self) -> None:
        client = self._table.client
        await _call(
            "UpdateItem",
            lambda: client.update_item(
                TableName=self._name,
                Key=_key_item(_REGISTRY_PK, _GEN_SK),
                UpdateExpression="ADD #g :one",
                ExpressionAttributeNames={"#g": "g"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            ),
            until=self._until(),  # an ADD repeated after a lost answer only counts twice
        )

    def _until(self) -> float:
        return asyncio.get_running_loop().time() + self._table.config.retry_deadline


def _registry_sk(name: str, version: int) -> str:
    return f"{name}#{version:010d}"


# --- audit log ------------------------------------------------------------------------


class DynamoAuditLog:
    """Erasure records in partitions ``__erasure__:{entity_type}:{entity_hash}`` and audit
    events in partition ``__audit__`` (an AuditLog).

    An event is one item, ``sk = "{at}#{uuid}"`` (``at`` is fixed-width RFC 3339, so sort
    keys are in time order), the event's JSON in ``b``, its action in ``a`` and actor in
    ``u`` (for filters). Puts are conditional on the item being absent, so nothing is
    ever overwritten. One partition takes about 1,000 writes a second; the daemon writes
    a few events a minute (token use is aggregated per token and minute), and queries
    read it newest first from ``since`` on, never with a Scan.

    Args:
        table: the opened table (shared with the row store).
    """

    def __init__(self, table: DynamoTable) -> None:
        self._table = table
        self._name = table.name

    async def record_erasure(self, entry: ErasureAudit) -> None:
        """Append one record (sorted by the time it was recorded)."""
        sk = f"{time.time_ns() // 1000:016d}#{uuid.uuid4().hex}"
        item: _Item = {
            **_key_item(_audit_pk(entry.entity_type, entry.entity_hash), sk),
            "b": {"S": _REG_ENC.encode(entry).decode()},
        }
        client = self._table.client
        deadline = asyncio.get_running_loop().time() + self._table.config.retry_deadline
        # The item's sort key is unique, so repeating the put cannot duplicate the record.
        await _call(
            "PutItem", lambda: client.put_item(TableName=self._name, Item=item), until=deadline
        )

    async def erasures(self, entity_type: str, entity_hash: str) -> list[ErasureAudit]:
        """Records of one entity, oldest first."""
        items = await _query(self._table, _audit_pk(entity_type, entity_hash))
        return [_AUDIT_DEC.decode(i["b"]["S"]) for i in items]

    async def record(self, events: Sequence[AuditEvent]) -> None:
        """Append events (conditional puts; a repeat after a lost answer is a no-op)."""
        if not events:
            return
        deadline = asyncio.get_running_loop().time() + self._table.config.retry_deadline
        for i in range(0, len(events), _AUDIT_CONCURRENCY):
            await asyncio.gather(
                *(self._put_event(e, deadline) for e in events[i : i + _AUDIT_CONCURRENCY])
            )

    async def _put_event(self, event: AuditEvent, deadline: float) -> None:
        item: _Item = {
            **_key_item(_AUDIT_PK, f"{event.at}#{uuid.uuid4().hex}"),
            "b": {"S": _EVENT_ENC.encode(event).decode()},
            "a": {"S": event.action},
            "u": {"S": event.actor},
        }
        client = self._table.client
        try:
            await _retrying(
                lambda: client.put_item(
                    TableName=self._name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": "pk"},
                ),
                deadline,
                True,
            )
        except ClientError as e:
            # The same item (unique sort key) is there: an earlier attempt was applied.
            if _code(e) != "ConditionalCheckFailedException":
                raise _unavailable("PutItem", e) from e
        except (BotoCoreError, OSError) as e:
            raise _unavailable("PutItem", e) from e

    async def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Events newest first: a Query of ``__audit__`` backwards, filtered, paginated."""
        names: dict[str, str] = {"#pk": "pk"}
        values: dict[str, AttributeValueTypeDef] = {":p": {"S": _AUDIT_PK}}
        key = "#pk = :p"
        if since is not None:
            key += " AND #sk >= :s"
            names["#sk"] = "sk"
            values[":s"] = {"S": since}
        filters = []
        for attr, value in (("a", action), ("u", actor)):
            if value is not None:
                filters.append(f"#{attr} = :{attr}")
                names[f"#{attr}"] = attr
                values[f":{attr}"] = {"S": value}
        q: QueryInputTypeDef = {
            "TableName": self._name,
            "KeyConditionExpression": key,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": max(limit, 25),
        }
        if filters:
            q["FilterExpression"] = " AND ".join(filters)
        out: list[AuditEvent] = []
        client = self._table.client
        deadline = asyncio.get_running_loop().time() + self._table.config.retry_deadline
        while len(out) < limit:
            resp = await _call("Query", lambda: client.query(**q), until=deadline)
            out.extend(_EVENT_DEC.decode(i["b"]["S"]) for i in resp.get("Items", ()))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            q["ExclusiveStartKey"] = last
        return out[:limit]


def _audit_pk(entity_type: str, entity_hash: str) -> str:
    return f"{_ERASURE_PK}:{entity_type}:{entity_hash}"
