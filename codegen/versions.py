"""The versioning rule for feature configs: a changed SQL or schema needs a new version.

The rule and the fingerprint are the registry's own (:mod:`dsfeatures.registry.rules`):
behaviour is everything that changes what a reader gets (entity type, kind, features,
TTL, carryover, rollup, join key and the SQL fingerprint). Two references are checked:

* ``versions.lock.json`` beside the configs, committed with them: the behaviour of every
  group version ever locked (``dsfeatures-codegen lock``). A version is never redefined,
  even after its config moved on to a newer one.
* optionally the daemon's registry, which refuses a changed definition under an existing
  version (409) in any case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct, field

from codegen.errors import ConfigError
from codegen.files import write_atomic
from dsfeatures.registry.models import FeatureGroup
from dsfeatures.registry.rules import behaviour, fingerprint

__all__ = [
    "LockEntry",
    "VersionLock",
    "bump_message",
    "changed_fields",
    "read_lock",
    "write_lock",
]

# Readable names of the behavioural fields, for the "bump the version" message.
_FIELD_NAMES = {
    "sql_fingerprint": "the SQL (query.sql)",
    "features": "features",
    "entity_type": "entity_type",
    "kind": "kind",
    "ttl_seconds": "ttl_seconds",
    "carryover": "carryover",
    "rollup": "rollup",
    "join_key": "join_key",
}


class LockEntry(Struct, frozen=True, forbid_unknown_fields=True):
    """What was locked for one group version."""

    fingerprint: str
    behaviour: dict[str, Any]


class VersionLock(Struct, forbid_unknown_fields=True):
    """``versions.lock.json``: group name -> version (as a string) -> entry."""

    groups: dict[str, dict[str, LockEntry]] = field(default_factory=dict)

    def get(self, name: str, version: int) -> LockEntry | None:
        """The entry of one group version, if locked."""
        return self.groups.get(name, {}).get(str(version))

    def put(self, group: FeatureGroup) -> None:
        """Record a group version's behaviour."""
        self.groups.setdefault(group.name, {})[str(group.version)] = LockEntry(
            fingerprint(group), _plain(behaviour(group))
        )


def _plain(value: Any) -> Any:
    # JSON round trip: what is compared is exactly what the file holds.
    return msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(value)))


def changed_fields(entry: LockEntry, group: FeatureGroup) -> list[str]:
    """Behavioural fields of ``group`` that differ from the locked entry."""
    if entry.fingerprint == fingerprint(group):
        return []
    now = _plain(behaviour(group))
    keys = sorted(set(now) | set(entry.behaviour))
    changed = [k for k in keys if now.get(k) != entry.behaviour.get(k)]
    return changed or ["behaviour"]


def bump_message(group: FeatureGroup, changed: list[str], reference: str) -> str:
    """The error for a changed definition under an unchanged version."""
    what = ", ".join(_FIELD_NAMES.get(c, c) for c in changed)
    return (
        f"{group.name} v{group.version}: {what} changed but the version did not "
        f"({reference} holds another definition of v{group.version}); "
        f'bump "version" to {group.version + 1}'
    )


_DECODER = msgspec.json.Decoder(VersionLock)


def read_lock(path: Path) -> VersionLock:
    """Read the lock file; a missing file is an empty lock.

    Raises:
        ConfigError: the file is malformed.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return VersionLock()
    except OSError as e:
        raise ConfigError(path, "$", f"cannot read: {e.strerror or e}") from None
    try:
        return _DECODER.decode(data)
    except msgspec.MsgspecError as e:
        raise ConfigError(path, "$", str(e)) from None


def write_lock(path: Path, lock: VersionLock) -> bool:
    """Write the lock file (sorted, indented) atomically if its content changes.

    Returns:
        Whether the file changed.
    """
    groups = {
        name: {v: lock.groups[name][v] for v in sorted(lock.groups[name], key=int)}
        for name in sorted(lock.groups)
    }
    text = msgspec.json.format(
        msgspec.json.encode(VersionLock(groups), order="sorted"), indent=2
    ).decode()
    return write_atomic(path, text + "\n")
