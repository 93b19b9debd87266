"""The feature catalog behind ``/ui``: search, a group's page, and how to read it.

Search runs over an index of the in-memory catalog snapshot, built once per
snapshot (a registry change swaps in a new catalog, and the next search builds a
new index): per group, the lower-case text of its name, features, tags, owner,
entity type, lineage and descriptions. A query is words, all of which must match;
``owner:``, ``tag:``, ``entity:`` and ``feature:`` words match one field exactly
(``feature:`` by substring). Hits are ranked: the group name equal to a word, then
starting with it, containing it, a feature named by it, then anywhere. Searching
2,000 groups takes about a millisecond.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

import orjson
from msgspec import Struct, field

from dsfeatures.errors import InvalidRequest, NotFound
from dsfeatures.registry.catalog import Catalog, CompiledGroup
from dsfeatures.registry.models import Carryover, Feature, GroupKind, Owner, Rollup
from dsfeatures.registry.similarity import Similarity, similar_groups
from dsfeatures.service.clock import rfc3339
from dsfeatures.service.freshness import WINDOWS, FreshnessRecorder, GroupFreshness

__all__ = [
    "CatalogGroup",
    "CatalogHit",
    "CatalogSearch",
    "Discovery",
    "Facet",
    "LineageView",
    "LinkedGroup",
    "Snippets",
    "VersionInfo",
]

#: Most hits per page, and most features named in a snippet.
MAX_LIMIT: Final = 500
_SNIPPET_FEATURES: Final = 20
_FIELDS: Final = {
    "owner": "owner",
    "team": "owner",
    "tag": "tag",
    "entity": "entity",
    "entity_type": "entity",
    "feature": "feature",
    "name": "name",
}
#: An entity id placeholder: the snippets run as they are (and read no row).
ENTITY_ID: Final = "ENTITY_ID"


# --- wire types -----------------------------------------------------------------------


class CatalogHit(Struct, omit_defaults=True):
    """One group in search results (descriptive fields of its newest version).

    ``matched`` names features whose name contains a word of the query.
    ``latest_active`` is None when every version is retired.
    """

    name: str
    entity_type: str
    kind: GroupKind
    versions: list[int]
    latest_active: int | None
    owner: str
    tier: int
    features: int
    description: str = ""
    tags: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)


class Facet(Struct):
    """A value of a field (entity type, owner team, tag) and how many groups have it."""

    value: str
    count: int


class CatalogSearch(Struct):
    """``GET /v1/catalog/search``: one page of hits, their total, and facets of the catalog."""

    query: str
    total: int
    offset: int
    groups: list[CatalogHit]
    groups_in_catalog: int
    entity_types: list[Facet]
    owners: list[Facet]
    tags: list[Facet]


class VersionInfo(Struct, omit_defaults=True):
    """One version of a group; ``last_written_at`` is the latest write of any lane."""

    version: int
    created_at: str
    updated_at: str
    fingerprint: str
    features: int
    retired: bool = False
    retired_at: str | None = None
    last_written_at: str | None = None


class LinkedGroup(Struct, omit_defaults=True):
    """A group named by lineage; ``registered`` says whether this registry knows it."""

    name: str
    registered: bool
    entity_type: str = ""


class LineageView(Struct):
    """Where a group's values come from and what is computed from it."""

    sources: list[str]
    upstream: list[LinkedGroup]
    downstream: list[LinkedGroup]
    sql_fingerprint: str = ""


class Snippets(Struct):
    """Copy-paste code reading the shown version's features of one entity."""

    python: str
    go: str
    curl: str


class CatalogGroup(Struct, omit_defaults=True):
    """``GET /v1/catalog/groups/{name}``: everything the group page shows.

    ``version`` is the version shown (the one asked for, else the newest active,
    else the newest); the definition fields are that version's.
    """

    name: str
    version: int
    latest_active: int | None
    entity_type: str
    join_key: str
    kind: GroupKind
    owner: Owner
    tier: int
    ttl_seconds: int
    features: list[Feature]
    versions: list[VersionInfo]
    lineage: LineageView
    freshness: GroupFreshness
    snippets: Snippets
    similar: list[Similarity]
    retired: bool = False
    description: str = ""
    tags: list[str] = field(default_factory=list)
    carryover: Carryover | None = None
    rollup: Rollup | None = None


