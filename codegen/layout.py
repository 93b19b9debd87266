"""Where things are in a features folder.

::

    features/
      sources.json              the source tables feature SQL may read (SourceCatalog)
      versions.lock.json        behaviour fingerprint of every group version ever generated
      <group>/config.json       one feature: its FeatureConfig ...
      <group>/query.sql         ... and its Spark SQL

Folders whose name starts with ``_`` or ``.`` are not features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CATALOG_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "SQL_FILE",
    "FeatureFiles",
    "discover",
]

CONFIG_FILE: Final = "config.json"
SQL_FILE: Final = "query.sql"
CATALOG_FILE: Final = "sources.json"
LOCK_FILE: Final = "versions.lock.json"


@dataclass(frozen=True, slots=True)
class FeatureFiles:
    """The two files of one feature.

    Attributes:
        root: the features folder.
        folder: this feature's folder.
    """

    root: Path
    folder: Path

    @property
    def config(self) -> Path:
        """``config.json``."""
        return self.folder / CONFIG_FILE

    @property
    def sql(self) -> Path:
        """``query.sql``."""
        return self.folder / SQL_FILE

    @property
    def rel(self) -> str:
        """The folder relative to the features folder (POSIX), as generated files cite it."""
        return self.folder.relative_to(self.root).as_posix()


def discover(root: Path) -> list[FeatureFiles]:
    """Feature folders under ``root`` (direct children holding a config or a SQL file).

    Sorted by name, so everything derived from the list is deterministic.
    """
    out: list[FeatureFiles] = []
    if not root.is_dir():
        return out
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if not child.is_dir() or child.name.startswith(("_", ".")):
            continue
        if (child / CONFIG_FILE).exists() or (child / SQL_FILE).exists():
            out.append(FeatureFiles(root, child))
    return out
