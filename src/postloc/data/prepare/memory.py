"""The default engine of ``prepare`` (``--engine memory``): steps 3-7 with one light pandas row per post.

Only the light columns (POI, coordinates, user, content counts) are held in memory; hashtags
are streamed from the spool when counted, and the output rows are streamed from it when
written, so memory grows with the number of posts, not with their text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.filters import count_hashtags, frequent_hashtags, passing_pois
from postloc.data.pois import (
    cluster_coordinates,
    cluster_tag_counts,
    label_sums,
    merge_near_duplicate_labels,
    name_clusters,
    name_unnamed_by_coordinates,
    poi_table,
)
from postloc.data.prepare.config import PrepareConfig
from postloc.data.prepare.steps import (
    SPOOL_BATCH,
    EngineInput,
    PreparedPostsWriter,
    add_label_notes,
    empty_message,
    progress,
    write_csv,
)
from postloc.data.prepared import HASHTAGS, POIS, POSTS
from postloc.data.splits import user_disjoint_split
from postloc.data.summary import build_summary
from postloc.errors import EmptyDatasetError, PostlocError
from postloc.io.escape import HASHTAG_TEXT_COLUMNS, csv_guard_columns


def build_in_memory(job: EngineInput) -> tuple[dict[str, Any], str]:
    """Steps 3-7 over ``job.spool`` into ``job.work``; returns (summary, POI method)."""
    spool, work, config, funnel, known_centres = job.spool, job.work, job.config, job.funnel, job.known_centres
    source, show_progress, places = job.source, job.show_progress, job.places
    meta = pd.read_parquet(spool, columns=["poi", "lat", "lon", "user", "poi_name", "n_text", "n_images"])
    if meta.empty:
        raise EmptyDatasetError(empty_message(source, funnel, "after reading and cleaning"))

    method, merges = _assign_pois(meta, config, funnel)
    has_poi = meta["poi"].notna().to_numpy()
    counts = count_hashtags(_spool_column(spool, "hashtags", has_poi))
    vocabulary = frequent_hashtags(counts, config.min_hashtag_count, places)
    kept_tags = np.fromiter(
        (any(t in vocabulary for t in tags) for tags in _spool_column(spool, "hashtags")), bool, len(meta)
    )
    has_content = kept_tags | (meta["n_text"].to_numpy() > 0) | (meta["n_images"].to_numpy() > 0)
    keep = has_poi.copy()
    if config.drop_empty:
        funnel["dropped_empty"] = int((keep & ~has_content).sum())
        keep &= has_content
    keep = _filter_small_pois(meta, keep, config, funnel)
    if not keep.any():
        raise EmptyDatasetError(empty_message(source, funnel, "after the POI filters"))
    meta["split"] = None
    meta.loc[keep, "split"] = user_disjoint_split(meta.loc[keep, "user"], meta.loc[keep, "poi"], config.split_config())
    funnel["kept"] = int(keep.sum())

    pois = poi_table(meta.loc[keep], known_centres)
    _write_posts(spool, meta, keep, vocabulary, work, show_progress)
    by_use: list[tuple[str, int]] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    vocab_stats = pd.DataFrame(by_use, columns=["hashtag", "posts"])
    vocab_stats["kept"] = vocab_stats["hashtag"].isin(vocabulary)
    write_csv(csv_guard_columns(vocab_stats, HASHTAG_TEXT_COLUMNS), work / HASHTAGS)  # a given tag may be =x

    if method != "labels":
        train = pd.read_parquet(work / POSTS, columns=["poi", "hashtags"], filters=[("split", "==", "train")])
        named = name_clusters(*cluster_tag_counts(train))
        del train
        unnamed = pois["name"].fillna("").eq("")
        pois.loc[unnamed, "name"] = pois.loc[unnamed, "poi"].map(named).fillna("")
        pois = name_unnamed_by_coordinates(pois)
    write_csv(csv_guard_columns(pois), work / POIS)  # ids and names: no formulas in a spreadsheet
    n_places = sum(1 for tag in vocabulary if counts[tag] < config.min_hashtag_count)
    summary = build_summary(_written_posts(work / POSTS), funnel, len(vocabulary), n_places)
    add_label_notes(summary, merges, len(meta), funnel)
    return summary, method


def _written_posts(path: Path) -> pd.DataFrame:
    """User, POI and split of the written posts, and whether each has text, hashtags and images.

    Booleans, not the texts and lists themselves, read a batch at a time: at 1M posts, loading
    those whole set this engine's peak memory.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = []
    columns = ["user", "poi", "split", "text", "hashtags", "image"]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=SPOOL_BATCH, columns=columns):
        frame = batch.select(["user", "poi", "split"]).to_pandas()
        frame["has_text"] = pc.fill_null(pc.greater(pc.utf8_length(batch["text"]), 0), False).to_numpy(
            zero_copy_only=False
        )
        for column, flag in (("hashtags", "has_hashtags"), ("image", "has_image")):
            frame[flag] = pc.fill_null(pc.greater(pc.list_value_length(batch[column]), 0), False).to_numpy(
                zero_copy_only=False
            )
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _spool_column(spool: Path, column: str, mask: np.ndarray | None = None) -> Iterator[list]:
    """Values of one column, batch by batch, optionally only where ``mask`` is true."""
    import pyarrow.parquet as pq

    offset = 0
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH, columns=[column]):
        values = batch.column(0).to_pylist()
        if mask is None:
            yield from values
        else:
            yield from (v for v, m in zip(values, mask[offset : offset + len(values)], strict=True) if m)
        offset += len(values)


