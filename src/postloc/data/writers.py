"""Writers for the exchange format: JSONL and Parquet, streamed and written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from postloc.data.schema import EXCHANGE_COLUMNS, Post, arrow_schema
from postloc.io.atomic import atomic_open, atomic_path

BATCH_ROWS = 8192


def write_posts(posts: Iterable[Post], path: str | Path, *, format: str | None = None) -> int:
    """Write ``posts`` to ``path`` (JSONL or Parquet by suffix); returns how many were written.

    Image paths are written relative to the output's folder when they lie below it, so a
    dataset folder can be moved as a whole.
    """
    path = Path(path)
    fmt = format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl")
    if fmt == "jsonl":
        return _write_jsonl(posts, path)
    if fmt == "parquet":
        return _write_parquet(posts, path)
    raise ValueError(f"unknown output format {fmt!r}; use jsonl or parquet")


def _write_jsonl(posts: Iterable[Post], path: Path) -> int:
    count = 0
    base = path.resolve().parent
    with atomic_open(path, "w") as handle:
        for post in posts:
            handle.write(json.dumps(post.to_record(image_base=base), ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count


def _write_parquet(posts: Iterable[Post], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(EXCHANGE_COLUMNS)
    base = path.resolve().parent
    count = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        batch: list[dict] = []
        for post in posts:
            record = post.to_record(image_base=base)
            extras = {k: v for k, v in record.items() if k not in schema.names}
            row = {name: record.get(name) for name in schema.names}
            row["extra"] = json.dumps(extras, ensure_ascii=False, default=str) if extras else None
            batch.append(row)
            count += 1
            if len(batch) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch or count == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count
