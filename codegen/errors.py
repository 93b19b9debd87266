"""Errors of the batch lane: shallow, each naming the file (and field or line) at fault."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CodegenError", "ConfigError", "LoadError", "SqlError"]


class CodegenError(Exception):
    """Root of the batch lane's errors."""


class ConfigError(CodegenError):
    """A config or catalog file is unreadable, malformed or breaks the schema.

    Attributes:
        path: the file.
        field: JSON path of the offending field (``$`` for the whole document).
        message: what is wrong.
    """

    def __init__(self, path: Path, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path = path
        self.field = field
        self.message = message


class SqlError(CodegenError):
    """A feature's SQL does not parse as Spark SQL or does not resolve.

    Attributes:
        path: the SQL file.
        line: 1-based line (0 when unknown).
        column: 1-based column (0 when unknown).
        message: what is wrong.
    """

    def __init__(self, path: Path, message: str, line: int = 0, column: int = 0) -> None:
        where = f"{path}:{line}:{column}" if line else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message


class LoadError(CodegenError):
    """A bulk load cannot go on: bad input, a refused row, or retries exhausted."""
