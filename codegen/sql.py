"""Reading a feature's Spark SQL with sqlglot: parse, lineage, columns, fingerprint.

The SQL is one ``SELECT`` in Spark SQL. It names the day it computes with parameter
markers that Spark binds (``spark.sql(text, args=...)``), never with string templating:

* ``:ds``: the day computed (``DATE``);
* ``:ds_start``: midnight UTC that starts it (``TIMESTAMP``);
* ``:ds_end``: midnight UTC that ends it, exclusive (``TIMESTAMP``).

Analysis resolves every column against the source catalog (``sources.json``), so an
unknown table or column is an error before anything runs, and gives the result's columns
with their types for the checks against the config.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from codegen.config import SourceCatalog
from codegen.errors import SqlError

__all__ = [
    "PARAMETERS",
    "OutputColumn",
    "SqlAnalysis",
    "analyze_sql",
    "catalog_schema",
    "parameters_for",
    "sql_fingerprint",
    "type_family",
]

#: Parameter markers a feature's SQL may use, and what each is.
PARAMETERS: Final = {
    "ds": "the day computed (DATE)",
    "ds_start": "midnight UTC starting ds (TIMESTAMP)",
    "ds_end": "midnight UTC ending ds, exclusive (TIMESTAMP)",
}
_DIALECT: Final = "spark"
_DEFAULT_DB: Final = "default"


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """A column of the SQL's result.

    Attributes:
        name: the column name.
        sql_type: its Spark type as sqlglot infers it (``UNKNOWN`` when it cannot tell).
    """

    name: str
    sql_type: str


@dataclass(frozen=True, slots=True)
class SqlAnalysis:
    """What validation learns from a feature's SQL.

    Attributes:
        fingerprint: sha256 of the SQL's tokens (comments, whitespace and keyword case
            do not change it).
        sources: tables read, ``database.table``, sorted.
        columns: the result's columns in order.
        parameters: parameter markers used, sorted.
    """

    fingerprint: str
    sources: tuple[str, ...]
    columns: tuple[OutputColumn, ...]
    parameters: tuple[str, ...]


def parameters_for(ds: date) -> dict[str, Any]:
    """Values of the parameter markers for one day (Python types Spark and DuckDB bind)."""
    start = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    return {"ds": ds, "ds_start": start, "ds_end": start + timedelta(days=1)}


def sql_fingerprint(sql: str) -> str:
    """A stable fingerprint of a query's meaning-bearing text.

    Built from the Spark tokenizer's tokens, so comments, whitespace and the case of
    keywords and unquoted names (Spark ignores both) do not change it; string literals
    and quoted names are kept exactly.

    Raises:
        SqlglotError: the text does not tokenize (an unterminated string, for example).
    """
    parts: list[str] = []
    for tok in sqlglot.Dialect.get_or_raise(_DIALECT).tokenize(sql):
        kind = tok.token_type.name
        if kind == "STRING":
            parts.append("'" + tok.text)
        elif kind == "IDENTIFIER":
            parts.append("`" + tok.text)
        else:
            parts.append(tok.text.lower())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def catalog_schema(catalog: SourceCatalog) -> dict[str, object]:
    """The catalog as sqlglot's nested schema mapping (database -> table -> columns)."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for full, table in catalog.tables.items():
        db, name = full.split(".", 1)
        schema.setdefault(db, {})[name] = dict(table.columns)
    return dict(schema)


def _parse(sql: str, path: Path) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(sql, read=_DIALECT) if s is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        raise SqlError(
            path,
            f"not valid Spark SQL: {first.get('description') or e}",
            int(first.get("line") or 0),
            int(first.get("col") or 0),
        ) from None
    except SqlglotError as e:
        raise SqlError(path, f"not valid Spark SQL: {e}") from None
    if len(statements) != 1:
        raise SqlError(path, f"expected exactly one SELECT statement, found {len(statements)}")
    stmt = statements[0]
    if not isinstance(stmt, exp.Query):
        head = " ".join(stmt.sql(_DIALECT).split())[:60]
        raise SqlError(path, f"expected a SELECT query, found {head!r}")
    return stmt


def _lineage(query: exp.Query) -> list[str]:
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    out: set[str] = set()
    for t in query.find_all(exp.Table):
        if not t.name:
            continue
        if not t.db and t.name.lower() in ctes:
            continue
        out.add(f"{(t.db or _DEFAULT_DB).lower()}.{t.name.lower()}")
    return sorted(out)