# --- step 4 and 6: POIs ------------------------------------------------------------------


def _assign_pois(meta: pd.DataFrame, config: PrepareConfig, funnel: Counter) -> tuple[str, list[dict[str, Any]]]:
    """Fill ``meta.poi`` (None where a post has no POI); return the method used and the labels merged
    (:func:`postloc.data.pois.merge_near_duplicate_labels`: one place's spellings become one POI)."""
    labelled = meta["poi"].notna()
    method = config.poi_method
    if method == "auto":
        method = "labels" if labelled.any() else "hdbscan"
    if method == "labels":
        if not labelled.any():
            raise PostlocError('--poi-method labels: no post has a "poi" label; use hdbscan, dbscan or grid')
        funnel["dropped_no_poi_label"] = int((~labelled).sum())
        stats = label_sums(meta.loc[labelled, ["poi", "poi_name", "lat", "lon"]])
        mapping, merges = merge_near_duplicate_labels(stats, config.poi_config(method).merge_m)
        if mapping:
            meta["poi"] = meta["poi"].map(lambda poi: mapping.get(poi, poi))
        return method, merges
    has_xy = meta["lat"].notna() & meta["lon"].notna()
    funnel["dropped_no_coordinates"] = int((~has_xy).sum())
    clusters = cluster_coordinates(
        meta.loc[has_xy, "lat"].to_numpy(), meta.loc[has_xy, "lon"].to_numpy(), config.poi_config(method)
    )
    width = max(3, len(str(max(int(clusters.max(initial=-1)), 0))))
    names = np.array([f"poi-{c:0{width}d}" if c >= 0 else None for c in clusters], dtype=object)
    meta["poi"] = None
    meta.loc[has_xy, "poi"] = names
    funnel["dropped_outside_pois"] = int((has_xy & meta["poi"].isna()).sum())
    return method, []


def _filter_small_pois(meta: pd.DataFrame, keep: np.ndarray, config: PrepareConfig, funnel: Counter) -> np.ndarray:
    kept = meta.loc[keep]
    # a post without a user is a user of its own, as in the splits (else such POIs have 0 users)
    anonymous = kept["user"].isna()
    stats = kept.groupby("poi").agg(posts=("poi", "size"), users=("user", "nunique"))
    stats["users"] += anonymous.groupby(kept["poi"]).sum().reindex(stats.index, fill_value=0)
    good = sorted(
        passing_pois(
            {str(k): int(v) for k, v in stats["posts"].items()},
            {str(k): int(v) for k, v in stats["users"].items()},
            config.min_poi_posts,
            config.min_poi_users,
        )
    )
    small = keep & ~meta["poi"].isin(good).to_numpy()
    funnel["dropped_small_poi"] = int(small.sum())
    funnel["pois_dropped"] = int(len(stats) - len(good))
    return keep & ~small


# --- step 7 and outputs --------------------------------------------------------------------


def _write_posts(
    spool: Path, meta: pd.DataFrame, keep: np.ndarray, vocabulary: set[str], work: Path, show_progress: bool
) -> None:
    """The kept posts, one row group per spool batch."""
    import pyarrow.parquet as pq

    poi, split = meta["poi"].to_numpy(), meta["split"].to_numpy()
    offset = 0
    with PreparedPostsWriter(work, vocabulary) as writer:
        batches = pq.ParquetFile(spool).iter_batches(batch_size=SPOOL_BATCH)
        for batch in progress(batches, show_progress, "writing", total=-(-len(meta) // SPOOL_BATCH), unit="batch"):
            for i, row in enumerate(batch.to_pylist(), start=offset):
                if keep[i]:
                    writer.add(row, poi[i], split[i])
            offset += batch.num_rows
            writer.end_row_group()
