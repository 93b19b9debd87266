"""Registry operations: register (versioning rule), retire, list; keeping the catalog fresh."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal, Protocol

from dsfeatures.errors import Conflict, InvalidRequest, NotFound
from dsfeatures.registry.catalog import Catalog, CompiledGroup
from dsfeatures.registry.models import (
    FeatureGroup,
    GroupSummary,
    GroupVersions,
    RegisteredGroup,
    RegisterResponse,
)
from dsfeatures.registry.rules import behaviour_changes, fingerprint, validate_definition
from dsfeatures.registry.similarity import similar_groups
from dsfeatures.service.clock import rfc3339
from dsfeatures.stores.protocols import RegistryStore, VectorStore

__all__ = ["ChangeSignal", "RegistryService"]

log = logging.getLogger(__name__)


class ChangeSignal(Protocol):
    """A counter shared by the worker processes of one daemon: bumped on every
    registry change, read before each request, so a change made through one
    worker is seen by the next request on any other (other daemons poll)."""

    def current(self) -> int:
        """The counter's value."""

    def bump(self) -> None:
        """Announce a change."""


class RegistryService:
    """Owns the catalog snapshot of this process and every registry change.

    Args:
        store: durable registry storage (shared by every worker process).
        vectors: told about new embedding groups so it can prepare storage.
    """

    def __init__(
        self, store: RegistryStore, vectors: VectorStore, signal: ChangeSignal | None = None
    ) -> None:
        self._store = store
        self._vectors = vectors
        self._signal = signal
        self._seen = signal.current() if signal is not None else 0
        self.catalog = Catalog(())
        self._lock = asyncio.Lock()

    async def sync(self) -> None:
        """Reload now if another worker of this daemon announced a change (cheap otherwise)."""
        if self._signal is not None and self._signal.current() != self._seen:
            await self.refresh()

    def _announce(self) -> None:
        if self._signal is not None:
            self._signal.bump()

    async def load(self) -> None:
        """Read the whole registry and swap in a new catalog."""
        groups, gen = await self._store.load()
        catalog = Catalog(groups, gen)
        for cg in catalog.all():
            if cg.is_embedding:
                await self._vectors.ensure_group(cg)
        self.catalog = catalog

    async def _reload_after(self, stored: RegisteredGroup | None) -> None:
        """Bring the catalog up to date after this process stored ``stored`` (or nothing).

        When the store's generation says that ours was the only change since the
        current snapshot, the snapshot is patched (one group compiled) instead of
        reloaded, so registering thousands of groups one by one stays linear.
        """
        gen = await self._store.generation()
        expected = self.catalog.generation + (0 if stored is None else 1)
        if gen != expected:
            await self.load()
            return
        if stored is None:
            return
        catalog = self.catalog.with_group(stored, gen)
        cg = catalog.find(stored.definition.name, stored.definition.version)
        if cg is not None and cg.is_embedding:
            await self._vectors.ensure_group(cg)
        self.catalog = catalog

    async def refresh(self) -> bool:
        """Reload if another process changed the registry; return whether it did."""
        if self._signal is not None:
            self._seen = self._signal.current()
        if await self._store.generation() == self.catalog.generation:
            return False
        async with self._lock:
            await self.load()
        return True

    async def register(self, group: FeatureGroup) -> tuple[RegisterResponse, bool]:
        """Register one group version.

        Returns:
            The response and whether the version was newly created.

        Raises:
            InvalidRequest: the definition is invalid.
            Conflict: the name and version hold a different behaviour (bump the
                version), or the join key clashes with another group's.
        """
        validate_definition(group)
        await self.refresh()
        self._check_join_key(group)
        fp = fingerprint(group)
        now = rfc3339()
        new = RegisteredGroup(definition=group, fingerprint=fp, created_at=now, updated_at=now)
        async with self._lock:
            existing = await self._store.insert(new)
            status: Literal["created", "unchanged", "updated"]
            if existing is None:
                status = "created"
                stored = new
            elif existing.fingerprint != fp:
                changed = behaviour_changes(existing.definition, group)
                raise Conflict(
                    f"group {group.name!r} version {group.version} is already registered with a "
                    f"different definition (changed: {', '.join(changed) or 'definition'}); "
                    "register it under a new version",
                    code="VERSION_CONFLICT",
                )
            elif existing.definition == group:
                status, stored = "unchanged", existing
            else:
                stored = RegisteredGroup(
                    definition=group,
                    fingerprint=fp,
                    created_at=existing.created_at,
                    updated_at=now,
                    retired=existing.retired,
                    retired_at=existing.retired_at,
                )
                await self._store.replace(stored)
                status = "updated"
            await self._reload_after(None if status == "unchanged" else stored)
            if status != "unchanged":
                self._announce()
        return RegisterResponse(status=status, group=stored, similar=self._similar(group)), (
            status == "created"
        )

    def _check_join_key(self, group: FeatureGroup) -> None:
        key = group.join_key or group.entity_type
        for cg in self.catalog.for_entity_type(group.entity_type):
            if cg.join_key != key and cg.name != group.name:
                raise Conflict(
                    f"join_key: entity type {group.entity_type!r} uses join key {cg.join_key!r} "
                    f"(group {cg.label}), not {key!r}",
                    code="JOIN_KEY_CONFLICT",
                )
        other = self.catalog.entity_type_for_join_key(key)
        if other is not None and other != group.entity_type:
            raise Conflict(
                f"join_key: {key!r} already names entity type {other!r}", code="JOIN_KEY_CONFLICT"
            )

    def _similar(self, group: FeatureGroup) -> list[str]:
        """Names of other groups that look like duplicates of ``group`` (best first)."""
        return [s.name for s in similar_groups(self.catalog, group)]

    async def retire(self, name: str, version: int) -> RegisteredGroup:
        """Retire one version: it stops being readable or writable.

        Raises:
            NotFound: no such group version.
        """
        await self.refresh()
        async with self._lock:
            cg = self.catalog.find(name, version)
            if cg is None:
                raise NotFound(f"group {name!r} has no version {version}")
            rg = cg.registered
            if not rg.retired:
                now = rfc3339()
                rg = RegisteredGroup(
                    definition=rg.definition,
                    fingerprint=rg.fingerprint,
                    created_at=rg.created_at,
                    updated_at=now,
                    retired=True,
                    retired_at=now,
                )
                await self._store.replace(rg)
                await self._reload_after(rg)
                self._announce()
            return rg

    def versions(self, name: str) -> GroupVersions:
        """Every version of one group.

        Raises:
            NotFound: unknown group.
        """
        versions = self.catalog.versions(name)
        if not versions:
            raise NotFound(f"unknown feature group {name!r}")
        latest = self.catalog.latest_active(name)
        return GroupVersions(
            name=name,
            latest_active=latest.version if latest else None,
            versions=[v.registered for v in versions],
        )

    def version(self, name: str, version: int) -> RegisteredGroup:
        """One version, retired or not.

        Raises:
            NotFound: unknown group or version.
        """
        cg = self.catalog.find(name, version)
        if cg is None:
            raise NotFound(f"group {name!r} has no version {version}")
        return cg.registered

    def summaries(
        self,
        q: str | None = None,
        entity_type: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
    ) -> list[GroupSummary]:
        """Groups matching every given filter (``q`` searches names and descriptions)."""
        if q is not None and len(q) > 200:
            raise InvalidRequest("q: at most 200 characters")
        needle = (q or "").lower()
        out = []
        for name in self.catalog.names():
            versions = self.catalog.versions(name)
            newest: CompiledGroup = versions[-1]
            d = newest.definition
            latest = self.catalog.latest_active(name)
            if entity_type and d.entity_type != entity_type:
                continue
            if owner and d.owner.team != owner:
                continue
            if tag and tag not in d.tags:
                continue
            features = [f.name for f in d.features]
            if needle:
                hay = " ".join(
                    [name, d.description, d.owner.team, d.entity_type, *d.tags, *features]
                    + [f.description for f in d.features]
                ).lower()
                if needle not in hay:
                    continue
            out.append(
                GroupSummary(
                    name=name,
                    entity_type=d.entity_type,
                    kind=d.kind,
                    versions=[v.version for v in versions],
                    latest_active=latest.version if latest else None,
                    owner=d.owner,
                    tier=d.tier,
                    description=d.description,
                    tags=list(d.tags),
                    features=features,
                )
            )
        return out

    async def refresh_forever(self, interval: float) -> None:
        """Poll for registry changes made by other processes."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # keep serving the last good catalog
                log.exception("registry refresh failed")
