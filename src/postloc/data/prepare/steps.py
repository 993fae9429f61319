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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.data.filters import duplicate_key, place_key
from postloc.data.pois import named_place, place_label
from postloc.data.prepare.config import PrepareConfig
from postloc.data.prepared import POSTS, POSTS_JSONL, prepared_schema
from postloc.data.schema import IMAGE_VECTOR_KEY, POST_COLUMNS, arrow_schema
from postloc.text.hashtags import post_hashtags
from postloc.text.language import detect_languages
from postloc.text.language import unload as unload_language_model
from postloc.text.names import names_place, place_keys
from postloc.text.normalize import normalize_text

SPOOL_BATCH = 8192  # spool rows per batch; also the prepared posts per Parquet row group
WORKER_CHUNK = 2048  # posts per task sent to a --workers process
PREPARED_COLUMNS = ("id", "text", "image", "poi_name", "lat", "lon", "user", "created", "lang", "extra")


# --- step 1-3: read, normalise, language, duplicates -> spool -----------------------------


#: a cleaned post on its way to the split: the prepared columns but ``split`` and ``flags`` (known only at
#: the end), with the counts the memory cap and the report read
SPOOL_COLUMNS = tuple(c for c in POST_COLUMNS if c not in ("split", "flags", IMAGE_VECTOR_KEY))


def spool_schema(*, keys: bool = False, held: bool = False):
    """The spool's columns; with ``keys`` also ``dupkey``, the duplicate key's digest (binary); with ``held``
    also ``held``, true for a post judged outside ``--languages`` (kept until :func:`settle_spool`)."""
    import pyarrow as pa

    schema = arrow_schema(SPOOL_COLUMNS)
    if keys:
        schema = schema.append(pa.field("dupkey", pa.binary()))
    return schema.append(pa.field("held", pa.bool_())) if held else schema


@dataclass(frozen=True)
class EngineInput:
    """What ``prepare`` hands an engine (:mod:`~postloc.data.prepare.memory` or
    :mod:`~postloc.data.prepare.duckdb_engine`) for steps 3-7: one type, so both take the same thing.

    The spool is settled (:func:`settle_spool`) before an engine sees it, with ``places`` (its place
    keys, :func:`spool_place_keys`) kept for the hashtag vocabulary.
    """

    spool: Path  # the cleaned posts (steps 1-2)
    work: Path  # the folder being written
    config: PrepareConfig
    funnel: Counter  # what was read, kept and dropped; the engine adds its counts
    known_centres: pd.DataFrame | None  # the given POI table (``--pois``), if any
    source: Path  # the input, named in messages
    show_progress: bool
    places: frozenset[str]


@dataclass
class CleanedChunk:
    """The spool rows of a chunk of posts, as Arrow columns (cheap to pickle back from a worker).

    ``rows`` follows ``spool_schema(keys=True, held=True)``: ``dupkey`` is a 128-bit digest of the
    duplicate key (:func:`postloc.data.filters.duplicate_key`), null for a post that cannot be a
    duplicate. A post judged outside ``--languages`` is in it with ``held`` true: whether its hashtags
    name a POI (which keeps it) is known only once every post's POI label has been read
    (:func:`settle_spool`); ``held`` counts them.
    """

    rows: Any  # pyarrow.RecordBatch
    held: int

    @property
    def dropped_language(self) -> int:
        """Posts judged outside the languages (dropped later unless their hashtags name a POI)."""
        return self.held


