"""Freshness statistics on the same DynamoDB table as the rows (a StatsStore).

Items
    ``pk = "__freshness__:{group}"``, ``sk = "{version:010d}:{lane}"``: the latest event
    time ``ev`` and written-at time ``wa`` (N, microseconds) and the rows written ``n`` of
    one group version and lane; one Query reads every version and lane of a group.
    ``pk = "__volume__:{group}:{version}"``, ``sk = "{bucket:012d}:{lane}"``: rows written
    ``n`` in one time bucket (epoch seconds), with ``ttl`` (bucket + retention) so that
    DynamoDB's own expiry removes old buckets; a Query with ``sk >= :from`` reads a window.
    Row partitions always contain ``#`` and these never do, so they cannot collide.

Merging
    Counts are added with ``ADD`` (atomic, whichever process flushes). DynamoDB has no
    ``max`` in update expressions, so times are raised by conditional updates: first one
    UpdateItem that adds the count and sets both times on the condition that neither
    goes back (the usual case: one call); when that condition fails, the count is added
    alone and each time is set on its own condition (``ev < :ev``), whose failure only
    means another process already stored a later time.

Retries
    ``ADD`` is not idempotent, so a call is repeated only when DynamoDB throttled it
    (it was not applied); any other failure propagates and the caller keeps the delta
    for its next flush, where it may count twice if the failed call had in fact been
    applied: these are statistics, not data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from dsfeatures.stores.dynamodb import DynamoTable, _call, _code, _retrying, _unavailable
from dsfeatures.stores.protocols import LaneDelta, LaneStats

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        QueryInputTypeDef,
        UpdateItemInputTypeDef,
    )

    from dsfeatures.stores.dynamodb import _Item

__all__ = ["DynamoStatsStore"]

_FRESH_PK: Final = "__freshness__"
_VOLUME_PK: Final = "__volume__"
#: Deltas merged concurrently by one flush.
_CONCURRENCY: Final = 16
_NAMES: Final = {"#n": "n", "#ev": "ev", "#wa": "wa"}


def _lane_pk(group: str) -> str:
    return f"{_FRESH_PK}:{group}"


def _volume_pk(group: str, version: int) -> str:
    return f"{_VOLUME_PK}:{group}:{version}"


class DynamoStatsStore:
    """Statistics as items of a :class:`~dsfeatures.stores.dynamodb.DynamoTable`.

    Args:
        table: the opened table (shared with the row store).
        retention_seconds: lifetime of a volume bucket (its ``ttl``).
    """

    def __init__(self, table: DynamoTable, *, retention_seconds: int = 2 * 86_400) -> None:
        self._table = table
        self._name = table.name
        self._retention = retention_seconds

    async def open(self) -> None:
        """Nothing to do: the table owns the client."""

    async def close(self) -> None:
        """Nothing to do: the table owns the client."""

    def _until(self) -> float:
        return asyncio.get_running_loop().time() + self._table.config.retry_deadline

    async def add(self, deltas: Sequence[LaneDelta]) -> None:
        """Merge deltas, at most 16 at a time.

        Raises:
            BackendUnavailable: a call failed (other than a lost condition).
        """
        sem = asyncio.Semaphore(_CONCURRENCY)
        oldest = int(time.time()) - self._retention

        async def one(d: LaneDelta) -> None:
            async with sem:
                await self._add_lane(d)
                for bucket, n in d.buckets.items():
                    if bucket >= oldest:  # an older one would expire at once
                        await self._add_bucket(d, bucket, n)

        async with asyncio.TaskGroup() as tg:
            for d in deltas:
                tg.create_task(one(d))

    async def _update(
        self,
        key: _Item,
        expr: str,
        names: dict[str, str],
        values: _Item,
        condition: str | None = None,
    ) -> bool:
        """One UpdateItem; False when its condition did not hold."""
        client = self._table.client
        req: UpdateItemInputTypeDef = {
            "TableName": self._name,
            "Key": key,
            "UpdateExpression": expr,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition is not None:
            req["ConditionExpression"] = condition
        try:
            await _retrying(lambda: client.update_item(**req), self._until(), idempotent=False)
        except ClientError as e:
            if _code(e) == "ConditionalCheckFailedException":
                return False
            raise _unavailable("UpdateItem", e) from e
        except (BotoCoreError, OSError) as e:
            raise _unavailable("UpdateItem", e) from e
        return True

    async def _add_lane(self, d: LaneDelta) -> None:
        key: _Item = {
            "pk": {"S": _lane_pk(d.group)},
            "sk": {"S": f"{d.version:010d}:{d.lane}"},
        }
        n: AttributeValueTypeDef = {"N": str(d.rows)}
        ev: AttributeValueTypeDef = {"N": str(d.last_event_us)}
        wa: AttributeValueTypeDef = {"N": str(d.last_written_us)}
        if await self._update(
            key,
            "ADD #n :n SET #ev = :ev, #wa = :wa",
            _NAMES,
            {":n": n, ":ev": ev, ":wa": wa},
            "attribute_not_exists(#ev) OR (#ev <= :ev AND #wa <= :wa)",
        ):
            return
        await self._update(key, "ADD #n :n", {"#n": "n"}, {":n": n})
        await self._update(key, "SET #ev = :ev", {"#ev": "ev"}, {":ev": ev}, "#ev < :ev")
        await self._update(key, "SET #wa = :wa", {"#wa": "wa"}, {":wa": wa}, "#wa < :wa")

    async def _add_bucket(self, d: LaneDelta, bucket: int, n: int) -> None:
        key: _Item = {
            "pk": {"S": _volume_pk(d.group, d.version)},
            "sk": {"S": f"{bucket:012d}:{d.lane}"},
        }
        await self._update(
            key,
            "ADD #n :n SET #ttl = :ttl",
            {"#n": "n", "#ttl": "ttl"},
            {":n": {"N": str(n)}, ":ttl": {"N": str(bucket + self._retention)}},
        )

    async def _query(self, pk: str, sk_from: str | None = None) -> list[_Item]:
        q: QueryInputTypeDef = {
            "TableName": self._name,
            "KeyConditionExpression": "#pk = :p",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":p": {"S": pk}},
        }
        if sk_from is not None:
            q["KeyConditionExpression"] = "#pk = :p AND #sk >= :s"
            q["ExpressionAttributeNames"] = {"#pk": "pk", "#sk": "sk"}
            q["ExpressionAttributeValues"] = {":p": {"S": pk}, ":s": {"S": sk_from}}
        client = self._table.client
        items: list[_Item] = []
        until = self._until()
        while True:
            resp = await _call("Query", lambda: client.query(**q), until=until)
            items.extend(resp.get("Items", ()))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return items
            q["ExclusiveStartKey"] = last

    async def lanes(self, group: str) -> list[LaneStats]:
        """Every version and lane of ``group`` (one Query)."""
        out = []
        for item in await self._query(_lane_pk(group)):
            version, _, lane = item["sk"]["S"].partition(":")
            out.append(
                LaneStats(
                    group,
                    int(version),
                    lane,
                    int(item["ev"]["N"]) if "ev" in item else 0,
                    int(item["wa"]["N"]) if "wa" in item else 0,
                    int(item["n"]["N"]) if "n" in item else 0,
                )
            )
        return out

    async def volume(self, group: str, version: int, since: int) -> list[tuple[int, str, int]]:
        """Rows per (bucket, lane) from ``since`` on (one Query on a sort-key range)."""
        out = []
        for item in await self._query(_volume_pk(group, version), f"{max(since, 0):012d}"):
            bucket, _, lane = item["sk"]["S"].partition(":")
            out.append((int(bucket), lane, int(item["n"]["N"]) if "n" in item else 0))
        return out
