"""Duplicate hints: which registered groups look like another definition.

A group looks like a duplicate of another when both have the same SQL
fingerprint, or when they are keyed by the same entity type and at least half
of their features match by name. Names match when they are equal or when their
words (split on ``_``, lower case, plural ``s`` dropped, a few abbreviations
spelled out) overlap by at least 60 % (Jaccard), so ``trip_count_7d`` matches
``trips_7d`` while ``trips_30d`` does not. Word sets are cached per name, and
only groups of the same entity type are compared feature by feature, so a check
against thousands of groups stays within a few milliseconds.
"""

from __future__ import annotations

import functools
from typing import Final

from msgspec import Struct

from dsfeatures.registry.catalog import Catalog
from dsfeatures.registry.models import FeatureGroup

__all__ = ["Similarity", "similar_groups"]

#: Words spelled out before names are compared.
_SYNONYMS: Final = {
    "avg": "mean",
    "average": "mean",
    "cnt": "count",
    "num": "count",
    "nb": "count",
    "amt": "amount",
    "pct": "percent",
    "dist": "distance",
    "dur": "duration",
    "qty": "quantity",
}
#: Jaccard similarity of word sets from which two feature names match.
_NAME_MATCH: Final = 0.6
#: Share of features that must match (of the larger group).
_GROUP_MATCH: Final = 0.5


class Similarity(Struct, frozen=True):
    """One possible duplicate: the other group, a score in [0, 1] and why."""

    name: str
    entity_type: str
    score: float
    reason: str


@functools.lru_cache(maxsize=65_536)
def _words(name: str) -> frozenset[str]:
    out = set()
    for w in name.lower().split("_"):
        if not w:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(_SYNONYMS.get(w, w))
    return frozenset(out)


def _name_score(a: str, b: str) -> float:
    if a == b:
        return 1.0
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def _match(mine: list[str], theirs: list[str]) -> list[tuple[str, str, float]]:
    """Pairs of matching names (best pairs chosen first), each name used once."""
    pairs = []
    for a in mine:
        for b in theirs:
            s = _name_score(a, b)
            if s >= _NAME_MATCH:
                pairs.append((s, a, b))
    pairs.sort(key=lambda p: -p[0])
    used_a: set[str] = set()
    used_b: set[str] = set()
    out = []
    for s, a, b in pairs:
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            out.append((a, b, s))
    order = {name: i for i, name in enumerate(mine)}
    out.sort(key=lambda p: order[p[0]])  # listed in the order of the new group's features
    return out


def similar_groups(catalog: Catalog, group: FeatureGroup, limit: int = 10) -> list[Similarity]:
    """Groups of ``catalog`` (other than ``group`` itself) that look like duplicates of it.

    Each name is compared with its newest version.

    Args:
        catalog: the registry snapshot.
        group: the definition to compare (registered or about to be).
        limit: most results, best first.

    Returns:
        The likely duplicates, highest score first (then by name).
    """
    out: list[Similarity] = []
    fp = group.lineage.sql_fingerprint
    mine = [f.name for f in group.features]
    mine_words = frozenset().union(*(_words(n) for n in mine))
    seen: set[str] = {group.name}
    if fp:
        for cg in catalog.all():
            if cg.name in seen or cg.definition.lineage.sql_fingerprint != fp:
                continue
            seen.add(cg.name)
            out.append(Similarity(cg.name, cg.entity_type, 1.0, "identical SQL fingerprint"))
    newest: dict[str, FeatureGroup] = {}
    for cg in catalog.for_entity_type(group.entity_type):
        if cg.name in seen:
            continue
        prev = newest.get(cg.name)
        if prev is None or cg.version > prev.version:
            newest[cg.name] = cg.definition
    for name, d in newest.items():
        theirs = [f.name for f in d.features]
        if mine_words.isdisjoint(frozenset().union(*(_words(n) for n in theirs))):
            continue  # no word in common: no name can match
        pairs = _match(mine, theirs)
        share = len(pairs) / max(len(mine), len(theirs))
        if share < _GROUP_MATCH:
            continue
        shown = ", ".join(a if a == b else f"{a} ~ {b}" for a, b, _ in pairs[:5])
        more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
        reason = f"{len(pairs)} of {len(theirs)} features match ({shown}{more})"
        score = round(share * sum(s for _, _, s in pairs) / len(pairs), 3)
        out.append(Similarity(name, d.entity_type, score, reason))
    out.sort(key=lambda s: (-s.score, s.name))
    return out[:limit]