def _parameters(query: exp.Query, path: Path) -> list[str]:
    names: set[str] = set()
    for p in query.find_all(exp.Placeholder):
        name = p.name
        if not name:
            raise SqlError(path, f"positional parameter '?' is not supported; use {_known()}")
        if name not in PARAMETERS:
            raise SqlError(path, f"unknown parameter :{name}; known: {_known()}")
        names.add(name)
    return sorted(names)


def _known() -> str:
    return ", ".join(f":{n}" for n in PARAMETERS)


_COLUMN_IN_MESSAGE = re.compile(r"(?:Column '([^']+)' could not|Unknown column: (\w+))")


def _line_col(err: OptimizeError, query: exp.Query) -> tuple[int, int]:
    """Where the unresolved name is: from the message, else from the column's token."""
    text = str(err)
    if "Line: " in text:
        try:
            tail = text.rsplit("Line: ", 1)[1]
            line_s, col_s = tail.split(", Col: ", 1)
            return int(line_s), int(col_s.split()[0].rstrip("."))
        except (ValueError, IndexError):
            pass
    m = _COLUMN_IN_MESSAGE.search(text)
    if m is not None:
        name = (m[1] or m[2]).lower()
        for col in query.find_all(exp.Column):
            if col.name.lower() == name:
                meta = col.this.meta if isinstance(col.this, exp.Expression) else {}
                return int(meta.get("line") or 0), int(meta.get("col") or 0)
    return 0, 0


def analyze_sql(sql: str, catalog: SourceCatalog, path: Path) -> SqlAnalysis:
    """Parse a feature's SQL as Spark SQL and resolve it against the source catalog.

    Args:
        sql: the query text.
        catalog: the source tables and their columns.
        path: the SQL file, for messages.

    Returns:
        Fingerprint, lineage, result columns and parameters used.

    Raises:
        SqlError: the text is not one Spark SQL query, uses an unknown parameter, reads
            a table the catalog does not declare or a column that table does not have.
    """
    query = _parse(sql, path)
    params = _parameters(query, path)
    sources = _lineage(query)
    missing = [s for s in sources if s not in catalog.tables]
    if missing:
        raise SqlError(
            path,
            f"unknown source table {', '.join(missing)}: not declared in sources.json",
        )
    schema = catalog_schema(catalog)
    try:
        qualified = qualify(
            query.copy(),
            schema=schema,
            db=_DEFAULT_DB,
            dialect=_DIALECT,
            validate_qualify_columns=True,
            identify=False,
        )
        typed = annotate_types(qualified, schema=schema, dialect=_DIALECT)
    except OptimizeError as e:
        line, col = _line_col(e, query)
        msg = str(e).split(" Line: ", 1)[0]
        raise SqlError(path, f"does not resolve against sources.json: {msg}", line, col) from None
    except SqlglotError as e:
        raise SqlError(path, f"does not resolve against sources.json: {e}") from None
    assert isinstance(typed, exp.Query)
    columns = tuple(
        OutputColumn(
            s.alias_or_name, s.type.sql(_DIALECT).upper() if s.type is not None else "UNKNOWN"
        )
        for s in typed.selects
    )
    try:
        fingerprint = sql_fingerprint(sql)
    except SqlglotError as e:  # pragma: no cover - parse would have failed first
        raise SqlError(path, f"not valid Spark SQL: {e}") from None
    return SqlAnalysis(fingerprint, tuple(sources), columns, tuple(params))


_FAMILIES: Final = {
    "bool": ("BOOLEAN",),
    "int": ("TINYINT", "SMALLINT", "INT", "BIGINT", "BYTE", "SHORT", "LONG", "INTEGER"),
    "float": ("FLOAT", "DOUBLE", "DECIMAL", "REAL"),
    "string": ("STRING", "VARCHAR", "CHAR", "TEXT"),
    "bytes": ("BINARY",),
    "timestamp": ("TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMPNTZ", "TIMESTAMPLTZ"),
    "date": ("DATE",),
    "array": ("ARRAY",),
}


def type_family(sql_type: str) -> str:
    """The family of a Spark type name (``int``, ``float``, ``string``...; ``unknown``)."""
    base = sql_type.upper().split("(", 1)[0].split("<", 1)[0].strip()
    for family, names in _FAMILIES.items():
        if base in names:
            return family
    return "unknown"
