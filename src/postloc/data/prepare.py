"""``postloc prepare``: the paper's cleaning (Sec. IV-A), POIs and user-disjoint splits.

Steps, in order, each counted in the funnel of the summary:

1. read (``--skip-bad`` counts and skips bad records), normalise text (NFKC), take hashtags
   from the text when the post has none, lowercase them for matching;
2. keep English captions only (py3langid); captions too short to judge are kept and flagged;
3. drop duplicates (same user, same text and tags, same place);
4. POIs: the labels when the posts carry them, else clusters of their coordinates;
5. drop hashtags used by fewer than ``min_hashtag_count`` posts (paper: 50), counted over
   the posts that have a POI; posts left with no text, no hashtag and no image are dropped;
6. drop POIs with fewer than ``min_poi_posts`` posts (paper: 100) or ``min_poi_users`` users;
7. split users (not posts) into train/val/test, stratified by POI.

Memory stays bounded for large inputs: step 1-3 stream into a Parquet spool, later steps
read only the light columns they need, and the outputs are written in batches. Two engines
run steps 3-7 (``PrepareConfig.engine``): ``memory`` (default) holds one light row per post
in pandas; ``duckdb`` (:mod:`postloc.data.prepare_duckdb`, the optional ``postloc[duckdb]``
extra) runs them as SQL over the spool under a memory limit, spilling to disk, for 10M+
posts; both write the same files (docs/scale-prepare.md). The whole
output folder is built under a temporary name and swapped in at the end, so an interrupted
run leaves the previous result (or nothing) and a re-run with the same input and settings
writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from postloc.io.atomic import write_folder_atomically
from postloc.data.filters import count_hashtags, duplicate_key, frequent_hashtags, place_key
from postloc.data.pois import PoiConfig, cluster_coordinates, name_from_hashtags, poi_table
from postloc.data.readers import SkipReport, read_posts
from postloc.data.splits import SplitConfig, user_disjoint_split
from postloc.data.summary import build_summary, summary_markdown
from postloc.errors import EmptyDatasetError, PostlocError
from postloc.text.language import detect_language
from postloc.text.normalize import extract_hashtags, normalize_hashtags, normalize_text

SPOOL_BATCH = 8192
ENGINES = ("memory", "duckdb")
WORKER_CHUNK = 2048  # posts per task sent to a --workers process


@dataclass(frozen=True)
class ReadOptions:
    """How to read the input: format (auto from the name), CSV/Parquet column mapping, list separator."""

    format: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    list_sep: str = ";"
    skip_bad: bool = False


@dataclass(frozen=True)
class PrepareConfig:
    """Every threshold of the cleaning; defaults follow the paper where it gives a number."""

    min_hashtag_count: int = 50
    languages: tuple[str, ...] = ("en",)  # empty: keep every language
    min_language_letters: int = 12  # fewer letters than this: too short to judge, kept and flagged
    drop_duplicates: bool = True
    drop_empty: bool = True  # posts with no text, no kept hashtag and no image carry nothing to learn
    poi_method: str = "auto"  # auto: labels when posts have them, else hdbscan
    min_poi_posts: int = 100
    min_poi_users: int = 3
    poi_min_samples: int = 10
    poi_eps_m: float = 75.0
    poi_cell_m: float = 250.0
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2
    seed: int = 0
    # how, not what: none of these changes the prepared posts, POIs or splits on data that fits the sample
    engine: str = "memory"  # memory (pandas, the default) or duckdb (out-of-core, `pip install 'postloc[duckdb]'`)
    memory_limit: str = "1GB"  # duckdb engine: SET memory_limit; it spills to a temp folder in the output's work folder
    workers: int = 1  # processes for the per-post stage (NFKC, hashtags, language id); order is kept
    poi_sample: int = 200_000  # duckdb engine: HDBSCAN/DBSCAN on at most this many seeded points, the rest by nearest centre

    def poi_config(self, method: str) -> PoiConfig:
        return PoiConfig(method=method, min_posts=self.min_poi_posts, min_users=self.min_poi_users,
                         min_samples=self.poi_min_samples, eps_m=self.poi_eps_m, cell_m=self.poi_cell_m)

    def split_config(self) -> SplitConfig:
        return SplitConfig(train=self.train, val=self.val, test=self.test, seed=self.seed)


@dataclass
class PrepareResult:
    out_dir: Path
    summary: dict[str, Any]
    skip_report: SkipReport

    @property
    def markdown(self) -> str:
        return summary_markdown(self.summary)


def prepare(
    source: str | Path,
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    read: ReadOptions | None = None,
    *,
    pois_csv: str | Path | None = None,
    progress: bool = False,
) -> PrepareResult:
    """Clean ``source`` into ``out_dir``: posts (JSONL + Parquet), POI table, hashtag stats, manifest, summary."""
    config = config or PrepareConfig()
    read = read or ReadOptions()
    source, out_dir = Path(source), Path(out_dir)
    _check_config(config)
    if config.engine == "duckdb":
        from postloc.data.prepare_duckdb import require_duckdb

        require_duckdb()  # fail before reading a large input
    report = SkipReport()
    known_centres = _read_poi_csv(pois_csv) if pois_csv else None

    _refuse_foreign_folder(out_dir)
    outcome: dict[str, Any] = {}
    write_folder_atomically(
        out_dir, lambda work: outcome.update(summary=_build(source, work, config, read, report, known_centres,
                                                            pois_csv, progress)))
    return PrepareResult(out_dir=out_dir, summary=outcome["summary"], skip_report=report)


def _build(source: Path, work: Path, config: PrepareConfig, read: ReadOptions, report: SkipReport,
           known_centres: pd.DataFrame | None, pois_csv: str | Path | None, progress: bool) -> dict[str, Any]:
    """Steps 1-7 into the (temporary) folder ``work``; returns the summary."""
    funnel: Counter = Counter()
    spool = work / "spool.parquet"
    posts = read_posts(source, format=read.format, columns=read.columns, list_sep=read.list_sep,
                       skip_bad=read.skip_bad, report=report)
    out_of_core = config.engine == "duckdb"
    _spool_clean_posts(_progress(posts, progress, "reading"), spool, config, funnel, keys_only=out_of_core)
    funnel["read"] = report.read
    funnel["skipped_bad"] = report.skipped
    if out_of_core:
        from postloc.data.prepare_duckdb import build_duckdb

        summary, method = build_duckdb(spool, work, config, funnel, known_centres, source, progress)
    else:
        summary, method = _build_in_memory(spool, work, config, funnel, known_centres, source, progress)
    spool.unlink()
    summary["poi_method"] = method
    (work / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (work / "summary.md").write_text(summary_markdown(summary))
    manifest = {
        "postloc_prepared": 1,
        "input": {"path": source.name, "sha256": fingerprint(source), "format": read.format or "auto",
                  "columns": dict(read.columns), "list_sep": read.list_sep, "skip_bad": read.skip_bad},
        "config": asdict(config),
        "poi_method": method,
        "pois_csv": Path(pois_csv).name if pois_csv else None,
        "skipped": report.to_dict(),
        "funnel": dict(funnel),
        "outputs": sorted(p.name for p in work.iterdir()) + ["manifest.json"],
        "versions": _versions(config.engine),
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return summary


def _build_in_memory(spool: Path, work: Path, config: PrepareConfig, funnel: Counter,
                     known_centres: pd.DataFrame | None, source: Path, progress: bool) -> tuple[dict, str]:
    """Steps 3-7 with one light pandas row per post; returns (summary, POI method)."""
    meta = pd.read_parquet(spool, columns=["poi", "lat", "lon", "user", "poi_name", "n_text", "n_images"])
    if meta.empty:
        raise EmptyDatasetError(_empty_message(source, funnel, "after reading and cleaning"))

    method = _assign_pois(meta, config, funnel)
    has_poi = meta["poi"].notna().to_numpy()
    counts = count_hashtags(_spool_column(spool, "hashtags", has_poi))
    vocabulary = frequent_hashtags(counts, config.min_hashtag_count)
    kept_tags = np.fromiter((any(t in vocabulary for t in tags) for tags in _spool_column(spool, "hashtags")), bool, len(meta))
    has_content = kept_tags | (meta["n_text"].to_numpy() > 0) | (meta["n_images"].to_numpy() > 0)
    keep = has_poi.copy()
    if config.drop_empty:
        funnel["dropped_empty"] = int((keep & ~has_content).sum())
        keep &= has_content
    keep = _filter_small_pois(meta, keep, config, funnel)
    if not keep.any():
        raise EmptyDatasetError(_empty_message(source, funnel, "after the POI filters"))
    meta["split"] = None
    meta.loc[keep, "split"] = user_disjoint_split(meta.loc[keep, "user"], meta.loc[keep, "poi"], config.split_config())
    funnel["kept"] = int(keep.sum())

    pois = poi_table(meta.loc[keep], known_centres)
    _write_posts(spool, meta, keep, vocabulary, work, progress)
    vocab_stats = pd.DataFrame(
        sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), columns=["hashtag", "posts"]
    )
    vocab_stats["kept"] = vocab_stats["hashtag"].isin(vocabulary)
    _write_csv(vocab_stats, work / "hashtags.csv")

    prepared = pd.read_parquet(work / "posts.parquet", columns=["user", "poi", "split", "hashtags", "image", "text"])
    if method != "labels":
        named = name_from_hashtags(prepared[prepared["split"] == "train"])
        unnamed = pois["name"].fillna("").eq("")
        pois.loc[unnamed, "name"] = pois.loc[unnamed, "poi"].map(named).fillna("")
    _write_csv(pois, work / "pois.csv")
    return build_summary(prepared, funnel, n_vocabulary=len(vocabulary)), method


# --- step 1-3: read, normalise, language, duplicates -> spool -----------------------------

def _spool_schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("text", pa.string()), ("hashtags", pa.list_(pa.string())),
        ("image", pa.list_(pa.string())), ("poi", pa.string()), ("poi_name", pa.string()),
        ("lat", pa.float64()), ("lon", pa.float64()), ("user", pa.string()), ("created", pa.string()),
        ("lang", pa.string()), ("n_text", pa.int32()), ("n_images", pa.int32()), ("extra", pa.string()),
    ])


def _clean_post(post, config: PrepareConfig, keys_only: bool) -> dict | None:
    """One spool row (normalised text, matching hashtags, language), or None if its language is dropped.

    ``_dup`` holds the duplicate key: the tuple itself, or (``keys_only``, for the duckdb
    engine) a stable 128-bit digest of it that SQL can group by.
    """
    text = normalize_text(post.text)
    tags = normalize_hashtags(post.hashtags or extract_hashtags(text))
    lang = None
    if text:
        lang, _ = detect_language(text, min_letters=config.min_language_letters)
        if lang is not None and config.languages and lang not in config.languages:
            return None
    key = None
    if config.drop_duplicates:
        key = duplicate_key(post.user, text, tags, place_key(post.poi, post.lat, post.lon))
        if key is not None and keys_only:
            key = hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()
    extra = dict(post.extra)
    poi_name = extra.pop("poi_name", None)
    return {
        "id": post.id, "text": text, "hashtags": tags, "image": post.images, "poi": post.poi,
        "poi_name": None if poi_name is None else str(poi_name), "lat": post.lat, "lon": post.lon,
        "user": post.user, "created": post.created, "lang": lang, "n_text": len(text),
        "n_images": len(post.images),
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str) if extra else None,
        "_dup": key,
    }


def _clean_chunk(posts: list, config: PrepareConfig, keys_only: bool) -> list[dict | None]:
    return [_clean_post(post, config, keys_only) for post in posts]


def _cleaned(posts, config: PrepareConfig, keys_only: bool) -> Iterator[dict | None]:
    """Rows in input order; with ``config.workers > 1`` cleaned by a process pool in ordered chunks."""
    if config.workers <= 1:
        for post in posts:
            yield _clean_post(post, config, keys_only)
        return
    import multiprocessing
    from collections import deque

    # a bounded window of chunks in flight (Pool.imap would read the whole input ahead)
    clean = partial(_clean_chunk, config=config, keys_only=keys_only)
    pending: deque = deque()
    with multiprocessing.get_context("spawn").Pool(config.workers) as pool:
        for chunk in iter(lambda: list(islice(posts, WORKER_CHUNK)), []):
            pending.append(pool.apply_async(clean, (chunk,)))
            if len(pending) >= 2 * config.workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def _spool_clean_posts(posts, spool: Path, config: PrepareConfig, funnel: Counter, *, keys_only: bool = False) -> None:
    """Steps 1-3 into ``spool``. The memory engine drops duplicates here (a set of key hashes);
    with ``keys_only`` each row keeps its key digest in a ``dupkey`` column for SQL instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _spool_schema()
    if keys_only:
        schema = schema.append(pa.field("dupkey", pa.binary()))
    seen: set[int] = set()
    batch: list[dict] = []
    with pq.ParquetWriter(spool, schema) as writer:
        for row in _cleaned(iter(posts), config, keys_only):
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


