"""The steps both engines share: cleaning posts into the spool, formatting and writing the outputs.

Steps 1-3 (read, normalise, language, duplicates) always run in Python and stream into a
Parquet spool; the engines differ only in how they run steps 3-7 over it. Whatever they
decide, every prepared row is formatted and written by :class:`PreparedPostsWriter`, so the
two engines write the same bytes (docs/scale-prepare.md).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.data.filters import duplicate_key, place_key
from postloc.data.prepare.config import PrepareConfig
from postloc.text.hashtags import post_hashtags
from postloc.text.language import detect_languages
from postloc.text.normalize import normalize_text

SPOOL_BATCH = 8192  # spool rows per batch; also the prepared posts per Parquet row group
WORKER_CHUNK = 2048  # posts per task sent to a --workers process
PREPARED_COLUMNS = ("id", "text", "image", "poi_name", "lat", "lon", "user", "created", "lang", "extra")


# --- step 1-3: read, normalise, language, duplicates -> spool -----------------------------


def spool_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("hashtags", pa.list_(pa.string())),
            ("image", pa.list_(pa.string())),
            ("poi", pa.string()),
            ("poi_name", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("user", pa.string()),
            ("created", pa.string()),
            ("lang", pa.string()),
            ("n_text", pa.int32()),
            ("n_images", pa.int32()),
            ("extra", pa.string()),
        ]
    )


def clean_post(post, config: PrepareConfig, keys_only: bool) -> dict | None:
    """One spool row (normalised text, matching hashtags, language), or None if its language is dropped.

    ``_dup`` holds the duplicate key: the tuple itself, or (``keys_only``, for the duckdb
    engine) a stable 128-bit digest of it that SQL can group by.
    """
    return clean_chunk([post], config, keys_only)[0]


def clean_chunk(posts: list, config: PrepareConfig, keys_only: bool) -> list[dict | None]:
    """:func:`clean_post` over a chunk: the unit of work of both the main process and ``--workers``.

    Captions are judged together (:func:`detect_languages`: one automaton walk for the chunk)
    and only those with text; the rows are the same as one post at a time would give.
    """
    texts = [normalize_text(post.text) for post in posts]
    with_text = [i for i, text in enumerate(texts) if text]
    langs: list[str | None] = [None] * len(posts)
    judged = detect_languages([texts[i] for i in with_text], min_letters=config.min_language_letters)
    for i, (lang, _) in zip(with_text, judged, strict=True):
        langs[i] = lang
    return [
        _spool_row(post, text, lang, config, keys_only) for post, text, lang in zip(posts, texts, langs, strict=True)
    ]


def _spool_row(post, text: str, lang: str | None, config: PrepareConfig, keys_only: bool) -> dict | None:
    if lang is not None and config.languages and lang not in config.languages:
        return None
    tags = post_hashtags(post.hashtags, text)
    key: tuple | bytes | None = None
    if config.drop_duplicates:
        key = duplicate_key(post.user, text, tags, place_key(post.poi, post.lat, post.lon))
        if key is not None and keys_only:
            key = hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()
    extra = dict(post.extra)
    poi_name = extra.pop("poi_name", None)
    return {
        "id": post.id,
        "text": text,
        "hashtags": tags,
        "image": post.images,
        "poi": post.poi,
        "poi_name": None if poi_name is None else str(poi_name),
        "lat": post.lat,
        "lon": post.lon,
        "user": post.user,
        "created": post.created,
        "lang": lang,
        "n_text": len(text),
        "n_images": len(post.images),
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str) if extra else None,
        "_dup": key,
    }


def cleaned(posts: Iterator, config: PrepareConfig, keys_only: bool) -> Iterator[dict | None]:
    """Rows in input order, cleaned in chunks; with ``config.workers > 1`` by a process pool."""
    chunks = iter(lambda: list(islice(posts, WORKER_CHUNK)), [])
    if config.workers <= 1:
        for chunk in chunks:
            yield from clean_chunk(chunk, config, keys_only)
        return
    import multiprocessing
    from collections import deque

    # a bounded window of chunks in flight (Pool.imap would read the whole input ahead)
    clean = partial(clean_chunk, config=config, keys_only=keys_only)
    pending: deque = deque()
    with multiprocessing.get_context("spawn").Pool(config.workers) as pool:
        for chunk in chunks:
            pending.append(pool.apply_async(clean, (chunk,)))
            if len(pending) >= 2 * config.workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def spool_clean_posts(
    posts: Iterable, spool: Path, config: PrepareConfig, funnel: Counter, *, keys_only: bool = False
) -> None:
    """Steps 1-3 into ``spool``. The memory engine drops duplicates here (a set of key hashes);
    with ``keys_only`` each row keeps its key digest in a ``dupkey`` column for SQL instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = spool_schema()
    if keys_only:
        schema = schema.append(pa.field("dupkey", pa.binary()))
    seen: set[int] = set()
    batch: list[dict] = []
    with pq.ParquetWriter(spool, schema) as writer:
        for row in cleaned(iter(posts), config, keys_only):
            if row is None:
                funnel["dropped_language"] += 1
                continue
            key = row.pop("_dup")
            if keys_only:
                row["dupkey"] = key
            elif key is not None:
                digest = hash(key)
                if digest in seen:
                    funnel["dropped_duplicate"] += 1
                    continue
                seen.add(digest)
            batch.append(row)
            if len(batch) >= SPOOL_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))


