"""DynamoDB as the persistent store: rows, the registry and the erasure audit log in one table.

Key design (one table, no secondary index, no transactions)
    ``pk`` (S, partition key) is ``{entity_type}#{entity_id}``, ``sk`` (S, sort key) is
    ``{group}#{version}``. Entity types and group names match ``^[a-z_][a-z0-9_]*$``, so
    the first ``#`` of ``pk`` and the last ``#`` of ``sk`` split them unambiguously (entity
    ids may contain ``#``). A row is one item: ``r`` (B) the msgpack blob of
    :func:`~dsfeatures.stores.record.encode_record`, ``rev`` (N) its revision, ``et`` (N)
    its event time in microseconds and, only when the group has a TTL, ``ttl`` (N): epoch
    seconds of the event time (rounded up) plus the TTL, so DynamoDB's own expiry never
    removes a row the service would still serve. AWS deletes expired items only
    eventually, so readers check the TTL themselves (the service does, from the record's
    event time); the store returns what is stored.

Reads
    :meth:`DynamoRowStore.get_many` dedupes the keys, splits them into BatchGetItem calls of
    at most 100 keys issued concurrently, projects only ``pk, sk, r``, and retries
    ``UnprocessedKeys`` (and throttling or connection errors) with exponential backoff and
    full jitter until ``retry_deadline``; whatever is still unprocessed then comes back as
    ``UNAVAILABLE``, never as None (None means "no row").

Writes
    Each op is applied atomically by optimistic concurrency: the current rows of every key
    are read in one consistent BatchGet, :func:`~dsfeatures.stores.ordering.decide` runs,
    then a PutItem carries ``attribute_not_exists(pk)`` (the row was absent) or
    ``rev = :old`` (it had that revision). When the condition fails another writer got
    there first: the row is read again (from the failure's ``ALL_OLD`` image where the
    server returns it, else a consistent GetItem) and decided again, up to 5 attempts,
    then :class:`~dsfeatures.errors.BackendUnavailable`. Ops of one key in one call run in
    order, one after the other; different keys run concurrently (at most 32 at a time).

Deletes
    :meth:`DynamoRowStore.delete` sends one DeleteItem per key with
    ``ReturnValues=ALL_OLD`` (at most 32 at a time): the old image says exactly whether
    *this* call removed a row, atomically. A consistent BatchGet followed by BatchWriteItem
    would need fewer requests, but a row created between the two would be deleted without
    being reported (and UnprocessedItems would need retrying in two places); deletes are
    rare administrative calls, and the write capacity consumed is the same either way.

GDPR erasure
    Every row of one entity lives in one partition, so :meth:`DynamoRowStore.delete_entity`
    is a Query of the base table on ``pk = :p`` (``ConsistentRead``, projecting ``pk, sk``,
    paginated) followed by BatchWriteItem deletes of 25 items per call, retrying
    ``UnprocessedItems`` with backoff and jitter. Never a Scan: the cost is bounded by the
    entity's own rows. A base-table Query (unlike a query of a global secondary index,
    which is only eventually consistent) is strongly consistent, so a row whose write was
    acknowledged before the erasure started cannot be missed. A write that races the
    erasure may survive it, like any write acknowledged after the erasure. An entity type
    that is not a valid name erases nothing: ``("a#b", "c")`` would address ``("a", "b#c")``.

Registry and audit log
    They live in the same table so that a production daemon needs no local file. Every row's
    ``pk`` contains ``#``; their partitions contain none, so no row can ever share them:
    ``pk = "__registry__"`` holds one item per group version (``sk =
    "{name}#{version:010d}"``, the RegisteredGroup JSON in ``b``) and the generation counter
    (``sk = "__gen__"``, number ``g``). Without transactions, a change is a conditional
    PutItem followed by ``ADD g 1``; :meth:`DynamoRegistryStore.load` reads the counter
    first and then queries, so a change that lands in between is seen again at the next
    refresh (a writer that dies between the put and the ADD leaves its change unnoticed by
    other processes until the next change). Erasure records live under
    ``pk = "__erasure__:{entity_type}:{entity_hash}"`` (``sk`` = 16-digit microseconds
    ``#`` a uuid, JSON in ``b``); with ``#`` instead of ``:`` that pk would also be the
    partition of an entity of type ``__erasure__``, whose erasure would delete them.

Errors and retries
    botocore's own retries are off (``max_attempts`` 0): its backoff would sleep past the
    request deadline and repeat writes blindly. Here, calls retry within
    ``retry_deadline`` with backoff and full jitter: reads and batch deletes on any
    transient failure (throttling, 5xx, connection); conditional puts and DeleteItem only
    when throttled (DynamoDB refused them unapplied), because a request that failed in
    flight may have been applied and repeating it would apply the op twice or lose the
    old image. What still fails becomes :class:`~dsfeatures.errors.BackendUnavailable`.

:class:`DynamoTable` owns the one client every store of the table shares;
:func:`create_table` prepares a table (the ``dsfeatures dynamodb create-table`` command).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import Counter

from dsfeatures.config import ConfigError, DynamoDBConfig
from dsfeatures.errors import BackendUnavailable
from dsfeatures.registry.models import NAME_PATTERN
from dsfeatures.stores.ordering import WriteOp, WriteOutcome, decide
from dsfeatures.stores.protocols import UNAVAILABLE, StoreResult
from dsfeatures.stores.record import Record, RowKey, decode_record, encode_record

if TYPE_CHECKING:
    # Stubs only (types-aioboto3[dynamodb]); nothing of them is needed at run time.
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutItemInputTypeDef,
        QueryInputTypeDef,
        TableDescriptionTypeDef,
        WriteRequestTypeDef,
    )

    _Item = dict[str, AttributeValueTypeDef]

__all__ = [
    "DynamoRowStore",
    "DynamoTable",
    "TableSetup",
    "create_table",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Keys per BatchGetItem and items per BatchWriteItem (DynamoDB's limits).
_GET_BATCH: Final = 100
_WRITE_BATCH: Final = 25
#: Conditional-put attempts per op before giving up.
_WRITE_ATTEMPTS: Final = 5
#: Keys written or deleted concurrently by one call.
_CONCURRENCY: Final = 32
#: Backoff between retries: full jitter over base * 2**attempt, capped (seconds).
_BACKOFF_BASE: Final = 0.02
_BACKOFF_CAP: Final = 0.5
#: Error codes of requests DynamoDB refused without applying them (safe to repeat).
_THROTTLED: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
#: Error codes worth repeating an idempotent request for.
_RETRYABLE: Final = _THROTTLED | {"InternalServerError", "ServiceUnavailable"}
_ENTITY_TYPE: Final = re.compile(NAME_PATTERN)


UNPROCESSED = Counter(
    "dsf_dynamodb_unprocessed",
    "Keys or items a batch call returned unprocessed (each is retried), by operation",
    ["op"],
)
UNAVAILABLE_KEYS = Counter(
    "dsf_dynamodb_unavailable_keys",
    "Keys still unprocessed at the retry deadline (their values read UNAVAILABLE)",
)

_ROW_NAMES: Final = {"#pk": "pk", "#sk": "sk", "#r": "r"}
_KEY_NAMES: Final = {"#pk": "pk", "#sk": "sk"}


# --- keys and items -------------------------------------------------------------------


def _pk(key: RowKey) -> str:
    return f"{key.entity_type}#{key.entity_id}"


def _sk(key: RowKey) -> str:
    return f"{key.group}#{key.version}"


def _key_item(pk: str, sk: str) -> _Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _row_item(op: WriteOp, rec: Record) -> _Item:
    item: _Item = {
        "pk": {"S": _pk(op.key)},
        "sk": {"S": _sk(op.key)},
        "r": {"B": encode_record(rec)},
        "rev": {"N": str(rec.revision)},
        "et": {"N": str(rec.event_time)},
    }
    if op.ttl_seconds > 0:
        # Rounded up: DynamoDB must not expire a row before the service's own check would.
        item["ttl"] = {"N": str(-(-rec.event_time // 1_000_000) + op.ttl_seconds)}
    return item


def _record_of(item: _Item | None) -> Record | None:
    if not item or "r" not in item:
        return None
    return decode_record(item["r"]["B"])


# --- errors and retries ---------------------------------------------------------------


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _transient(e: Exception) -> bool:
    """Whether repeating an idempotent call may succeed (throttling, network)."""
    if isinstance(e, ClientError):
        return _code(e) in _RETRYABLE
    return isinstance(e, BotoCoreError | OSError)


def _unavailable(what: str, e: Exception) -> BackendUnavailable:
    detail = f"{_code(e)}: {e}" if isinstance(e, ClientError) else repr(e)
    return BackendUnavailable(f"DynamoDB {what} failed: {detail}")


def _backoff(attempt: int) -> float:
    """Full jitter: uniform over [0, min(cap, base * 2**attempt)] seconds."""
    return random.uniform(0.0, min(_BACKOFF_CAP, _BACKOFF_BASE * (1 << min(attempt, 16))))


async def _retrying(call: Callable[[], Awaitable[T]], until: float | None, idempotent: bool) -> T:
    """Run ``call``, repeating it with backoff while it fails retryably before ``until``.

    Retryable is any transient failure for an ``idempotent`` call, else only throttling
    (DynamoDB refused the request, so it was not applied). Other errors are raised as is.
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        try:
            return await call()
        except (ClientError, BotoCoreError, OSError) as e:
            if idempotent:
                retry = _transient(e)
            else:
                retry = isinstance(e, ClientError) and _code(e) in _THROTTLED
            now = loop.time()
            if not retry or until is None or now >= until:
                raise
            await asyncio.sleep(min(_backoff(attempt), until - now))
            attempt += 1