def _spool_column(spool: Path, column: str, mask: np.ndarray | None = None) -> Iterator[list]:
    """Values of one column, batch by batch, optionally only where ``mask`` is true."""
    import pyarrow.parquet as pq

    offset = 0
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH, columns=[column]):
        values = batch.column(0).to_pylist()
        if mask is None:
            yield from values
        else:
            yield from (v for v, m in zip(values, mask[offset:offset + len(values)]) if m)
        offset += len(values)


# --- step 4 and 6: POIs ------------------------------------------------------------------

def _assign_pois(meta: pd.DataFrame, config: PrepareConfig, funnel: Counter) -> str:
    """Fill ``meta.poi`` (None where a post has no POI) and return the method used."""
    labelled = meta["poi"].notna()
    method = config.poi_method
    if method == "auto":
        method = "labels" if labelled.any() else "hdbscan"
    if method == "labels":
        if not labelled.any():
            raise PostlocError("--poi-method labels: no post has a \"poi\" label; use hdbscan, dbscan or grid")
        funnel["dropped_no_poi_label"] = int((~labelled).sum())
        return method
    has_xy = meta["lat"].notna() & meta["lon"].notna()
    funnel["dropped_no_coordinates"] = int((~has_xy).sum())
    clusters = cluster_coordinates(meta.loc[has_xy, "lat"].to_numpy(), meta.loc[has_xy, "lon"].to_numpy(),
                                   config.poi_config(method))
    width = max(3, len(str(max(int(clusters.max(initial=-1)), 0))))
    names = np.array([f"poi-{c:0{width}d}" if c >= 0 else None for c in clusters], dtype=object)
    meta["poi"] = None
    meta.loc[has_xy, "poi"] = names
    funnel["dropped_outside_pois"] = int((has_xy & meta["poi"].isna()).sum())
    return method