# --- outputs -------------------------------------------------------------------------------


def prepared_schema():
    """The columns of ``posts.parquet``, in order."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("hashtags", pa.list_(pa.string())),
            ("image", pa.list_(pa.string())),
            ("poi", pa.string()),
            ("poi_name", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("user", pa.string()),
            ("created", pa.string()),
            ("split", pa.string()),
            ("lang", pa.string()),
            ("flags", pa.list_(pa.string())),
            ("extra", pa.string()),
        ]
    )


def post_flags(text: str, tags: list[str], images: list[str], lang: str | None) -> list[str]:
    """What a prepared post lacks (no_text, language_undetermined, no_hashtags, no_image)."""
    flags = []
    if not text:
        flags.append("no_text")
    elif lang is None:
        flags.append("language_undetermined")
    if not tags:
        flags.append("no_hashtags")
    if not images:
        flags.append("no_image")
    return flags


def exchange_record(row: dict) -> dict:
    """A prepared row in the exchange format, with split/lang/flags as extra keys."""
    record = {"id": row["id"], "text": row["text"], "hashtags": row["hashtags"]}
    if row["image"]:
        record["image"] = row["image"]
    for key in ("poi", "lat", "lon", "user", "created"):
        if row[key] is not None:
            record[key] = row[key]
    if row["poi_name"] is not None:
        record["poi_name"] = row["poi_name"]
    record.update(split=row["split"], lang=row["lang"], flags=row["flags"])
    if row["extra"]:
        for key, value in json.loads(row["extra"]).items():
            record.setdefault(key, value)
    return record


class PreparedPostsWriter:
    """``posts.parquet`` and ``posts.jsonl`` in ``work``, from spool rows and the engine's decisions.

    Rows are added in input order; :meth:`end_row_group` closes a Parquet row group (empty
    ones included). Both engines end one group per :data:`SPOOL_BATCH` de-duplicated posts,
    which is what makes their Parquet files byte-identical.
    """

    def __init__(self, work: Path, vocabulary: set[str]):
        self.work = work
        self.vocabulary = vocabulary
        self.schema = prepared_schema()
        self.rows: list[dict] = []
        self._stack = ExitStack()

    def __enter__(self) -> PreparedPostsWriter:
        import pyarrow.parquet as pq

        self._parquet = self._stack.enter_context(pq.ParquetWriter(self.work / "posts.parquet", self.schema))
        self._jsonl = self._stack.enter_context(open(self.work / "posts.jsonl", "w", encoding="utf-8", newline="\n"))
        return self

    def __exit__(self, *exc) -> bool:
        return bool(self._stack.__exit__(*exc))

    def add(self, row: dict[str, Any], poi: str | None, split: str | None) -> None:
        """One kept post: its hashtags cut to the vocabulary, its POI, split and flags."""
        tags = [t for t in row["hashtags"] if t in self.vocabulary]
        out = {key: row[key] for key in PREPARED_COLUMNS}
        out.update(hashtags=tags, poi=poi, split=split, flags=post_flags(row["text"], tags, row["image"], row["lang"]))
        self.rows.append(out)
        self._jsonl.write(json.dumps(exchange_record(out), ensure_ascii=False) + "\n")

    def end_row_group(self) -> None:
        import pyarrow as pa

        self._parquet.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows = []


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The one CSV dialect of the outputs (7 decimals, ``\\n`` line ends)."""
    frame.to_csv(path, index=False, float_format="%.7f", lineterminator="\n")


def empty_message(source: Path, funnel: Counter, stage: str) -> str:
    """Why nothing is left, with the funnel so far: the text of ``EmptyDatasetError``."""
    steps = ", ".join(f"{k}={v}" for k, v in sorted(funnel.items()) if v)
    if funnel.get("skipped_bad") and not funnel.get("read"):
        return (
            f"{source}: every one of the {funnel['skipped_bad']:,} records was bad and skipped (--skip-bad); "
            "the thresholds are not the problem: see the reasons above, and docs/post-format.md for what a record holds"
        )
    return (
        f"{source}: no posts left {stage} ({steps or 'the input holds no posts'}); "
        "loosen the thresholds or check the input"
    )


def progress(iterable, enabled: bool, desc: str, **kwargs):
    """``iterable`` behind a tqdm bar when ``enabled`` (``postloc prepare`` without ``--quiet``)."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=kwargs.pop("unit", "post"), dynamic_ncols=True, **kwargs)


def progress_bar(enabled: bool, desc: str, *, total: int, unit: str):
    """A bar updated by hand (``with ... as bar: bar.update(1)``); a silent one when not ``enabled``."""
    return progress(None, True, desc, total=total, unit=unit) if enabled else _NoBar()


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int) -> None:
        pass