# --- the index ------------------------------------------------------------------------


class _Entry:
    __slots__ = (
        "entity",
        "features",
        "group",
        "hay",
        "latest",
        "name",
        "owner",
        "tags",
        "versions",
    )

    def __init__(self, versions: list[CompiledGroup], latest: CompiledGroup | None) -> None:
        newest = versions[-1]
        d = newest.definition
        self.group = newest
        self.latest = latest
        self.versions = [v.version for v in versions]
        self.name = d.name
        self.entity = d.entity_type
        self.owner = d.owner.team.lower()
        self.tags = frozenset(t.lower() for t in d.tags)
        self.features = [f.name for f in d.features]
        self.hay = " ".join(
            [
                d.name,
                d.entity_type,
                d.kind,
                d.owner.team,
                d.owner.contact,
                d.description,
                *d.tags,
                *d.lineage.sources,
                *d.lineage.upstream_groups,
                *(f"{f.name} {f.type} {f.description}" for f in d.features),
            ]
        ).lower()

    def hit(self, matched: list[str]) -> CatalogHit:
        d = self.group.definition
        return CatalogHit(
            name=self.name,
            entity_type=self.entity,
            kind=d.kind,
            versions=self.versions,
            latest_active=self.latest.version if self.latest else None,
            owner=d.owner.team,
            tier=d.tier,
            features=len(d.features),
            description=d.description,
            tags=list(d.tags),
            matched=matched,
        )


def _facets(values: Counter[str], limit: int = 200) -> list[Facet]:
    return [Facet(v, n) for v, n in sorted(values.items(), key=lambda p: (-p[1], p[0]))[:limit]]