def _filter_small_pois(meta: pd.DataFrame, keep: np.ndarray, config: PrepareConfig, funnel: Counter) -> np.ndarray:
    kept = meta.loc[keep]
    stats = kept.groupby("poi").agg(posts=("poi", "size"), users=("user", "nunique"))
    good = stats.index[(stats["posts"] >= config.min_poi_posts) & (stats["users"] >= config.min_poi_users)]
    small = keep & ~meta["poi"].isin(good).to_numpy()
    funnel["dropped_small_poi"] = int(small.sum())
    funnel["pois_dropped"] = int(len(stats) - len(good))
    return keep & ~small


# --- step 7 and outputs --------------------------------------------------------------------

def prepared_schema():
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("text", pa.string()), ("hashtags", pa.list_(pa.string())),
        ("image", pa.list_(pa.string())), ("poi", pa.string()), ("poi_name", pa.string()),
        ("lat", pa.float64()), ("lon", pa.float64()), ("user", pa.string()), ("created", pa.string()),
        ("split", pa.string()), ("lang", pa.string()), ("flags", pa.list_(pa.string())), ("extra", pa.string()),
    ])


def _flags(text: str, tags: list[str], images: list[str], lang: str | None) -> list[str]:
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


def _write_posts(spool: Path, meta: pd.DataFrame, keep: np.ndarray, vocabulary: set[str], work: Path,
                 progress: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = prepared_schema()
    poi, split = meta["poi"].to_numpy(), meta["split"].to_numpy()
    offset = 0
    with pq.ParquetWriter(work / "posts.parquet", schema) as writer, \
            open(work / "posts.jsonl", "w", encoding="utf-8", newline="\n") as jsonl:
        batches = pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH)
        for batch in _progress(batches, progress, "writing", total=-(-len(meta) // SPOOL_BATCH), unit="batch"):
            rows = []
            for i, row in enumerate(batch.to_pylist(), start=offset):
                if not keep[i]:
                    continue
                tags = [t for t in row["hashtags"] if t in vocabulary]
                out = {k: row[k] for k in ("id", "text", "image", "poi_name", "lat", "lon", "user", "created", "lang", "extra")}
                out.update(hashtags=tags, poi=poi[i], split=split[i],
                           flags=_flags(row["text"], tags, row["image"], row["lang"]))
                rows.append(out)
                jsonl.write(json.dumps(_exchange_record(out), ensure_ascii=False) + "\n")
            offset += batch.num_rows
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))


