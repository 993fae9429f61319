"""The DuckDB side of the out-of-core engine: the optional import, a bounded connection, query helpers.

Its own module so that both the engine (:mod:`postloc.data.prepare.duckdb_engine`) and the
sampled clustering (:mod:`postloc.data.prepare.poi_sample`) can use it without importing
each other; nothing here is imported unless ``--engine duckdb`` is asked for.
"""

from __future__ import annotations

from pathlib import Path

from postloc.errors import PostlocError

INSTALL_HINT = "pip install 'postloc[duckdb]'"
FETCH_ROWS = 65_536


def require_duckdb():
    """The duckdb module, or a clear error saying how to install it."""
    try:
        import duckdb
    except ImportError:
        raise PostlocError(
            f"--engine duckdb needs the DuckDB package, which is not installed: {INSTALL_HINT}"
        ) from None
    return duckdb


def connect(scratch: Path, memory_limit: str):
    """A DuckDB database file in ``scratch`` that spills to ``scratch/tmp`` beyond ``memory_limit``."""
    duckdb = require_duckdb()
    scratch.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(scratch / "prepare.duckdb"))
    try:
        con.execute(f"SET memory_limit = '{quote(memory_limit)}'")
    except duckdb.Error as error:
        con.close()
        raise PostlocError(
            f"--memory-limit {memory_limit!r} is not a size DuckDB understands (e.g. 512MB, 4GB): {error}"
        ) from None
    con.execute(f"SET temp_directory = '{quote(str(scratch / 'tmp'))}'")
    con.execute("SET preserve_insertion_order = false")  # every query that needs an order says ORDER BY
    return con


def quote(text: str) -> str:
    """``text`` safe inside a single-quoted SQL string literal."""
    return text.replace("'", "''")


def arrow_batches(con, sql: str, params: list | dict | None = None, rows: int = FETCH_ROWS):
    """Arrow record batches of a query, in its ORDER BY order.

    Through the relation API: in DuckDB 2.0 an Arrow reader over an ``execute()`` result
    copies the rows and does not keep their order.
    """
    relation = con.sql(sql, params=params) if params else con.sql(sql)
    if hasattr(relation, "to_arrow_reader"):
        return relation.to_arrow_reader(rows)
    return relation.fetch_arrow_reader(rows)  # DuckDB 1.x


def scalar(con, sql: str, params: list | None = None) -> int:
    """The single integer a query returns."""
    return int(con.execute(sql, params or []).fetchall()[0][0])  # fetchall: a half-read result blocks con.sql