def clean_chunk(posts: list, config: PrepareConfig) -> CleanedChunk:
    """Steps 2-3 for a chunk of posts: the unit of work of both the main process and ``--workers``.

    Captions are judged together (:func:`detect_languages`: one automaton walk for the chunk)
    and only those with text; the rows are the same as one post at a time would give. The rows
    are built column by column, as :func:`spool_schema` types them. Without a language filter
    (``languages`` empty) no caption is judged: the judgement would only fill the ``lang`` column,
    which nothing after ``prepare`` reads, at a cost that was most of this step's; ``lang`` is then
    null and a captioned post carries the ``language_undetermined`` flag.
    """
    import pyarrow as pa

    texts = [normalize_text(post.text) for post in posts]
    with_text = [i for i, text in enumerate(texts) if text]
    langs: list[str | None] = [None] * len(posts)
    allowed = set(config.languages or ())
    if allowed:  # no filter (--languages any): nothing is judged, and ``lang`` stays null
        judged = detect_languages([texts[i] for i in with_text], min_letters=config.min_language_letters)
        for i, (lang, _) in zip(with_text, judged, strict=True):
            langs[i] = lang
    held = [lang is not None and bool(allowed) and lang not in allowed for lang in langs]
    tags = [post_hashtags(post.hashtags, text) for post, text in zip(posts, texts, strict=True)]
    keys: list[bytes | None] = [None] * len(posts)
    if config.drop_duplicates:
        keys = [
            _digest(duplicate_key(post.user, text, post_tags, place_key(post.poi, post.lat, post.lon)))
            for post, text, post_tags in zip(posts, texts, tags, strict=True)
        ]
    poi_names: list[str | None] = []
    extras: list[str | None] = []
    labels: list[str | None] = []
    for post in posts:
        if not post.extra:
            poi_names.append(None)
            extras.append(None)
            labels.append(post.poi)
            continue
        extra = dict(post.extra)
        poi_name = extra.pop("poi_name", None)
        name = named_place(extra) if poi_name is None else str(poi_name)
        poi_names.append(name)
        labels.append(place_label(post.poi, name))
        extras.append(json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str) if extra else None)
    images = [post.images for post in posts]
    columns = {
        "id": [post.id for post in posts],
        "text": texts,
        "hashtags": tags,
        "image": images,
        "poi": labels,
        "poi_name": poi_names,
        "lat": [post.lat for post in posts],
        "lon": [post.lon for post in posts],
        "user": [post.user for post in posts],
        "created": [post.created for post in posts],
        "lang": langs,
        "n_text": [len(text) for text in texts],
        "n_images": [len(paths) for paths in images],
        "extra": extras,
        "dupkey": keys,
        "held": held,
    }
    schema = spool_schema(keys=True, held=True)
    rows = pa.RecordBatch.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)
    return CleanedChunk(rows, held=sum(held))