def _exchange_record(row: dict) -> dict:
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


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.7f", lineterminator="\n")


def _read_poi_csv(path: str | Path) -> pd.DataFrame:
    from postloc.errors import BadInputError

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"poi": str})
    except (OSError, ValueError) as error:
        raise BadInputError(path, None, None, f"cannot be read as a POI table: {error}") from None
    missing = {"poi", "lat", "lon"} - set(table.columns)
    if missing:
        raise BadInputError(path, 1, None, f"POI table needs columns poi,lat,lon[,name]; missing {sorted(missing)}")
    for number, row in enumerate(table.itertuples(index=False), start=2):
        lat, lon = pd.to_numeric(row.lat, errors="coerce"), pd.to_numeric(row.lon, errors="coerce")
        if not (-90 <= lat <= 90):
            raise BadInputError(path, number, "lat", f"must be a number in [-90, 90], got {row.lat!r}")
        if not (-180 <= lon <= 180):
            raise BadInputError(path, number, "lon", f"must be a number in [-180, 180], got {row.lon!r}")
    return table


def _refuse_foreign_folder(out_dir: Path) -> None:
    """Only an earlier prepared dataset (or an empty folder) may be replaced: never a user's other files."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").exists():
        raise PostlocError(f"{out_dir} exists and is not a prepared dataset; refusing to replace it")


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of a folder's file names and contents (images by size only, to stay fast)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        if file.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".mp4") and path.is_dir():
            digest.update(str(file.stat().st_size).encode())
            continue
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _versions(engine: str = "memory") -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    names = ("postloc", "numpy", "pandas", "pyarrow", "scikit-learn", "py3langid") + (("duckdb",) if engine == "duckdb" else ())
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _check_config(config: PrepareConfig) -> None:
    if config.min_poi_posts < 1 or config.min_poi_users < 1:
        raise PostlocError("min_poi_posts and min_poi_users must be at least 1")
    if config.min_hashtag_count < 0:
        raise PostlocError("min_hashtag_count must be >= 0")
    if config.poi_method not in ("auto", "labels", "hdbscan", "dbscan", "grid"):
        raise PostlocError(f"unknown POI method {config.poi_method!r}; use auto, labels, hdbscan, dbscan or grid")
    if config.engine not in ENGINES:
        raise PostlocError(f"unknown engine {config.engine!r}; use {' or '.join(ENGINES)}")
    if config.workers < 1:
        raise PostlocError(f"workers must be at least 1, got {config.workers}")
    if config.poi_sample < 2:
        raise PostlocError(f"poi_sample must be at least 2, got {config.poi_sample}")
    config.split_config().fractions()


def _empty_message(source: Path, funnel: Counter, stage: str) -> str:
    steps = ", ".join(f"{k}={v}" for k, v in sorted(funnel.items()) if v)
    return f"{source}: no posts left {stage} ({steps or 'the input holds no posts'}); loosen the thresholds or check the input"


def _progress(iterable, enabled: bool, desc: str, **kwargs):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit=kwargs.pop("unit", "post"), dynamic_ncols=True, **kwargs)