class _Index:
    """Search structures of one catalog snapshot."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.entries: list[_Entry] = []
        self.downstream: dict[str, list[str]] = {}
        for name in catalog.names():
            e = _Entry(catalog.versions(name), catalog.latest_active(name))
            self.entries.append(e)
            for up in e.group.definition.lineage.upstream_groups:
                self.downstream.setdefault(_group_name(up), []).append(name)
        self.entity_types = _facets(Counter(e.entity for e in self.entries))
        self.owners = _facets(Counter(e.group.definition.owner.team for e in self.entries))
        self.tags = _facets(Counter(t for e in self.entries for t in e.group.definition.tags))


def _group_name(ref: str) -> str:
    """``name`` of a lineage reference ``name`` or ``name@version``."""
    return ref.partition("@")[0]


_WORDS = re.compile(r"\S+")


def _parse(q: str) -> tuple[list[str], list[tuple[str, str]]]:
    words: list[str] = []
    fields: list[tuple[str, str]] = []
    for w in _WORDS.findall(q.lower()):
        key, sep, value = w.partition(":")
        if sep and key in _FIELDS and value:
            fields.append((_FIELDS[key], value))
        else:
            words.append(w)
    return words, fields


def _score(e: _Entry, words: Sequence[str]) -> tuple[int, list[str]] | None:
    """The rank of an entry for free-text words (None: a word does not match)."""
    total = 0
    matched: list[str] = []
    for w in words:
        if w not in e.hay:
            return None
        name = e.name
        if name == w:
            total += 100
        elif name.startswith(w):
            total += 60
        elif w in name:
            total += 40
        hits = [f for f in e.features if w in f]
        if hits:
            total += 30 if w in hits else 20
            matched.extend(f for f in hits if f not in matched)
        elif w == e.entity or w == e.owner or w in e.tags:
            total += 10
        else:
            total += 2
    return total, matched[:5]


def _fields_match(e: _Entry, fields: Sequence[tuple[str, str]]) -> bool:
    for key, value in fields:
        if key == "owner" and e.owner != value:
            return False
        if key == "tag" and value not in e.tags:
            return False
        if key == "entity" and e.entity != value:
            return False
        if key == "name" and value not in e.name:
            return False
        if key == "feature" and not any(value in f for f in e.features):
            return False
    return True


class Discovery:
    """Catalog search and group pages over the registry snapshot and freshness statistics.

    Args:
        freshness: where freshness statistics are read.
    """

    def __init__(self, freshness: FreshnessRecorder) -> None:
        self._freshness = freshness
        self._index: _Index | None = None

    def _index_of(self, catalog: Catalog) -> _Index:
        index = self._index
        if index is None or index.catalog is not catalog:
            index = self._index = _Index(catalog)
        return index

    def search(
        self,
        catalog: Catalog,
        q: str = "",
        *,
        entity_type: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> CatalogSearch:
        """Groups matching every word of ``q`` and every given filter, best first.

        Raises:
            InvalidRequest: ``q`` longer than 200 characters, or a bad limit or offset.
        """
        if len(q) > 200:
            raise InvalidRequest("q: at most 200 characters")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit: between 1 and {MAX_LIMIT}, got {limit}")
        if offset < 0:
            raise InvalidRequest(f"offset: at least 0, got {offset}")
        index = self._index_of(catalog)
        words, fields = _parse(q)
        if entity_type:
            fields.append(("entity", entity_type.lower()))
        if owner:
            fields.append(("owner", owner.lower()))
        if tag:
            fields.append(("tag", tag.lower()))
        ranked: list[tuple[int, int, _Entry, list[str]]] = []
        for e in index.entries:
            if fields and not _fields_match(e, fields):
                continue
            if words:
                scored = _score(e, words)
                if scored is None:
                    continue
                score, matched = scored
            else:
                score, matched = 0, []
            for key, value in fields:
                if key == "feature":
                    matched += [f for f in e.features if value in f and f not in matched]
            retired = 1 if e.latest is None else 0
            ranked.append((-score, retired, e, matched[:5]))
        if words:
            # Groups with an active version first: they are the ones to reuse.
            ranked.sort(key=lambda r: (r[1], r[0], r[2].name))
        page = ranked[offset : offset + limit]
        return CatalogSearch(
            query=q,
            total=len(ranked),
            offset=offset,
            groups=[e.hit(m) for _, _, e, m in page],
            groups_in_catalog=len(index.entries),
            entity_types=index.entity_types,
            owners=index.owners,
            tags=index.tags,
        )

    async def group(
        self,
        catalog: Catalog,
        name: str,
        version: int | None = None,
        *,
        window_seconds: int = WINDOWS[0],
        base_url: str = "http://127.0.0.1:8080",
    ) -> CatalogGroup:
        """Everything the group page shows.

        Args:
            catalog: the registry snapshot.
            name: the group.
            version: the version to show (None: the newest active, else the newest).
            window_seconds: the write-volume chart's window (see :data:`WINDOWS`).
            base_url: the daemon's URL as the caller reached it, for the snippets.

        Raises:
            NotFound: unknown group or version.
            InvalidRequest: an unsupported window.
            BackendUnavailable: the statistics store failed.
        """
        versions = catalog.versions(name)
        if not versions:
            raise NotFound(f"unknown feature group {name!r}")
        latest = catalog.latest_active(name)
        if version is None:
            cg = latest or versions[-1]
        else:
            found = catalog.find(name, version)
            if found is None:
                raise NotFound(f"group {name!r} has no version {version}")
            cg = found
        index = self._index_of(catalog)
        lanes = await self._freshness.lanes(name)
        freshness = await self._freshness.group_freshness(
            name, cg.version, window_seconds, lanes=lanes
        )
        last_written: dict[int, int] = {}
        for s in lanes:
            last_written[s.version] = max(last_written.get(s.version, 0), s.last_written_us)
        d = cg.definition

        def linked(n: str) -> LinkedGroup:
            other = catalog.versions(n)
            return LinkedGroup(n, bool(other), other[-1].entity_type if other else "")

        return CatalogGroup(
            name=name,
            version=cg.version,
            latest_active=latest.version if latest else None,
            entity_type=d.entity_type,
            join_key=cg.join_key,
            kind=d.kind,
            owner=d.owner,
            tier=d.tier,
            ttl_seconds=d.ttl_seconds,
            features=list(d.features),
            versions=[
                VersionInfo(
                    version=v.version,
                    created_at=v.registered.created_at,
                    updated_at=v.registered.updated_at,
                    fingerprint=v.registered.fingerprint,
                    features=len(v.definition.features),
                    retired=v.retired,
                    retired_at=v.registered.retired_at,
                    last_written_at=rfc3339(last_written[v.version])
                    if last_written.get(v.version)
                    else None,
                )
                for v in versions
            ],
            lineage=LineageView(
                sources=list(d.lineage.sources),
                upstream=[linked(_group_name(u)) for u in dict.fromkeys(d.lineage.upstream_groups)],
                downstream=[linked(n) for n in index.downstream.get(name, [])],
                sql_fingerprint=d.lineage.sql_fingerprint,
            ),
            freshness=freshness,
            snippets=snippets(cg, base_url),
            similar=similar_groups(catalog, d),
            retired=cg.retired,
            description=d.description,
            tags=list(d.tags),
            carryover=d.carryover,
            rollup=d.rollup,
        )


# --- snippets -------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def snippets(cg: CompiledGroup, base_url: str) -> Snippets:
    """Python, Go and curl code reading ``cg``'s features of one entity from ``base_url``.

    References name the version (``group@version:feature``), so the code keeps
    reading the same definition after a newer version is registered.
    """
    names = list(cg.features)
    refs = [f"{cg.name}@{cg.version}:{f}" for f in names[:_SNIPPET_FEATURES]]
    more = len(names) - len(refs)
    et = cg.entity_type
    note_py = f"    # ... and {more} more features of {cg.label}\n" if more else ""
    note_go = f"\t\t// ... and {more} more features of {cg.label}\n" if more else ""
    py_refs = "".join(f"    {_json(r)},\n" for r in refs)
    go_refs = "".join(f"\t\t{_json(r)},\n" for r in refs)
    python = (
        "from dsfeatures.client import Client\n"
        "\n"
        "features = [\n"
        f"{py_refs}{note_py}"
        "]\n"
        f"with Client({_json(base_url)}) as client:\n"
        f"    row = client.get({_json(et)}, {_json(ENTITY_ID)}, features)\n"
        "for ref, value, status in zip(features, row.values, row.statuses):\n"
        "    print(ref, value, status)\n"
    )
    go = (
        "package main\n"
        "\n"
        "import (\n"
        '\t"context"\n'
        '\t"fmt"\n'
        '\t"log"\n'
        '\t"time"\n'
        "\n"
        '\tdsfeatures "github.com/dsfeatures/dsfeatures/sdk_go_compat"\n'
        ")\n"
        "\n"
        "func main() {\n"
        "\tclient, err := dsfeatures.NewClient(dsfeatures.Options{\n"
        f"\t\tURL:     {_json(base_url)},\n"
        "\t\tTimeout: 200 * time.Millisecond,\n"
        "\t})\n"
        "\tif err != nil {\n"
        "\t\tlog.Fatal(err)\n"
        "\t}\n"
        "\tdefer client.Close()\n"
        "\n"
        "\tfeatures := []string{\n"
        f"{go_refs}{note_go}"
        "\t}\n"
        "\trow, err := client.Get(context.Background(), "
        f"{_json(et)}, {_json(ENTITY_ID)}, features)\n"
        "\tif err != nil {\n"
        "\t\tlog.Fatal(err)\n"
        "\t}\n"
        "\tfor i, ref := range features {\n"
        "\t\tfmt.Println(ref, row.Values[i], row.Status(i))\n"
        "\t}\n"
        "}\n"
    )
    body = _json({"entities": {et: [ENTITY_ID]}, "features": refs})
    curl = (
        f"curl -s -X POST {base_url}/v1/features/get \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'\n"
    )
    return Snippets(python=python, go=go, curl=curl)
