"""Several processes (here: connections on threads) opening a new embedded database at
once, as the workers of one daemon do: every one of them opens it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dsfeatures.stores.sqlite import SqliteDatabase


async def test_concurrent_opens_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL and creating the schema race; SQLite answers some of
    # those races "database is locked" at once. Before the fix about 1 round in 8 failed.
    for round_ in range(40):
        path = tmp_path / f"r{round_}" / "dsfeatures.db"
        dbs = [SqliteDatabase(path) for _ in range(8)]
        try:
            opened = await asyncio.gather(*[db.open() for db in dbs], return_exceptions=True)
            assert [o for o in opened if o is not None] == [], round_
            counts = await asyncio.gather(
                *[
                    db.read(lambda c: c.execute("SELECT count(*) FROM rows").fetchone())
                    for db in dbs
                ]
            )
            assert counts == [(0,)] * 8
        finally:
            await asyncio.gather(*[db.close() for db in dbs])
