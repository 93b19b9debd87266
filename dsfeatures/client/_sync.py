"""The blocking client, on one pooled ``httpx.Client``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from tenacity import Retrying

from dsfeatures.client._calls import Call, CallBuilder, RowInput
from dsfeatures.client._responses import read_response, transport_error
from dsfeatures.client._retry import backoff, retry_condition, stop_condition
from dsfeatures.client._settings import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ClientSettings,
)
from dsfeatures.registry.models import (
    FeatureGroup,
    GroupSummary,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.wire import (
    EraseResponse,
    GetResponse,
    GetRow,
    Lane,
    SearchHit,
    WriteMode,
    WriteResult,
)

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A blocking dsfeatures client; one connection pool, safe to share between threads.

    Use it as a context manager, or call :meth:`close` when done::

        with Client("http://127.0.0.1:8080") as client:
            row = client.get("rider", "r1", ["rider_stats:trips_7d"])

    Args:
        base_url: the daemon's URL (a path prefix is kept).
        timeout: seconds allowed for each phase (connect, send, read) of one attempt.
        retries: extra attempts after the first for a retryable failure.
        token: bearer token sent as ``Authorization: Bearer TOKEN``; ``None`` sends none.
        msgpack: send request bodies as msgpack and ask for msgpack answers.
        user_agent: the ``User-Agent`` header (default ``dsfeatures-python/VERSION``).
        backoff_base: seconds of the first backoff; doubles on every retry, with jitter.
        backoff_max: seconds: the cap of one backoff.
        transport: an httpx transport to use instead of the network (tests, proxies).

    Raises:
        ValueError: a setting is out of range.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        token: str | None = None,
        msgpack: bool = False,
        user_agent: str | None = None,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = ClientSettings.build(
            base_url,
            timeout=timeout,
            retries=retries,
            token=token,
            msgpack=msgpack,
            user_agent=user_agent,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._calls = CallBuilder(msgpack)
        self._wait = backoff(self._settings)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            timeout=self._settings.timeout,
            headers=self._settings.headers(),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The daemon's URL."""
        return self._settings.base_url

    def __repr__(self) -> str:
        return f"Client(base_url={self._settings.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool. The client cannot be used afterwards."""
        self._http.close()

    # --- execution -----------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        retrying = Retrying(
            stop=stop_condition(call, self._settings),
            wait=self._wait,
            retry=retry_condition(call),
            reraise=True,
        )
        # tenacity types the result loosely; the attempt's own type is the truth.
        result: T = retrying(self._attempt, call)
        return result

    def _attempt(self, call: Call[T]) -> T:
        headers = None if call.body is None else {"Content-Type": self._settings.content_type}
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, content=call.body, headers=headers
            )
        except httpx.TransportError as exc:
            raise transport_error(exc, call, self._settings.base_url) from exc
        return read_response(call, response)

    # --- reads ---------------------------------------------------------------------------

    def get(
        self,
        entity_type: str,
        entity_id: str,
        features: Sequence[str] | None = None,
        include_metadata: bool = False,
    ) -> GetRow:
        """Read features of one entity.

        Args:
            entity_type: the entity type, for example ``"rider"``.
            entity_id: the entity id.
            features: references ``group:feature`` or ``group@version:feature``; ``None``
                reads every feature of the newest active version of every group of
                ``entity_type`` (in the server's order).
            include_metadata: also return event and written-at times per value.

        Returns:
            The row: values and statuses in the order of ``features``.

        Raises:
            InvalidRequest: a bad reference or id (``UnknownFeature`` for an unknown one).
            BackendUnavailable: the daemon or a store is unreachable, after retries.
            DeadlineExceeded: no answer within the timeout, after retries.
        """
        return self._send(self._calls.get(entity_type, entity_id, features, include_metadata))

    def batch_get(
        self,
        entities: Mapping[str, Sequence[str]],
        features: Sequence[str],
        include_metadata: bool = False,
    ) -> GetResponse:
        """Read features of many entities in one request.

        Args:
            entities: entity type to ids; the lists have equal lengths and row ``i`` is
                made of the ``i``-th id of every list.
            features: references ``group:feature`` or ``group@version:feature``.
            include_metadata: also return event and written-at times per value.

        Returns:
            The resolved references and one row per index, in request order; a missing
            value is a per-value status (``NOT_FOUND``, ``DEFAULTED``...), not an error.

        Raises:
            InvalidRequest: a bad reference, id or unequal lists.
            PayloadTooLarge: the request is larger than the server accepts.
            BackendUnavailable: the daemon or a store is unreachable, after retries.
            DeadlineExceeded: no answer within the timeout, after retries.
        """
        return self._send(self._calls.batch_get(entities, features, include_metadata))

    def search(
        self,
        group: str,
        vector: Iterable[float],
        k: int = 10,
        feature: str = "",
        filter: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Find the ``k`` nearest neighbours of ``vector`` in an embedding group.

        Args:
            group: the group, optionally with a version (``"rider_emb@2"``).
            vector: the query vector (any iterable of numbers, a numpy array included).
            k: how many hits at most (1 to 1000).
            feature: the vector feature; may be empty when the group has one.
            filter: keep entities whose scalar feature equals a value, or is in a list.
            min_score: drop hits scoring below this.

        Returns:
            Hits, best first.

        Raises:
            InvalidRequest: unknown group, wrong dimension, or a bad filter.
            BackendUnavailable: the daemon or the vector store is unreachable, after retries.
            DeadlineExceeded: no answer within the timeout, after retries.
        """
        return self._send(self._calls.search(group, vector, k, feature, filter, min_score))

    # --- writes --------------------------------------------------------------------------

    def write(
        self,
        rows: Iterable[RowInput],
        mode: WriteMode = "upsert",
        lane: Lane = "sdk",
        writer: str = "",
    ) -> list[WriteResult]:
        """Write rows; validated all-or-nothing by the server, applied row by row.

        A plain ``upsert`` is retried after a failure only when every row has an
        ``event_time`` or an ``if_revision`` (a replay is then harmless); ``create``,
        ``update`` and conditional writes are always retried.

        Args:
            rows: :class:`WriteRow` instances or dicts with the same fields.
            mode: ``upsert`` (replace), ``create`` (only if absent) or ``update`` (merge
                into an existing row).
            lane: the lane recorded in the row metadata.
            writer: who wrote, recorded in the row metadata.

        Returns:
            One result per row, in order: ``WRITTEN``, ``STALE`` or ``CONFLICT``. No
            rows gives ``[]`` without a request.

        Raises:
            InvalidRequest: a row is malformed (the message names the row and field;
                dict rows are checked before sending), or the server refused a row.
            PayloadTooLarge: the request is larger than the server accepts.
            BackendUnavailable: the daemon or a store is unreachable.
            DeadlineExceeded: no answer within the timeout; the write may have applied.
        """
        call = self._calls.write(rows, mode, lane, writer)
        return [] if call is None else self._send(call)

    def create(
        self, rows: Iterable[RowInput], lane: Lane = "sdk", writer: str = ""
    ) -> list[WriteResult]:
        """Write rows that do not exist yet (``CONFLICT`` for those that do).

        Same arguments, results and errors as :meth:`write` with ``mode="create"``.
        """
        return self.write(rows, "create", lane, writer)

    def update(
        self, rows: Iterable[RowInput], lane: Lane = "sdk", writer: str = ""
    ) -> list[WriteResult]:
        """Merge values into existing rows (``CONFLICT`` for absent ones).

        Same arguments, results and errors as :meth:`write` with ``mode="update"``.
        """
        return self.write(rows, "update", lane, writer)

    def delete(self, entity_type: str, entity_ids: Sequence[str], groups: Sequence[str]) -> int:
        """Delete the rows of some groups for some entities.

        Args:
            entity_type: the entity type of the ids.
            entity_ids: the entities.
            groups: group names (every version) or ``name@version`` (one version).

        Returns:
            How many stored rows were deleted.

        Raises:
            InvalidRequest: an unknown group or a bad id.
            BackendUnavailable: the daemon or a store is unreachable, after retries.
            DeadlineExceeded: no answer within the timeout, after retries.
        """
        return self._send(self._calls.delete(entity_type, entity_ids, groups))

    def delete_entity(self, entity_type: str, entity_id: str) -> EraseResponse:
        """Erase everything stored for one entity, in every group, version and store (GDPR).

        Args:
            entity_type: the entity type.
            entity_id: the entity id.

        Returns:
            The entity and how many rows were erased.

        Raises:
            InvalidRequest: a bad entity type or id.
            BackendUnavailable: a store is unreachable, after retries; retry the erasure.
            DeadlineExceeded: no answer within the timeout, after retries.
        """
        return self._send(self._calls.delete_entity(entity_type, entity_id))

    # --- registry ------------------------------------------------------------------------

    def register_group(self, group: FeatureGroup | Mapping[str, Any]) -> RegisterResponse:
        """Register one version of a feature group (idempotent).

        Args:
            group: the definition, a :class:`FeatureGroup` or a dict with its fields
                (checked before sending).

        Returns:
            ``created``, ``unchanged`` or ``updated`` (descriptive fields only), the
            stored group and names of similar groups.

        Raises:
            InvalidRequest: the definition is malformed (the message names the field).
            Conflict: this name and version already hold a different behaviour; bump
                the version.
            BackendUnavailable: the daemon is unreachable, after retries.
        """
        return self._send(self._calls.register_group(group))

    def get_group(self, name: str) -> GroupVersions:
        """Every version of one group, oldest first.

        Raises:
            NotFound: no group has this name.
        """
        return self._send(self._calls.get_group(name))

    def get_group_version(self, name: str, version: int) -> RegisteredGroup:
        """One version of a group, retired or not.

        Raises:
            NotFound: no such group or version.
        """
        return self._send(self._calls.get_group_version(name, version))

    def list_groups(
        self,
        q: str | None = None,
        entity_type: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
    ) -> list[GroupSummary]:
        """List groups, optionally filtered.

        Args:
            q: free text matched against names, descriptions and features.
            entity_type: only groups of this entity type.
            owner: only groups of this owning team.
            tag: only groups with this tag.

        Returns:
            One summary per group (its newest version's descriptive fields).

        Raises:
            BackendUnavailable: the daemon is unreachable, after retries.
        """
        return self._send(self._calls.list_groups(q, entity_type, owner, tag))

    def retire_group_version(self, name: str, version: int) -> RegisteredGroup:
        """Retire a group version: it stops being served and written (idempotent).

        Returns:
            The retired group version.

        Raises:
            NotFound: no such group or version.
        """
        return self._send(self._calls.retire_group_version(name, version))

    # --- probes --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: the daemon process is up. Not retried.

        Returns:
            The JSON body.

        Raises:
            BackendUnavailable: the daemon is unreachable.
        """
        return self._send(self._calls.probe("/healthz"))

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: the daemon and its backends are ready. Not retried.

        Returns:
            The JSON body.

        Raises:
            BackendUnavailable: not ready (the message carries the body) or unreachable.
        """
        return self._send(self._calls.probe("/readyz"))
