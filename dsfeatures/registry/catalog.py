"""The in-memory catalog: an immutable snapshot of the registry that the hot path reads.

A snapshot is rebuilt whenever the registry changes and swapped in one
assignment, so a request sees one consistent registry from start to end.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dsfeatures.errors import InvalidRequest, UnknownFeature
from dsfeatures.registry.models import Feature, FeatureGroup, RegisteredGroup
from dsfeatures.registry.types import FeatureType, parse_type

__all__ = ["Catalog", "CompiledGroup", "FeatureSlot", "parse_group_ref"]


class FeatureSlot:
    """One feature of a compiled group: its definition, parsed type and stored default."""

    __slots__ = ("default", "feature", "ftype", "name")

    def __init__(self, feature: Feature) -> None:
        self.feature = feature
        self.name = feature.name
        self.ftype: FeatureType = parse_type(feature.type, feature.dimension, feature.metric)
        self.default: Any = None if feature.default is None else self.ftype.check(feature.default)


class CompiledGroup:
    """A registered group version ready for the hot path."""

    __slots__ = (
        "definition",
        "entity_type",
        "features",
        "is_embedding",
        "join_key",
        "name",
        "registered",
        "retired",
        "ttl_us",
        "vector_feature",
        "version",
    )

    def __init__(self, registered: RegisteredGroup) -> None:
        d = registered.definition
        self.registered = registered
        self.definition: FeatureGroup = d
        self.name = d.name
        self.version = d.version
        self.entity_type = d.entity_type
        self.join_key = d.join_key or d.entity_type
        self.retired = registered.retired
        self.is_embedding = d.kind == "embedding"
        self.ttl_us = d.ttl_seconds * 1_000_000
        self.features: dict[str, FeatureSlot] = {f.name: FeatureSlot(f) for f in d.features}
        vec = [s for s in self.features.values() if s.ftype.is_vector]
        self.vector_feature: FeatureSlot | None = vec[0] if vec else None

    @property
    def label(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


def parse_group_ref(ref: str, where: str = "group") -> tuple[str, int | None]:
    """Split ``name`` or ``name@3`` / ``name@v3`` / ``name@latest`` into name and version.

    Raises:
        InvalidRequest: the version part is not a positive integer (naming ``where``).
    """
    name, sep, ver = ref.partition("@")
    if not sep or ver == "latest":
        return name, None
    if ver[:1] in ("v", "V"):
        ver = ver[1:]
    if not (ver.isascii() and ver.isdigit()) or len(ver) > 9 or int(ver) < 1:
        raise InvalidRequest(f"{where}: bad version in {ref!r} (expected name@N)")
    return name, int(ver)


class Catalog:
    """An immutable registry snapshot with lookups by name, version and feature reference."""

    def __init__(self, groups: Iterable[RegisteredGroup], generation: int = 0) -> None:
        self._build((CompiledGroup(rg) for rg in groups), generation)

    def with_group(self, registered: RegisteredGroup, generation: int) -> Catalog:
        """A new snapshot: this one with ``registered`` added or replacing its version.

        Only the new version is compiled; the others are shared with this snapshot.
        """
        key = (registered.definition.name, registered.definition.version)
        compiled = [cg for k, cg in self._groups.items() if k != key]
        compiled.append(CompiledGroup(registered))
        out = Catalog.__new__(Catalog)
        out._build(compiled, generation)
        return out

    def _build(self, compiled: Iterable[CompiledGroup], generation: int) -> None:
        self.generation = generation
        self._groups: dict[tuple[str, int], CompiledGroup] = {}
        self._by_name: dict[str, list[CompiledGroup]] = {}
        for cg in compiled:
            self._groups[(cg.name, cg.version)] = cg
            self._by_name.setdefault(cg.name, []).append(cg)
        self._latest: dict[str, CompiledGroup] = {}
        for name, versions in self._by_name.items():
            versions.sort(key=lambda g: g.version)
            active = [g for g in versions if not g.retired]
            if active:
                self._latest[name] = active[-1]
        self._by_entity_type: dict[str, list[CompiledGroup]] = {}
        self._join_keys: dict[str, str] = {}
        for cg in self._groups.values():
            self._by_entity_type.setdefault(cg.entity_type, []).append(cg)
            self._join_keys.setdefault(cg.join_key, cg.entity_type)
        self._refs: dict[str, tuple[CompiledGroup, FeatureSlot]] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def all(self) -> list[CompiledGroup]:
        """Every group version, ordered by name then version."""
        return sorted(self._groups.values(), key=lambda g: (g.name, g.version))

    def names(self) -> list[str]:
        """Every group name, sorted."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[CompiledGroup]:
        """Every version of ``name``, oldest first (empty when unknown)."""
        return list(self._by_name.get(name, ()))

    def latest_active(self, name: str) -> CompiledGroup | None:
        """The newest version of ``name`` that is not retired."""
        return self._latest.get(name)

    def find(self, name: str, version: int) -> CompiledGroup | None:
        """The given version, retired or not."""
        return self._groups.get((name, version))

    def for_entity_type(self, entity_type: str) -> list[CompiledGroup]:
        """Every group version (retired included) keyed by ``entity_type``."""
        return list(self._by_entity_type.get(entity_type, ()))

    def entity_type_for_join_key(self, join_key: str) -> str | None:
        """The entity type whose groups use ``join_key`` (Feast's entity key name)."""
        return self._join_keys.get(join_key)

    def group(self, name: str, version: int | None, *, where: str = "group") -> CompiledGroup:
        """Resolve a group for reading or writing.

        Args:
            name: group name.
            version: a version, or None for the newest active one.
            where: the request field named in errors.

        Raises:
            UnknownFeature: unknown group or version, a retired version, or no active version.
        """
        if version is None:
            cg = self._latest.get(name)
            if cg is None:
                if name in self._by_name:
                    raise UnknownFeature(f"{where}: every version of group {name!r} is retired")
                raise UnknownFeature(f"{where}: unknown feature group {name!r}")
            return cg
        found = self._groups.get((name, version))
        if found is None:
            if name in self._by_name:
                raise UnknownFeature(f"{where}: group {name!r} has no version {version}")
            raise UnknownFeature(f"{where}: unknown feature group {name!r}")
        if found.retired:
            raise UnknownFeature(f"{where}: version {version} of group {name!r} is retired")
        return found

    def feature(self, ref: str, *, where: str = "features") -> tuple[CompiledGroup, FeatureSlot]:
        """Resolve ``group:feature`` or ``group@version:feature`` (memoised per snapshot).

        Raises:
            InvalidRequest: the reference is malformed.
            UnknownFeature: the group, version or feature does not exist or is retired.
        """
        hit = self._refs.get(ref)
        if hit is not None:
            return hit
        gref, sep, fname = ref.partition(":")
        if not sep or not gref or not fname:
            raise InvalidRequest(f"{where}: bad feature reference {ref!r} (expected group:feature)")
        name, version = parse_group_ref(gref, where)
        cg = self.group(name, version, where=where)
        slot = cg.features.get(fname)
        if slot is None:
            raise UnknownFeature(f"{where}: group {cg.label} has no feature {fname!r}")
        if len(self._refs) < 100_000:
            self._refs[ref] = (cg, slot)
        return cg, slot
