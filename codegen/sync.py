"""The regeneration service: keep a DAGs folder in step with a features folder.

One pass (:func:`sync_once`) validates every feature, renders the DAG of each valid
one, writes the files whose text changed (atomically: a scheduler never reads half a
file) and removes generated DAGs that no feature produces any more (a deleted feature,
or the old version after a bump). It never touches a file it did not generate, and it
keeps the last good DAG of a feature whose files are now invalid (the error is logged):
a broken commit must not unschedule production. If the features folder itself or
``sources.json`` cannot be read, nothing is removed.

:func:`watch` repeats passes: when a file under the features folder changes (polled
every ``poll`` seconds) and every ``interval`` seconds regardless, until stopped.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codegen.files import remove_file, write_atomic
from codegen.layout import CATALOG_FILE
from codegen.render import dag_filename, is_generated, render_dag
from codegen.validate import Diagnostic, RegistryLookup, validate_features

__all__ = ["SyncReport", "snapshot", "sync_once", "watch"]

log = logging.getLogger(__name__)

_SOURCE = re.compile(r"^# Source: features/(?P<rel>[^\s]+)/ ", re.MULTILINE)


@dataclass(slots=True)
class SyncReport:
    """What one pass did (or, with ``check``, would do).

    Attributes:
        created: DAG files written that did not exist.
        updated: DAG files rewritten with new text.
        removed: generated DAG files deleted.
        unchanged: DAG files already up to date.
        kept: DAG files of invalid features left as they were.
        diagnostics: validation errors and warnings.
    """

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether any file was (or would be) created, updated or removed."""
        return bool(self.created or self.updated or self.removed)

    @property
    def ok(self) -> bool:
        """No validation errors."""
        return not any(d.severity == "error" for d in self.diagnostics)


def _generated_files(out_dir: Path) -> dict[str, str]:
    """Generated DAG files in ``out_dir``: name -> source feature folder (or ``""``)."""
    found: dict[str, str] = {}
    if not out_dir.is_dir():
        return found
    for path in sorted(out_dir.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if is_generated(text):
            m = _SOURCE.search(text)
            found[path.name] = m["rel"] if m else ""
    return found


def sync_once(
    features_dir: Path,
    out_dir: Path,
    *,
    check: bool = False,
    registry: RegistryLookup | None = None,
) -> SyncReport:
    """One regeneration pass.

    Args:
        features_dir: the features folder.
        out_dir: the DAGs folder (created if missing).
        check: compute the changes without writing anything (for CI: "is it in step?").
        registry: also check versions against the daemon's registry.

    Returns:
        What changed, and the validation diagnostics.
    """
    validation = validate_features(features_dir, registry)
    report = SyncReport(diagnostics=list(validation.diagnostics))
    fatal = any(
        d.severity == "error" and d.path in (features_dir, features_dir / CATALOG_FILE)
        for d in validation.diagnostics
    )
    wanted: dict[str, str] = {}
    for spec in validation.specs:
        wanted[dag_filename(spec.config.name, spec.config.version)] = render_dag(spec)
    existing = _generated_files(out_dir)
    for name, text in sorted(wanted.items()):
        path = out_dir / name
        before = path.read_text(encoding="utf-8") if path.exists() else None
        if before == text:
            report.unchanged.append(name)
            continue
        if before is not None and not is_generated(before):
            log.error("not overwriting %s: it exists and was not generated", path)
            continue
        if not check:
            write_atomic(path, text)
        (report.created if before is None else report.updated).append(name)
    failed = set(validation.failed)
    for name, rel in sorted(existing.items()):
        if name in wanted:
            continue
        if fatal or rel in failed:
            report.kept.append(name)
            continue
        if not check:
            remove_file(out_dir / name)
        report.removed.append(name)
    _log(report, out_dir, check)
    return report


def _log(report: SyncReport, out_dir: Path, check: bool) -> None:
    verb = "would be " if check else ""
    for d in report.diagnostics:
        (log.error if d.severity == "error" else log.warning)("%s", d)
    for name in report.created:
        log.info("%screated %s", verb, out_dir / name)
    for name in report.updated:
        log.info("%supdated %s", verb, out_dir / name)
    for name in report.removed:
        log.info("%sremoved %s (no feature generates it any more)", verb, out_dir / name)
    for name in report.kept:
        log.warning("kept %s: its feature does not validate; fix it to regenerate", name)
    log.info(
        "sync: %d created, %d updated, %d removed, %d unchanged, %d kept",
        len(report.created),
        len(report.updated),
        len(report.removed),
        len(report.unchanged),
        len(report.kept),
    )


def snapshot(features_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """A cheap fingerprint of a features folder: every file's path, mtime and size."""
    items = []
    if features_dir.is_dir():
        for p in sorted(features_dir.rglob("*")):
            try:
                st = p.stat()
            except OSError:
                continue
            if p.is_file():
                items.append((p.relative_to(features_dir).as_posix(), st.st_mtime_ns, st.st_size))
    return tuple(items)


def watch(
    features_dir: Path,
    out_dir: Path,
    *,
    on_change: bool = True,
    poll: float = 1.0,
    interval: float | None = None,
    stop: threading.Event | None = None,
    on_pass: Callable[[SyncReport], None] | None = None,
    registry: RegistryLookup | None = None,
) -> None:
    """Run :func:`sync_once` now, then on changes and/or every ``interval`` seconds.

    Args:
        features_dir: the features folder.
        out_dir: the DAGs folder.
        on_change: run a pass when a file under ``features_dir`` changes.
        poll: seconds between checks for changed files.
        interval: also run a pass every this many seconds (``None``: only on changes).
        stop: set it to end the loop (the CLI sets it on SIGTERM and SIGINT).
        on_pass: called after each pass.
        registry: also check versions against the daemon's registry.

    Raises:
        ValueError: neither ``on_change`` nor ``interval``: nothing would ever run again.
    """
    if not on_change and interval is None:
        raise ValueError("watch needs on_change or an interval")
    stop = stop or threading.Event()
    tick = poll if on_change else float(interval or poll)
    last: tuple[tuple[str, int, int], ...] | None = None
    since = 0.0
    while not stop.is_set():
        current = snapshot(features_dir) if on_change else None
        due = interval is not None and since >= interval
        if last is None or (on_change and current != last) or due:
            report = sync_once(features_dir, out_dir, registry=registry)
            if on_pass is not None:
                on_pass(report)
            last = current if current is not None else ()
            since = 0.0
        stop.wait(tick)
        since += tick
