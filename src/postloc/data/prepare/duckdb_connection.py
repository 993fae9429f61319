"""The DuckDB side of the out-of-core engine: the optional import, a bounded connection, query helpers.

Its own module so that both the engine (:mod:`postloc.data.prepare.duckdb_engine`) and the
sampled clustering (:mod:`postloc.data.prepare.poi_sample`) can use it without importing
each other; nothing here is imported unless ``--engine duckdb`` is asked for.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from postloc.errors import PostlocError

INSTALL_HINT = "pip install 'postloc[duckdb]'"
FETCH_ROWS = 65_536
#: paths DuckDB takes literally: letters, digits, ``_ . - /``. It reads ``?`` in a database path as
#: the start of options, ``\\`` anywhere as a separator, ``* ? [`` in a file to read as a glob.
_PLAIN_PATH = re.compile(r"[\w./-]+")


def require_duckdb():
    """The duckdb module, or a clear error saying how to install it."""
    try:
        import duckdb
    except ImportError:
        raise PostlocError(
            f"--engine duckdb needs the DuckDB package, which is not installed: {INSTALL_HINT}"
        ) from None
    return duckdb


@contextlib.contextmanager
def plain_path(folder: Path) -> Iterator[Path]:
    """``folder`` under a path DuckDB reads literally, for the block.

    That is ``folder`` itself (absolute) when its path has only plain characters; otherwise a
    symbolic link to it inside a private folder under the system's temporary directory, removed
    afterwards. Files opened through it are ``folder``'s own, so the work (and DuckDB's spill
    files) stays on the output's file system, and an output named ``dd?y`` or ``it's`` is
    never parsed by DuckDB.
    """
    real = Path(os.path.abspath(folder))
    if _PLAIN_PATH.fullmatch(str(real)):
        yield real
        return
    private = Path(tempfile.mkdtemp(prefix="postloc-duckdb-"))
    try:
        alias = private / "work"
        if not _PLAIN_PATH.fullmatch(str(alias)):
            raise PostlocError(
                f"{folder}: DuckDB cannot be given this path, nor the temporary folder {private}; "
                "set TMPDIR to a folder whose path has only letters, digits and . _ - /"
            )
        alias.symlink_to(real, target_is_directory=True)
        yield alias
    finally:
        shutil.rmtree(private, ignore_errors=True)  # removes the link, never what it points to


def connect(scratch: Path, memory_limit: str):
    """A DuckDB database file in ``scratch`` that spills to ``scratch/tmp`` beyond ``memory_limit``.

    ``scratch`` is a path from :func:`plain_path`. DuckDB resolves a database file's links, so when
    the real path is not plain the database is in memory instead, still spilling to ``scratch/tmp``.
    """
    duckdb = require_duckdb()
    scratch.mkdir(parents=True, exist_ok=True)
    plain = bool(_PLAIN_PATH.fullmatch(os.path.realpath(scratch)))
    con = duckdb.connect(str(scratch / "prepare.duckdb") if plain else ":memory:")
    try:
        con.execute("SET memory_limit = ?", [memory_limit])
    except duckdb.Error as error:
        con.close()
        raise PostlocError(
            f"--memory-limit {memory_limit!r} is not a size DuckDB understands (e.g. 512MB, 4GB): {error}"
        ) from None
    con.execute("SET temp_directory = ?", [str(scratch / "tmp")])
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