def _digest(key: tuple | None) -> bytes | None:
    """A stable 128-bit digest of a duplicate key: the same in every process, and SQL can group by it."""
    if key is None:
        return None
    return hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def cleaned(posts: Iterator, config: PrepareConfig) -> Iterator[CleanedChunk]:
    """Chunks in input order; with ``config.workers > 1`` cleaned by a process pool."""
    chunks = iter(lambda: list(islice(posts, WORKER_CHUNK)), [])
    if config.workers <= 1:
        for chunk in chunks:
            yield clean_chunk(chunk, config)
        return
    import gc
    import multiprocessing
    from collections import deque

    # a bounded window of chunks in flight (Pool.imap would read the whole input ahead)
    clean = partial(clean_chunk, config=config)
    pending: deque = deque()
    # a worker only cleans chunks: no cycle collector there either (see collector_paused)
    with multiprocessing.get_context("spawn").Pool(config.workers, initializer=gc.disable) as pool:
        for chunk in chunks:
            pending.append(pool.apply_async(clean, (chunk,)))
            if len(pending) >= 2 * config.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def spool_clean_posts(
    posts: Iterable, spool: Path, config: PrepareConfig, funnel: Counter, *, keys_only: bool = False
) -> None:
    """Steps 1-3 into ``spool``. The memory engine drops duplicates here (a set of 64-bit prefixes
    of the key digests); with ``keys_only`` each row keeps its digest in a ``dupkey`` column for SQL.

    With a language filter the posts judged outside it stay, marked ``held``, and keep their digest:
    :func:`settle_spool` drops them (unless their hashtags name a POI) and then the duplicates, so
    the language step still comes first, as without held posts.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    holding = bool(config.languages)
    schema = spool_schema(keys=keys_only or holding, held=holding)
    seen: set[int] = set()
    pending: list = []
    n_pending = 0
    with pq.ParquetWriter(spool, schema) as writer:
        for chunk in cleaned(iter(posts), config):
            rows = chunk.rows
            if not holding:
                rows = rows.drop_columns(["held"])
            if not keys_only and not holding:
                rows = _first_of_keys(rows, seen, funnel).drop_columns(["dupkey"])
            pending.append(rows)
            n_pending += rows.num_rows
            if n_pending >= SPOOL_BATCH:
                writer.write_table(pa.Table.from_batches(pending, schema=schema))
                pending, n_pending = [], 0
        writer.write_table(pa.Table.from_batches(pending, schema=schema))


def _first_of_keys(rows, seen: set[int], funnel: Counter):
    """``rows`` without the later posts of a duplicate key already in ``seen`` (64-bit prefixes), counted."""
    import pyarrow as pa

    first = [True] * rows.num_rows
    for i, key in enumerate(rows.column("dupkey").to_pylist()):
        if key is None:
            continue
        prefix = int.from_bytes(key[:8], "little")
        if prefix in seen:
            first[i] = False
        else:
            seen.add(prefix)
    dropped = first.count(False)
    if dropped:
        funnel["dropped_duplicate"] += dropped
        rows = rows.filter(pa.array(first))
    return rows


#: POI methods whose ``poi`` values are not place names (generated ``poi-000`` ids)
_CLUSTER_METHODS = ("hdbscan", "dbscan", "grid")


def spool_place_keys(spool: Path, config: PrepareConfig, known_centres: pd.DataFrame | None) -> frozenset[str]:
    """The POI table's names as hashtag keys (:func:`postloc.text.names.place_keys`).

    The labels the posts carry (when they are the POIs), their location names (``poi_name``) and the
    ``--pois`` table's ids and names: the names of the POIs, not any post's own label, so what they
    keep is the same for a training and a test post (docs/data.md).
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["poi_name"] if config.poi_method in _CLUSTER_METHODS else ["poi", "poi_name"]
    names: set[str] = set()
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH, columns=columns):
        for column in batch.columns:
            names.update(v for v in pc.unique(column).to_pylist() if v)
    if known_centres is not None:
        for column in ("name",) if config.poi_method in _CLUSTER_METHODS else ("poi", "name"):
            if column in known_centres:
                names.update(str(v) for v in known_centres[column].dropna())
    return place_keys(sorted(names))


