"""Errors of the ingest service that stop it (everything else is retried or dead-lettered)."""

from __future__ import annotations

__all__ = ["ConfigError", "IngestError"]


class IngestError(RuntimeError):
    """The service cannot go on (the daemon or the dead-letter destination stayed
    unavailable past the retry deadline, a source or destination does not exist).

    Nothing unacknowledged was committed: a restart resumes from the last commit.
    """


class ConfigError(IngestError):
    """A setting, source or destination URI is invalid; the message names it."""
