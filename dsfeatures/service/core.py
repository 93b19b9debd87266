"""The service facade: one object the API layer calls, one method per operation."""

from __future__ import annotations

import asyncio
import logging

from dsfeatures.config import Config
from dsfeatures.errors import UnknownFeature
from dsfeatures.registry.catalog import parse_group_ref
from dsfeatures.registry.models import (
    FeatureGroup,
    GroupSummary,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.service.audit import AuditEvents, AuditRecorder
from dsfeatures.service.auth import Principal
from dsfeatures.service.breaker import new_breakers
from dsfeatures.service.discovery import CatalogGroup, CatalogSearch, Discovery
from dsfeatures.service.feast import feast_get
from dsfeatures.service.fetch import Fetcher
from dsfeatures.service.freshness import WINDOWS, FreshnessRecorder
from dsfeatures.service.registry import ChangeSignal, RegistryService
from dsfeatures.service.search import Searcher
from dsfeatures.service.write import Writer, entity_hash
from dsfeatures.stores.factory import Stores, open_stores
from dsfeatures.stores.memory_stats import MemoryStatsStore
from dsfeatures.stores.protocols import ErasureAudit
from dsfeatures.wire.feast import FeastRequest, FeastResponse
from dsfeatures.wire.types import (
    DeleteRequest,
    DeleteResponse,
    EraseResponse,
    GetRequest,
    GetResponse,
    SearchRequest,
    SearchResponse,
    WriteRequest,
    WriteResponse,
)

__all__ = ["Service"]

log = logging.getLogger(__name__)


class Service:
    """Everything the daemon does, independent of HTTP.

    Build it with :meth:`open`; release it with :meth:`close`.
    """

    def __init__(
        self, config: Config, stores: Stores, registry_signal: ChangeSignal | None = None
    ) -> None:
        self.config = config
        self.stores = stores
        timeout = config.server.request_timeout
        limits = config.limits
        self.registry = RegistryService(stores.registry, stores.vectors, registry_signal)
        self.breakers = new_breakers()
        self.fetcher = Fetcher(
            stores.rows,
            stores.vectors,
            stores.cache,
            timeout=timeout,
            breakers=self.breakers,
            max_entities=limits.max_entities,
            max_features=limits.max_features,
        )
        self.freshness = FreshnessRecorder(stores.stats or MemoryStatsStore())
        self.audit = AuditRecorder(stores.audit)
        self.discovery = Discovery(self.freshness)
        self.writer = Writer(
            stores.rows,
            stores.vectors,
            stores.cache,
            stores.audit,
            timeout=config.server.write_timeout,
            max_rows=limits.max_write_rows,
            max_delete_keys=limits.max_delete_keys,
            freshness=self.freshness,
            breakers=self.breakers,
        )
        self.searcher = Searcher(stores.vectors, timeout=timeout, breakers=self.breakers)

    @classmethod
    async def open(
        cls, config: Config, *, workers: int = 1, registry_signal: ChangeSignal | None = None
    ) -> Service:
        """Open the stores named by ``config`` and load the registry.

        Args:
            config: the configuration.
            workers: worker processes sharing the stores.
            registry_signal: shared change counter of this daemon's workers.
        """
        stores = await open_stores(config, workers=workers)
        try:
            svc = cls(config, stores, registry_signal)
            await svc.registry.load()
        except BaseException:
            await stores.close()
            raise
        return svc

    async def close(self) -> None:
        """Flush freshness statistics and token use, then close every store."""
        await self.freshness.close()
        await self.audit.close()
        await self.stores.close()

    # --- data plane -------------------------------------------------------------------

    async def get(self, req: GetRequest) -> GetResponse:
        """BatchGet (see :class:`~dsfeatures.service.fetch.Fetcher`)."""
        await self.registry.sync()
        try:
            return await self.fetcher.get(self.registry.catalog, req)
        except UnknownFeature:
            if not await self.registry.refresh():
                raise
            return await self.fetcher.get(self.registry.catalog, req)

    async def get_entity(
        self, entity_type: str, entity_id: str, features: list[str] | None, include_metadata: bool
    ) -> GetResponse:
        """Single get; without ``features``, every feature of the newest active versions."""
        await self.registry.sync()
        if not features:
            features = self._all_features(entity_type)
            if not features and await self.registry.refresh():
                features = self._all_features(entity_type)
            if not features:
                raise UnknownFeature(f"entity_type: no active feature group for {entity_type!r}")
        req = GetRequest(
            entities={entity_type: [entity_id]},
            features=features,
            include_metadata=include_metadata,
        )
        return await self.get(req)

    def _all_features(self, entity_type: str) -> list[str]:
        catalog = self.registry.catalog
        out: list[str] = []
        for name in catalog.names():
            cg = catalog.latest_active(name)
            if cg is not None and cg.entity_type == entity_type:
                out.extend(f"{cg.name}@{cg.version}:{f}" for f in cg.features)
        return out

    async def write(
        self, req: WriteRequest, *, writer: str = "", principal: Principal | None = None
    ) -> WriteResponse:
        """Write rows through the one write path.

        With authentication on, ``principal`` must be allowed to write every
        group of the request, and the stored writer is the token's name (with
        the request's own ``writer`` label in brackets).
        """
        await self.registry.sync()
        name = req.writer or writer or "anonymous"
        if principal is not None:
            catalog = self.registry.catalog
            principal.require_write(
                catalog.group(r.group, r.version, where=f"rows[{i}].group")
                for i, r in enumerate(req.rows)
            )
            name = f"{principal.name} ({req.writer})" if req.writer else principal.name
        try:
            return await self.writer.write(self.registry.catalog, req, name)
        except UnknownFeature:
            if not await self.registry.refresh():
                raise
            return await self.writer.write(self.registry.catalog, req, name)

    async def delete(
        self, req: DeleteRequest, *, principal: Principal | None = None
    ) -> DeleteResponse:
        """Delete rows of some groups for some entities (``principal`` must own them)."""
        await self.registry.refresh()
        if principal is not None:
            catalog = self.registry.catalog
            for ref in req.groups:
                name, version = parse_group_ref(ref, "groups")
                found = catalog.versions(name) if version is None else [catalog.find(name, version)]
                principal.require_write(g for g in found if g is not None)
        return DeleteResponse(await self.writer.delete(self.registry.catalog, req))

    async def erase(
        self, entity_type: str, entity_id: str, *, request_id: str = "", actor: str = ""
    ) -> EraseResponse:
        """GDPR erasure of one entity everywhere, recorded in the audit log.

        The audit event names the entity by its hash, never by its id. If it
        cannot be recorded the erasure answers 503: repeating it is harmless.
        """
        await self.registry.refresh()
        n = await self.writer.erase(
            self.registry.catalog, entity_type, entity_id, request_id=request_id, actor=actor
        )
        await self.audit.record(
            "entity.erase",
            f"{entity_type}:{entity_hash(entity_type, entity_id)}",
            actor=actor,
            request_id=request_id,
            detail={"deleted": n},
        )
        return EraseResponse(entity_type=entity_type, entity_id=entity_id, deleted=n)

    async def erasures(self, entity_type: str, entity_id: str) -> list[ErasureAudit]:
        """Audit records of erasures of one entity."""
        return await self.stores.audit.erasures(entity_type, entity_hash(entity_type, entity_id))

    async def search(self, req: SearchRequest) -> SearchResponse:
        """kNN search within an embedding group."""
        await self.registry.sync()
        try:
            return await self.searcher.search(self.registry.catalog, req)
        except UnknownFeature:
            if not await self.registry.refresh():
                raise
            return await self.searcher.search(self.registry.catalog, req)

    async def feast_get(self, req: FeastRequest) -> FeastResponse:
        """The Feast-compatible read."""
        await self.registry.sync()
        try:
            return await feast_get(self.registry.catalog, self.fetcher, req)
        except UnknownFeature:
            if not await self.registry.refresh():
                raise
            return await feast_get(self.registry.catalog, self.fetcher, req)

    # --- registry ---------------------------------------------------------------------

    async def register(
        self, group: FeatureGroup, *, actor: str = "", request_id: str = ""
    ) -> tuple[RegisterResponse, bool]:
        """Register a group version (the versioning rule applies); changes are audited."""
        resp, created = await self.registry.register(group)
        if resp.status != "unchanged":
            await self.audit.record_or_log(
                "registry.register",
                f"{group.name}@{group.version}",
                actor=actor,
                request_id=request_id,
                detail={
                    "status": resp.status,
                    "fingerprint": resp.group.fingerprint,
                    "entity_type": group.entity_type,
                    "owner": group.owner.team,
                },
            )
        return resp, created

    async def retire(
        self, name: str, version: int, *, actor: str = "", request_id: str = ""
    ) -> RegisteredGroup:
        """Retire a group version; audited unless it was retired already."""
        await self.registry.refresh()
        before = self.registry.catalog.find(name, version)
        rg = await self.registry.retire(name, version)
        if before is None or not before.registered.retired:
            await self.audit.record_or_log(
                "registry.retire",
                f"{name}@{version}",
                actor=actor,
                request_id=request_id,
                detail={"retired_at": rg.retired_at or ""},
            )
        return rg

    async def audit_events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> AuditEvents:
        """Audit events newest first (see :class:`~dsfeatures.service.audit.AuditRecorder`)."""
        return await self.audit.events(action=action, actor=actor, since=since, limit=limit)

    async def group_versions(self, name: str) -> GroupVersions:
        """Every version of a group."""
        await self.registry.refresh()
        return self.registry.versions(name)

    async def group_version(self, name: str, version: int) -> RegisteredGroup:
        """One version of a group."""
        await self.registry.refresh()
        return self.registry.version(name, version)

    async def list_groups(
        self,
        q: str | None = None,
        entity_type: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
    ) -> list[GroupSummary]:
        """Search the registry."""
        await self.registry.refresh()
        return self.registry.summaries(q, entity_type, owner, tag)

    # --- catalog (the /ui page) -------------------------------------------------------

    async def catalog_search(
        self,
        q: str = "",
        *,
        entity_type: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> CatalogSearch:
        """Search groups by name, description, feature, owner, tag and entity type."""
        await self.registry.refresh()
        return self.discovery.search(
            self.registry.catalog,
            q,
            entity_type=entity_type,
            owner=owner,
            tag=tag,
            limit=limit,
            offset=offset,
        )

    async def catalog_group(
        self,
        name: str,
        version: int | None = None,
        *,
        window_seconds: int = WINDOWS[0],
        base_url: str = "http://127.0.0.1:8080",
    ) -> CatalogGroup:
        """A group's page: schema, versions, lineage, freshness, duplicates, snippets."""
        await self.registry.refresh()
        return await self.discovery.group(
            self.registry.catalog,
            name,
            version,
            window_seconds=window_seconds,
            base_url=base_url,
        )

    # --- health -----------------------------------------------------------------------

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Whether the daemon can serve, and each backend's state (``ok`` or the error).

        Only the authoritative row store decides readiness: without the cache
        reads go to the store, and without the vector store only embedding
        values are UNAVAILABLE, so both only degrade the service.
        """
        out: dict[str, str] = {}
        checks = {"rows": self.stores.rows.ping(), "vectors": self.stores.vectors.ping()}
        if self.stores.cache is not None:
            checks["cache"] = self.stores.cache.ping()
        for name, aw in checks.items():
            try:
                async with asyncio.timeout(self.config.server.request_timeout):
                    await aw
                out[name] = "ok"
            except Exception as e:
                out[name] = f"error: {e!r}"
        return out["rows"] == "ok", out