def settle_spool(spool: Path, places: frozenset[str], funnel: Counter, *, keys_only: bool) -> None:
    """Drop the held posts (judged outside ``--languages``) whose hashtags name no POI, then (without
    ``keys_only``) the later duplicates; rewrite ``spool`` without ``held``. Nothing to do without it.

    A held post whose hashtags name a POI (``#hosierlane`` under a German caption) is kept and counted
    as ``kept_hashtags_name_place``: the tag is the evidence for its place whatever the caption's language.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(spool)
    if "held" not in source.schema_arrow.names:
        return
    schema = spool_schema(keys=keys_only)
    settled = spool.with_name(spool.stem + "-settled.parquet")
    seen: set[int] = set()
    with pq.ParquetWriter(settled, schema) as writer:
        for batch in source.iter_batches(batch_size=SPOOL_BATCH):
            held = batch.column("held").to_pylist()
            keep = [not h for h in held]
            held_at = [i for i, h in enumerate(held) if h]
            if held_at:
                tags = batch.column("hashtags").take(pa.array(held_at)).to_pylist()
                for i, post_tags in zip(held_at, tags, strict=True):
                    keep[i] = any(names_place(tag, places) for tag in post_tags)
                rescued = sum(keep[i] for i in held_at)
                funnel["kept_hashtags_name_place"] += rescued
                funnel["dropped_language"] += len(held_at) - rescued
                batch = batch.filter(pa.array(keep))
            batch = batch.drop_columns(["held"])
            if not keys_only:
                batch = _first_of_keys(batch, seen, funnel).drop_columns(["dupkey"])
            writer.write_table(pa.Table.from_batches([batch], schema=schema))
    settled.replace(spool)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a per-post phase (cleaning, writing the outputs).

    Those phases allocate millions of short-lived, acyclic lists and dicts; each few hundred
    allocations set off a collection that walks every tracked object, about 7 % of ``prepare``'s
    time at 100k posts. Reference counting frees them all the same; the collector runs again
    (and finds any cycles) as soon as the phase ends.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: Posts from which :func:`release_cleaning_memory` gives memory back: below it the engines' steps
#: are small, and reloading the language model (about 0.5 s) in the next ``prepare`` of the same
#: process (tests, the Fig. 4 threshold sweep) would cost more than it saves.
RELEASE_FROM_POSTS = 200_000


def release_cleaning_memory(posts_read: int) -> None:
    """Give back what steps 1-3 no longer need before the engines' steps grow (docs/scale-prepare.md).

    The language model (about 75 MB), and the freed memory that Arrow's allocator and the C
    heap keep for reuse: at 1M posts this lowers ``prepare``'s peak, which comes when the engine
    loads the spool while the cleaning's memory is still resident. Only from
    :data:`RELEASE_FROM_POSTS` posts read.
    """
    import ctypes
    import gc

    import pyarrow as pa

    if posts_read < RELEASE_FROM_POSTS:
        return
    unload_language_model()
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim  # glibc: return free heap pages to the system
    except (OSError, AttributeError):  # another C library: nothing to trim
        return
    trim(0)


# --- outputs -------------------------------------------------------------------------------


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


#: ``json.dumps(..., ensure_ascii=False)`` builds an encoder per call; one encoder gives the same
#: bytes. A prepared row holds only strings, numbers and lists of strings: nothing circular to check.
_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False)


class PreparedPostsWriter:
    """``posts.parquet`` and ``posts.jsonl`` in ``work``, from spool rows and the engine's decisions.

    Rows are added in input order; :meth:`end_row_group` closes a Parquet row group (empty
    ones included). Both engines end one group per :data:`SPOOL_BATCH` de-duplicated posts,
    which is what makes their Parquet files byte-identical. A row group's values are kept
    column by column until it is written.
    """

    def __init__(self, work: Path, vocabulary: set[str]):
        self.work = work
        self.vocabulary = vocabulary
        self.schema = prepared_schema()
        self.columns: dict[str, list] = {name: [] for name in self.schema.names}
        self._stack = ExitStack()

    def __enter__(self) -> PreparedPostsWriter:
        import pyarrow.parquet as pq

        self._parquet = self._stack.enter_context(pq.ParquetWriter(self.work / POSTS, self.schema))
        self._jsonl = self._stack.enter_context(open(self.work / POSTS_JSONL, "w", encoding="utf-8", newline="\n"))
        return self

    def __exit__(self, *exc) -> bool:
        return bool(self._stack.__exit__(*exc))

    def add(self, row: dict[str, Any], poi: str | None, split: str | None) -> None:
        """One kept post: its hashtags cut to the vocabulary, its POI, split and flags."""
        tags = [t for t in row["hashtags"] if t in self.vocabulary]
        out = {key: row[key] for key in PREPARED_COLUMNS}
        out.update(hashtags=tags, poi=poi, split=split, flags=post_flags(row["text"], tags, row["image"], row["lang"]))
        for name, values in self.columns.items():
            values.append(out[name])
        self._jsonl.write(_JSON.encode(exchange_record(out)) + "\n")

    def end_row_group(self) -> None:
        import pyarrow as pa

        self._parquet.write_table(pa.Table.from_pydict(self.columns, schema=self.schema))
        self.columns = {name: [] for name in self.schema.names}


def add_label_notes(summary: dict[str, Any], merges: list[dict[str, Any]], n_posts: int, funnel: Counter) -> None:
    """What the summary says of POI labels the posts carry: how many posts carry one when not all
    do (``labelled_posts``: the POIs come from those), and the near-duplicate labels merged. Absent
    otherwise, so a summary without either reads as before."""
    unlabelled = int(funnel.get("dropped_no_poi_label", 0))
    if unlabelled:
        summary["labelled_posts"] = {"labelled": n_posts - unlabelled, "posts": n_posts}
    if merges:
        summary["poi_merges"] = merges


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
