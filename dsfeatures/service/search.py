"""kNN search within one embedding group version."""

from __future__ import annotations

import asyncio
import time

from dsfeatures.errors import BackendUnavailable, DeadlineExceeded, InvalidRequest
from dsfeatures.registry.catalog import Catalog, parse_group_ref
from dsfeatures.registry.types import InvalidValue
from dsfeatures.service.breaker import Breakers, counts_as_failure, new_breakers
from dsfeatures.stores.protocols import VectorStore
from dsfeatures.wire.types import SearchHit, SearchRequest, SearchResponse

__all__ = ["Searcher"]


class Searcher:
    """Validates a search and asks the vector store.

    Args:
        vectors: the vector store.
        timeout: seconds the store may take (then 504, retryable).
    """

    def __init__(
        self, vectors: VectorStore, *, timeout: float, breakers: Breakers | None = None
    ) -> None:
        self._vectors = vectors
        self._timeout = timeout
        self._breaker = (breakers if breakers is not None else new_breakers())["vectors"]

    async def search(self, catalog: Catalog, req: SearchRequest) -> SearchResponse:
        """The ``k`` nearest entities, best first.

        Raises:
            InvalidRequest: not an embedding group, wrong feature, dimension
                mismatch, or a filter on an unknown or vector feature.
            UnknownFeature: unknown or retired group.
        """
        name, version = parse_group_ref(req.group, "group")
        cg = catalog.group(name, version, where="group")
        vec = cg.vector_feature
        if vec is None:
            raise InvalidRequest(f"group: {cg.label} is not an embedding group")
        if req.feature and req.feature != vec.name:
            raise InvalidRequest(f"feature: the vector feature of {cg.label} is {vec.name!r}")
        try:
            vector = vec.ftype.check(list(req.vector))
        except InvalidValue as e:
            raise InvalidRequest(f"vector: {e}") from None
        filters = None
        if req.filter:
            filters = {}
            for fname, want in req.filter.items():
                slot = cg.features.get(fname)
                if slot is None or slot.ftype.is_vector:
                    raise InvalidRequest(f"filter.{fname}: not a scalar feature of {cg.label}")
                wants = want if isinstance(want, list) else [want]
                try:
                    checked = [slot.ftype.check(w) for w in wants]
                except InvalidValue as e:
                    raise InvalidRequest(f"filter.{fname}: {e}") from None
                filters[fname] = checked if isinstance(want, list) else checked[0]
        breaker = self._breaker
        if not breaker.allow():
            raise BackendUnavailable("vector store is failing; retry shortly")
        t = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                hits = await self._vectors.search(cg, vector, req.k, filters, req.min_score)
        except TimeoutError:
            breaker.failure(t)
            raise DeadlineExceeded(f"vector store did not answer within {self._timeout}s") from None
        except BaseException as e:
            if counts_as_failure(e):
                breaker.failure(t)
            raise
        breaker.success()
        return SearchResponse([SearchHit(eid, score) for eid, score in hits])