async def _call(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    until: float | None = None,
    idempotent: bool = True,
) -> T:
    """Like :func:`_retrying`; a failure becomes BackendUnavailable naming ``what``."""
    try:
        return await _retrying(call, until, idempotent)
    except (ClientError, BotoCoreError, OSError) as e:
        raise _unavailable(what, e) from e


async def _all(aws: Iterable[Awaitable[None]]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise that failure."""
    try:
        async with asyncio.TaskGroup() as tg:
            for aw in aws:
                tg.create_task(_awaited(aw))
    except BaseExceptionGroup as eg:
        first = eg.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _awaited(aw: Awaitable[None]) -> None:
    await aw


# --- the table and its client ---------------------------------------------------------


class DynamoTable:
    """One DynamoDB table and the one client that every store of it shares.

    Args:
        config: the ``dynamodb`` section of the configuration (``table`` must be set).

    Raises:
        ConfigError: ``config.table`` is empty.
    """

    def __init__(self, config: DynamoDBConfig) -> None:
        if not config.table:
            raise ConfigError("dynamodb.table: a table name is needed")
        self.config = config
        self.name = config.table
        self._stack: AsyncExitStack | None = None
        self._client: DynamoDBClient | None = None

    @property
    def client(self) -> DynamoDBClient:
        """The open client.

        Raises:
            BackendUnavailable: :meth:`open` has not been called (or :meth:`close` has).
        """
        if self._client is None:
            raise BackendUnavailable("DynamoDB store is not open")
        return self._client

    async def open(self, *, check: bool = True) -> None:
        """Create the session and the client; with ``check``, make sure the table exists.

        Raises:
            ConfigError: the table does not exist.
            BackendUnavailable: DynamoDB did not answer.
        """
        if self._client is not None:
            return
        cfg = self.config
        key_id: str | None = None  # None: boto's default chain (environment, profile, role)
        secret: str | None = None
        if cfg.access_key_id and cfg.secret_access_key:
            key_id, secret = cfg.access_key_id, cfg.secret_access_key
        elif cfg.endpoint:
            # Local DynamoDB-API servers check no signature, but botocore needs something
            # to sign with; a placeholder keeps any real credentials from being looked up.
            key_id, secret = "dsf", "dsf"
        session = aioboto3.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=cfg.region
        )
        boto_config = AioConfig(
            max_pool_connections=cfg.pool_size,
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            # Retries happen here, inside the caller's deadline and only where repeating
            # a call is safe; botocore's would sleep past the deadline and repeat writes.
            retries={"max_attempts": 0, "mode": "standard"},
            # Client-side validation of every request cost about as much CPU as parsing
            # the response (a 100-key BatchGet: ~2 ms of ~4 ms); requests are built here
            # and DynamoDB validates them anyway.
            parameter_validation=False,
        )
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=cfg.endpoint or None, config=boto_config)
            )
            self._stack, self._client = stack, client
            if check:
                await self.describe()
        except BaseException:
            self._stack = self._client = None
            await stack.aclose()
            raise

    async def close(self) -> None:
        """Close the client and its connections."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def describe(self) -> TableDescriptionTypeDef:
        """The table's description (DescribeTable).

        Raises:
            ConfigError: the table does not exist.
            BackendUnavailable: DynamoDB did not answer.
        """
        try:
            resp = await self.client.describe_table(TableName=self.name)
        except ClientError as e:
            if _code(e) == "ResourceNotFoundException":
                where = self.config.endpoint or f"AWS {self.config.region}"
                raise ConfigError(
                    f"dynamodb.table: table {self.name!r} does not exist at {where}; "
                    "create it with `dsfeatures dynamodb create-table`"
                ) from None
            raise _unavailable("DescribeTable", e) from e
        except BotoCoreError as e:
            raise _unavailable("DescribeTable", e) from e
        return resp["Table"]


class TableSetup(NamedTuple):
    """What :func:`create_table` did: whether it created the table, and the TTL state."""

    created: bool
    ttl: str


async def create_table(
    client: DynamoDBClient, table: str, *, wait_seconds: float = 120.0
) -> TableSetup:
    """Create the table if needed (idempotent), wait until it is ACTIVE, enable TTL on ``ttl``.

    On-demand capacity (PAY_PER_REQUEST), keys ``pk`` and ``sk`` (strings). Servers
    without the TimeToLive API (dynalite) are tolerated: ``ttl`` is then ``unsupported``.

    Args:
        client: an open DynamoDB client.
        table: the table name.
        wait_seconds: how long to wait for the table to become ACTIVE.

    Returns:
        Whether the table was created, and the TTL state (``enabled``, ``enabling``,
        ``unsupported``, or ``on other attribute NAME``).

    Raises:
        ConfigError: the table exists with another key schema.
        BackendUnavailable: a call failed or the table did not become ACTIVE in time.
    """
    created = True
    try:
        await client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as e:
        if _code(e) != "ResourceInUseException":
            raise _unavailable("CreateTable", e) from e
        created = False
    except BotoCoreError as e:
        raise _unavailable("CreateTable", e) from e
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    pause = 0.05
    while True:
        try:
            desc = (await client.describe_table(TableName=table))["Table"]
        except (ClientError, BotoCoreError) as e:
            # Right after CreateTable some servers briefly answer ResourceNotFound.
            if not (isinstance(e, ClientError) and _code(e) == "ResourceNotFoundException"):
                raise _unavailable("DescribeTable", e) from e
        else:
            schema = {k["AttributeName"]: k["KeyType"] for k in desc.get("KeySchema", [])}
            if schema != {"pk": "HASH", "sk": "RANGE"}:
                raise ConfigError(
                    f"dynamodb.table: table {table!r} exists with key schema {schema}, "
                    "not pk (HASH) and sk (RANGE)"
                )
            if desc.get("TableStatus") == "ACTIVE":
                break
        if loop.time() > deadline:
            raise BackendUnavailable(f"DynamoDB table {table!r} not ACTIVE after {wait_seconds}s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    return TableSetup(created, await _enable_ttl(client, table))


async def _enable_ttl(client: DynamoDBClient, table: str) -> str:
    try:
        desc = (await client.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
        status = desc.get("TimeToLiveStatus", "DISABLED")
        if status in ("ENABLED", "ENABLING"):
            name = desc.get("AttributeName", "")
            return status.lower() if name == "ttl" else f"on other attribute {name}"
        await client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
    except ClientError as e:
        if _code(e) in ("UnknownOperationException", "UnrecognizedClientException"):
            log.info("DynamoDB server has no TimeToLive API; rows expire on read only")
            return "unsupported"
        raise _unavailable("UpdateTimeToLive", e) from e
    except BotoCoreError as e:
        raise _unavailable("UpdateTimeToLive", e) from e
    return "enabled"


# --- rows -----------------------------------------------------------------------------


class DynamoRowStore:
    """Rows as items of a :class:`DynamoTable` (a RowStore; design in the module docstring).

    Args:
        table: the opened table (shared with the registry and audit stores).
        retry_deadline: seconds a batch call keeps retrying unprocessed keys or items;
            default ``table.config.retry_deadline``.
    """

    def __init__(self, table: DynamoTable, *, retry_deadline: float | None = None) -> None:
        self._table = table
        self._name = table.name
        self._deadline = table.config.retry_deadline if retry_deadline is None else retry_deadline

    async def open(self) -> None:
        """Nothing to do: the table owns the client."""

    async def close(self) -> None:
        """Nothing to do: the table owns the client."""

    async def ping(self) -> None:
        """DescribeTable; raise if DynamoDB does not answer or the table is missing."""
        await self._table.describe()

    # --- reads ------------------------------------------------------------------------

    async def get_many(
        self, keys: Sequence[RowKey], *, consistent: bool = False
    ) -> list[StoreResult]:
        """Records for ``keys`` in order: a Record, None (no row) or UNAVAILABLE.

        Raises:
            BackendUnavailable: DynamoDB refused a request (not throttling).
        """
        if not keys:
            return []
        uniq = list(dict.fromkeys(keys))
        found: dict[RowKey, StoreResult] = {}
        deadline = asyncio.get_running_loop().time() + self._deadline
        if len(uniq) <= _GET_BATCH:
            await self._get_batch(uniq, consistent, deadline, found)
        else:
            await _all(
                self._get_batch(uniq[i : i + _GET_BATCH], consistent, deadline, found)
                for i in range(0, len(uniq), _GET_BATCH)
            )
        return [found.get(k) for k in keys]

    async def _get_batch(
        self,
        keys: list[RowKey],
        consistent: bool,
        deadline: float,
        found: dict[RowKey, StoreResult],
    ) -> None:
        """One BatchGetItem of at most 100 keys, retried until done or ``deadline``."""
        client = self._table.client
        loop = asyncio.get_running_loop()
        by_addr = {(_pk(k), _sk(k)): k for k in keys}
        pending: Sequence[_Item] = [_key_item(pk, sk) for pk, sk in by_addr]
        attempt = 0
        while True:
            try:
                resp = await client.batch_get_item(
                    RequestItems={
                        self._name: {
                            "Keys": pending,
                            "ProjectionExpression": "#pk, #sk, #r",
                            "ExpressionAttributeNames": _ROW_NAMES,
                            "ConsistentRead": consistent,
                        }
                    }
                )
            except (ClientError, BotoCoreError, OSError) as e:
                if not _transient(e):
                    raise _unavailable("BatchGetItem", e) from e
                log.debug("BatchGetItem retry after %r", e)
            else:
                for item in resp.get("Responses", {}).get(self._name, ()):
                    found[by_addr[(item["pk"]["S"], item["sk"]["S"])]] = decode_record(
                        item["r"]["B"]
                    )
                left = resp.get("UnprocessedKeys")
                pending = left[self._name]["Keys"] if left and self._name in left else []
                if not pending:
                    return
                UNPROCESSED.labels("BatchGetItem").inc(len(pending))
            now = loop.time()
            if now >= deadline:
                break
            await asyncio.sleep(min(_backoff(attempt), deadline - now))
            attempt += 1
        log.warning("DynamoDB: %d keys still unprocessed at the deadline", len(pending))
        UNAVAILABLE_KEYS.inc(len(pending))
        for k in pending:
            found[by_addr[(k["pk"]["S"], k["sk"]["S"])]] = UNAVAILABLE

    async def _get_one(self, key: RowKey, deadline: float) -> Record | None:
        """A consistent GetItem of one row."""
        client = self._table.client
        resp = await _call(
            "GetItem",
            lambda: client.get_item(
                TableName=self._name,
                Key=_key_item(_pk(key), _sk(key)),
                ProjectionExpression="#pk, #sk, #r",
                ExpressionAttributeNames=_ROW_NAMES,
                ConsistentRead=True,
            ),
            until=deadline,
        )
        return _record_of(resp.get("Item"))

    # --- writes -----------------------------------------------------------------------

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        """Apply each op atomically with :func:`decide` and a conditional put.

        Returns:
            One outcome per op, in op order.

        Raises:
            BackendUnavailable: DynamoDB failed, or a row stayed contended for 5
                attempts; earlier ops (and other keys) may have been applied.
        """
        if not ops:
            return []
        by_key: dict[RowKey, list[int]] = {}
        for i, op in enumerate(ops):
            by_key.setdefault(op.key, []).append(i)
        keys = list(by_key)
        deadline = asyncio.get_running_loop().time() + self._deadline
        current = dict(zip(keys, await self.get_many(keys, consistent=True), strict=True))
        outcomes: list[WriteOutcome | None] = [None] * len(ops)
        sem = asyncio.Semaphore(_CONCURRENCY)

        async def apply_key(key: RowKey, idx: list[int]) -> None:
            async with sem:
                stored = current[key]
                existing = (
                    stored
                    if stored is None or isinstance(stored, Record)
                    else await self._get_one(key, deadline)  # UNAVAILABLE: prefetch timed out
                )
                for i in idx:  # ops of one key in call order, each seeing the previous
                    outcomes[i], existing = await self._apply(ops[i], existing, deadline)

        await _all(apply_key(k, idx) for k, idx in by_key.items())
        return [o for o in outcomes if o is not None]

    async def _apply(
        self, op: WriteOp, existing: Record | None, deadline: float
    ) -> tuple[WriteOutcome, Record | None]:
        """Decide and put one op; re-read and decide again when another writer won."""
        client = self._table.client
        for _ in range(_WRITE_ATTEMPTS):
            out = decide(existing, op)
            if out.record is None:
                return out, existing
            put: PutItemInputTypeDef = {
                "TableName": self._name,
                "Item": _row_item(op, out.record),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if existing is None:
                put["ConditionExpression"] = "attribute_not_exists(#pk)"
                put["ExpressionAttributeNames"] = {"#pk": "pk"}
            else:
                put["ConditionExpression"] = "#rev = :rev"
                put["ExpressionAttributeNames"] = {"#rev": "rev"}
                put["ExpressionAttributeValues"] = {":rev": {"N": str(existing.revision)}}
            try:
                # Repeated only when throttled: a put that failed in flight may have been
                # applied, and repeating it would apply the op twice. (The lambda is
                # awaited within this iteration, so it sees this iteration's ``put``.)
                await _retrying(
                    lambda: client.put_item(**put),  # noqa: B023
                    deadline,
                    idempotent=False,
                )
            except ClientError as e:
                if _code(e) != "ConditionalCheckFailedException":
                    raise _unavailable("PutItem", e) from e
                # The failure carries the current item where the server supports it
                # (AWS, moto); dynalite ignores the option: read it.
                item: _Item | None = e.response.get("Item")  # type: ignore[assignment]
                existing = _record_of(item) if item else await self._get_one(op.key, deadline)
                continue
            except (BotoCoreError, OSError) as e:
                raise _unavailable("PutItem", e) from e
            return out, out.record
        raise BackendUnavailable(
            f"DynamoDB: row {op.key.group}@{op.key.version} of {op.key.entity_type} "
            f"changed by other writers {_WRITE_ATTEMPTS} times in a row; retry"
        )

    # --- deletes ----------------------------------------------------------------------

    async def delete(self, keys: Sequence[RowKey]) -> list[RowKey]:
        """Delete rows; return the keys that existed (DeleteItem with ALL_OLD per key).

        Raises:
            BackendUnavailable: DynamoDB failed; some rows may have been deleted.
        """
        uniq = list(dict.fromkeys(keys))
        existed = [False] * len(uniq)
        sem = asyncio.Semaphore(_CONCURRENCY)
        client = self._table.client
        deadline = asyncio.get_running_loop().time() + self._deadline

        async def delete_one(i: int, key: RowKey) -> None:
            async with sem:
                resp = await _call(
                    "DeleteItem",
                    lambda: client.delete_item(
                        TableName=self._name,
                        Key=_key_item(_pk(key), _sk(key)),
                        ReturnValues="ALL_OLD",
                    ),
                    until=deadline,
                    idempotent=False,  # a repeat would not see the old image
                )
                existed[i] = bool(resp.get("Attributes"))

        await _all(delete_one(i, k) for i, k in enumerate(uniq))
        return [k for k, e in zip(uniq, existed, strict=True) if e]

    async def delete_entity(self, entity_type: str, entity_id: str) -> list[RowKey]:
        """Delete every row of one entity: a consistent Query of its partition, then batch deletes.

        Raises:
            BackendUnavailable: DynamoDB failed or kept items unprocessed past the
                deadline; the erasure is incomplete and should be retried.
        """
        if not _ENTITY_TYPE.fullmatch(entity_type):
            # No row has such a type; and "a#b" + "c" would address entity ("a", "b#c").
            return []
        pk = f"{entity_type}#{entity_id}"
        sks = [item["sk"]["S"] for item in await _query(self._table, pk, keys_only=True)]
        gone: list[RowKey] = []
        for sk in sks:
            group, _, version = sk.rpartition("#")
            if group and version.isdigit():
                gone.append(RowKey(entity_type, entity_id, group, int(version)))
        deadline = asyncio.get_running_loop().time() + self._deadline
        sem = asyncio.Semaphore(_CONCURRENCY)

        async def delete_batch(batch: list[str]) -> None:
            async with sem:
                await _batch_delete(self._table, [_key_item(pk, sk) for sk in batch], deadline)

        await _all(
            delete_batch(sks[i : i + _WRITE_BATCH]) for i in range(0, len(sks), _WRITE_BATCH)
        )
        return gone


async def _query(table: DynamoTable, pk: str, *, keys_only: bool = False) -> list[_Item]:
    """Every item of partition ``pk`` in sort-key order (consistent, paginated; never a Scan)."""
    q: QueryInputTypeDef = {
        "TableName": table.name,
        "KeyConditionExpression": "#pk = :p",
        "ExpressionAttributeNames": _KEY_NAMES if keys_only else {"#pk": "pk"},
        "ExpressionAttributeValues": {":p": {"S": pk}},
        "ConsistentRead": True,
    }
    if keys_only:
        q["ProjectionExpression"] = "#pk, #sk"
    items: list[_Item] = []
    deadline = asyncio.get_running_loop().time() + table.config.retry_deadline
    while True:
        resp = await _call("Query", lambda: table.client.query(**q), until=deadline)
        items.extend(resp.get("Items", ()))
        last = resp.get("LastEvaluatedKey")
        if not last:
            return items
        q["ExclusiveStartKey"] = last


async def _batch_delete(table: DynamoTable, keys: list[_Item], deadline: float) -> None:
    """One BatchWriteItem of at most 25 deletes, retrying unprocessed items until ``deadline``."""
    loop = asyncio.get_running_loop()
    pending: Sequence[WriteRequestTypeDef] = [{"DeleteRequest": {"Key": k}} for k in keys]
    attempt = 0
    while True:
        try:
            resp = await table.client.batch_write_item(RequestItems={table.name: pending})
        except (ClientError, BotoCoreError, OSError) as e:
            # Deleting twice is harmless, so a failed request is simply repeated.
            if not _transient(e):
                raise _unavailable("BatchWriteItem", e) from e
        else:
            left = resp.get("UnprocessedItems")
            pending = left.get(table.name, []) if left else []  # type: ignore[assignment]
            if not pending:
                return
            UNPROCESSED.labels("BatchWriteItem").inc(len(pending))
        now = loop.time()
        if now >= deadline:
            raise BackendUnavailable(
                f"DynamoDB: {len(pending)} deletes still unprocessed at the deadline; retry"
            )
        await asyncio.sleep(min(_backoff(attempt), deadline - now))
        attempt += 1
