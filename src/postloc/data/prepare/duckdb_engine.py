"""The out-of-core engine of ``prepare`` (``--engine duckdb``): steps 3-7 as SQL over the spool.

The per-post Python stage (NFKC, hashtags, language id; optionally over ``--workers``
processes) streams into the same Parquet spool as the default engine. From there the
relational work runs in DuckDB under ``SET memory_limit`` with a temp folder inside the
output's work folder, so it spills to disk instead of growing:

* duplicates: the first post (input order) of each duplicate-key digest is kept;
* POIs: labels, grid cells (SQL), or HDBSCAN/DBSCAN on at most ``poi_sample`` seeded points
  with every post assigned to the nearest cluster centre within that cluster's radius
  (:mod:`postloc.data.prepare.poi_sample`); below ``poi_sample`` points it clusters them all, exactly
  as the default engine does;
* hashtag counts, the empty-post and small-POI filters, (user, POI) pair counts for the
  splits, the POI table, the summary and the POI names.

Only aggregates reach Python: the hashtag vocabulary, (user, POI) pair counts, one row per
POI. The output rows are formatted by the same code as the default engine, streamed in
input order and cut into the same Parquet row groups, so both engines write the same bytes
(docs/scale-prepare.md).
"""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.filters import passing_pois
from postloc.data.pois import (
    EARTH_RADIUS_KM,
    POI_METHODS,
    apply_known_centres,
    cluster_coordinates,
    merge_near_duplicate_labels,
    name_clusters,
    name_unnamed_by_coordinates,
)
from postloc.data.prepare.config import PrepareConfig
from postloc.data.prepare.duckdb_connection import FETCH_ROWS, arrow_batches, connect, plain_path, quote, scalar
from postloc.data.prepare.poi_sample import assign_to_sample_clusters
from postloc.data.prepare.steps import (
    SPOOL_BATCH,
    EngineInput,
    PreparedPostsWriter,
    add_label_notes,
    empty_message,
    progress_bar,
    write_csv,
)
from postloc.data.prepared import HASHTAGS, POIS, POSTS
from postloc.data.splits import SPLITS, assign_users
from postloc.data.summary import assemble_summary, split_stats
from postloc.errors import EmptyDatasetError, PostlocError
from postloc.io.escape import HASHTAG_TEXT_COLUMNS, csv_guard_columns
from postloc.text.names import names_place


def build_duckdb(job: EngineInput) -> tuple[dict[str, Any], str]:
    """Steps 3-7 over ``job.spool`` into ``job.work``; returns (summary, POI method).

    The held posts (judged outside ``--languages``) were settled first, in Python, as for the default
    engine (:func:`settle_spool`, keys only); the duplicates are left to SQL.

    DuckDB sees ``work`` and ``spool`` by plain paths (:func:`plain_path`): the output's name is
    the user's, and DuckDB would read ``?``, ``\\`` or ``*`` in it as options, separators or globs.
    """
    spool, work, config, funnel, known_centres = job.spool, job.work, job.config, job.funnel, job.known_centres
    source, show_progress, places = job.source, job.show_progress, job.places
    with contextlib.ExitStack() as paths:
        plain_work = paths.enter_context(plain_path(work))
        plain_spool = paths.enter_context(plain_path(spool.parent)) / spool.name
        scratch = plain_work / ".duckdb"
        con = connect(scratch, config.memory_limit)
        try:
            return _build(
                con, plain_spool, plain_work, scratch, config, funnel, known_centres, source, show_progress, places
            )
        finally:
            con.close()
            shutil.rmtree(scratch, ignore_errors=True)


def _build(
    con,
    spool: Path,
    work: Path,
    scratch: Path,
    config: PrepareConfig,
    funnel: Counter,
    known_centres: pd.DataFrame | None,
    source: Path,
    show_progress: bool,
    places: frozenset[str],
) -> tuple[dict[str, Any], str]:
    n_spool = _load_spool(con, spool)
    n_posts = scalar(con, "SELECT count(*) FROM p")
    if n_spool - n_posts:
        funnel["dropped_duplicate"] += n_spool - n_posts
    if n_posts == 0:
        raise EmptyDatasetError(empty_message(source, funnel, "after reading and cleaning"))

    method, merges = _assign_pois(con, scratch, config, funnel)
    vocabulary = _count_hashtags(con, config, places)
    _filter(con, config, funnel)
    if scalar(con, "SELECT count(*) FROM kept") == 0:
        raise EmptyDatasetError(empty_message(source, funnel, "after the POI filters"))
    _split(con, config)
    funnel["kept"] = scalar(con, "SELECT count(*) FROM kept")

    pois = _poi_table(con, known_centres)
    _write_posts(con, spool, vocabulary, work, n_posts, show_progress)
    _write_hashtags(con, work / HASHTAGS)
    posts_parquet = quote(str(work / POSTS))
    if method != "labels":
        named = name_clusters(*_cluster_tag_counts(con, posts_parquet))
        unnamed = pois["name"].fillna("").eq("")
        pois.loc[unnamed, "name"] = pois.loc[unnamed, "poi"].map(named).fillna("")
        pois = name_unnamed_by_coordinates(pois)
    write_csv(csv_guard_columns(pois), work / POIS)  # ids and names: no formulas in a spreadsheet
    n_places = scalar(con, "SELECT count(*) FROM tags WHERE kept AND posts < ?", [config.min_hashtag_count])
    summary = _summary(con, posts_parquet, funnel, len(vocabulary), n_places)
    add_label_notes(summary, merges, n_posts, funnel)
    return summary, method


# --- step 3: duplicates --------------------------------------------------------------------


def _load_spool(con, spool: Path) -> int:
    """Table ``p``: the light columns of every post but later duplicates, with ``rn`` (spool row)
    and ``k`` (position among the de-duplicated posts: what the default engine's spool row is).

    The kept row numbers and their ``k`` are decided over the row numbers alone (a window over
    one integer column), and the columns joined to them after: a window over every column,
    hashtag lists included, held the whole spool in memory at once and set ``prepare``'s peak.
    """
    src = f"read_parquet('{quote(str(spool))}', file_row_number = true)"
    con.execute(f"""
        CREATE TEMP TABLE kept_rn AS
        WITH firsts AS (
            SELECT file_row_number AS rn FROM {src} WHERE dupkey IS NULL
            UNION ALL
            SELECT min(file_row_number) AS rn FROM {src} WHERE dupkey IS NOT NULL GROUP BY dupkey
        )
        SELECT rn, row_number() OVER (ORDER BY rn) - 1 AS k FROM firsts
    """)
    con.execute(f"""
        CREATE TABLE p AS
        SELECT kept_rn.k, s.rn, s.poi, s.poi_name, s.lat, s.lon, s."user", s.n_text, s.n_images, s.hashtags
        FROM (SELECT file_row_number AS rn, poi, poi_name, lat, lon, "user", n_text, n_images, hashtags
              FROM {src}) AS s
        JOIN kept_rn USING (rn)
    """)
    con.execute("DROP TABLE kept_rn")
    return scalar(con, f"SELECT count(*) FROM {src}")


# --- step 4: POIs --------------------------------------------------------------------------


def _assign_pois(con, scratch: Path, config: PrepareConfig, funnel: Counter) -> tuple[str, list[dict[str, Any]]]:
    """Fill ``p.poi`` (NULL where a post has no POI); return the method used and the labels merged."""
    n_labelled = scalar(con, "SELECT count(*) FROM p WHERE poi IS NOT NULL")
    method = config.poi_method
    if method == "auto":
        method = "labels" if n_labelled else "hdbscan"
    if method == "labels":
        if not n_labelled:
            raise PostlocError('--poi-method labels: no post has a "poi" label; use hdbscan, dbscan or grid')
        funnel["dropped_no_poi_label"] = scalar(con, "SELECT count(*) FROM p WHERE poi IS NULL")
        return method, _merge_labels(con, config.poi_config(method).merge_m)
    if method not in POI_METHODS:
        raise PostlocError(f"unknown POI method {method!r}; use one of {', '.join(POI_METHODS)}")
    has_xy = "lat IS NOT NULL AND lon IS NOT NULL"
    n_xy = scalar(con, f"SELECT count(*) FROM p WHERE {has_xy}")
    funnel["dropped_no_coordinates"] = scalar(con, "SELECT count(*) FROM p") - n_xy
    poi_config = config.poi_config(method)
    if method == "grid" and poi_config.cell_deg > 0:  # the same plain degree grid as pois._grid_cells
        con.execute(
            f"""
            CREATE TABLE assign AS
            SELECT rn, dense_rank() OVER (ORDER BY floor(lat / $cd), floor((lon + 180.0) / $cd)) - 1 AS c
            FROM p WHERE {has_xy}
        """,
            {"cd": poi_config.cell_deg},
        )
    elif method == "grid":
        cell_deg = poi_config.cell_m / 1000.0 / EARTH_RADIUS_KM * 180.0 / np.pi
        # the same arithmetic as pois._grid_cells, cell ids in (row, col) order like np.unique
        con.execute(
            f"""
            CREATE TABLE assign AS
            WITH g AS (SELECT rn, floor(lat / $cd) AS r, lon FROM p WHERE {has_xy}),
                 c AS (SELECT rn, r, floor((lon + 180.0) / ($cd / greatest(cos(((r + 0.5) * $cd) * $rad), 1e-6))) AS c
                       FROM g)
            SELECT rn, dense_rank() OVER (ORDER BY r, c) - 1 AS c FROM c
        """,
            {"cd": cell_deg, "rad": np.pi / 180.0},
        )
    elif n_xy <= config.poi_sample:
        rn, lat, lon = _fetch_numpy(con, f"SELECT rn, lat, lon FROM p WHERE {has_xy} ORDER BY rn")
        labels = cluster_coordinates(lat, lon, poi_config)
        con.register("assign_view", pd.DataFrame({"rn": rn, "c": labels}))
        con.execute("CREATE TABLE assign AS SELECT * FROM assign_view")
        con.unregister("assign_view")
    else:
        path = scratch / "assign.parquet"
        assign_to_sample_clusters(
            con,
            f"SELECT rn, lat, lon FROM p WHERE {has_xy}",
            n_xy,
            poi_config,
            sample=config.poi_sample,
            seed=config.seed,
            out=path,
        )
        con.execute(f"CREATE TABLE assign AS SELECT * FROM read_parquet('{quote(str(path))}')")
    # ids ordered by cluster size, largest first (as pois._relabel_by_size), named poi-000...
    con.execute("""
        CREATE TABLE ranked AS
        WITH sizes AS (SELECT c, count(*) AS n FROM assign WHERE c >= 0 GROUP BY c)
        SELECT c, row_number() OVER (ORDER BY n DESC, c) - 1 AS r FROM sizes
    """)
    n_clusters = scalar(con, "SELECT count(*) FROM ranked")
    width = max(3, len(str(max(n_clusters - 1, 0))))
    con.execute(f"""
        CREATE OR REPLACE TABLE p AS
        SELECT p.* REPLACE ('poi-' || lpad(ranked.r::VARCHAR, {width}, '0') AS poi)
        FROM p LEFT JOIN assign USING (rn) LEFT JOIN ranked ON assign.c = ranked.c
    """)
    funnel["dropped_outside_pois"] = scalar(con, f"SELECT count(*) FROM p WHERE {has_xy} AND poi IS NULL")
    con.execute("DROP TABLE assign; DROP TABLE ranked")
    return method, []


def _merge_labels(con, max_m: float) -> list[dict[str, Any]]:
    """pois.merge_near_duplicate_labels on SQL aggregates per label; the merged-away labels renamed in ``p``."""
    stats = con.execute(
        """
        SELECT poi, count(*) AS posts, count(*) FILTER (lat IS NOT NULL AND lon IS NOT NULL) AS n_xy,
               coalesce(fsum(cos(lat * $rad) * cos(lon * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL), 0) AS x,
               coalesce(fsum(cos(lat * $rad) * sin(lon * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL), 0) AS y,
               coalesce(fsum(sin(lat * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL), 0) AS z
        FROM p WHERE poi IS NOT NULL GROUP BY poi ORDER BY poi
    """,
        {"rad": np.pi / 180.0},
    ).df()
    names = con.execute("""SELECT poi, poi_name, count(*) AS n FROM p WHERE poi IS NOT NULL AND poi_name IS NOT NULL
                           GROUP BY poi, poi_name""").df()
    names = names.sort_values(["poi", "n", "poi_name"], ascending=[True, False, True]).drop_duplicates("poi")
    name_of = dict(zip(names["poi"], names["poi_name"], strict=True))
    stats["name"] = [str(name_of.get(poi, "")) for poi in stats["poi"]]
    mapping, merges = merge_near_duplicate_labels(stats, max_m)
    if mapping:
        frame = pd.DataFrame({"old": list(mapping), "new": list(mapping.values())}, dtype=object)
        con.register("merge_view", frame)
        con.execute("UPDATE p SET poi = merge_view.new FROM merge_view WHERE p.poi = merge_view.old")
        con.unregister("merge_view")
    return merges


def _fetch_numpy(con, sql: str) -> list[np.ndarray]:
    table = con.sql(sql).fetchnumpy()
    return [np.asarray(column) for column in table.values()]


# --- step 5 and 6: hashtags, empty posts, small POIs --------------------------------------


def _count_hashtags(con, config: PrepareConfig, places: frozenset[str]) -> set[str]:
    """Table ``tags`` (posts per hashtag over posts with a POI, and ``kept``); returns the kept vocabulary.

    A tag is kept when it is used often enough or names a POI (:func:`postloc.data.filters.frequent_hashtags`):
    the rarer tags are streamed to Python only when there are place names to test them against.
    """
    con.execute(
        """
        CREATE TABLE tags AS
        SELECT tag, count(*) AS posts, count(*) >= $min AS kept
        FROM (SELECT unnest(list_distinct(hashtags)) AS tag FROM p WHERE poi IS NOT NULL)
        GROUP BY tag
    """,
        {"min": config.min_hashtag_count},
    )
    if places:
        named = [
            tag
            for batch in arrow_batches(con, "SELECT tag FROM tags WHERE NOT kept")
            for tag in batch.column(0).to_pylist()
            if names_place(tag, places)
        ]
        if named:
            con.register("named_view", pd.DataFrame({"tag": pd.Series(named, dtype=object)}))
            con.execute("UPDATE tags SET kept = TRUE WHERE tag IN (SELECT tag FROM named_view)")
            con.unregister("named_view")
    rows = con.execute("SELECT tag FROM tags WHERE kept").fetchall()
    return {tag for (tag,) in rows}


def _filter(con, config: PrepareConfig, funnel: Counter) -> None:
    """Table ``kept``: posts with a POI and some content, at POIs with enough posts and users."""
    n_poi = scalar(con, "SELECT count(*) FROM p WHERE poi IS NOT NULL")
    content = "TRUE"
    if config.drop_empty:
        content = """(n_text > 0 OR n_images > 0 OR rn IN (
            SELECT rn FROM (SELECT rn, unnest(hashtags) AS tag FROM p WHERE poi IS NOT NULL) AS t
            SEMI JOIN tags ON t.tag = tags.tag AND tags.kept))"""
    con.execute(
        f"""CREATE TABLE kept AS SELECT rn, k, poi, lat, lon, "user", poi_name FROM p
                    WHERE poi IS NOT NULL AND {content}"""
    )
    if config.drop_empty:
        funnel["dropped_empty"] = n_poi - scalar(con, "SELECT count(*) FROM kept")
    stats = con.execute("""
        SELECT poi, count(*) AS posts, count(DISTINCT "user") + count(*) FILTER (WHERE "user" IS NULL) AS users
        FROM kept GROUP BY poi
    """).df()
    posts = dict(zip(stats["poi"], stats["posts"].astype(int), strict=True))
    users = dict(zip(stats["poi"], stats["users"].astype(int), strict=True))
    good = passing_pois(posts, users, config.min_poi_posts, config.min_poi_users)
    con.register(
        "poi_stats_view",
        pd.DataFrame({"poi": stats["poi"].astype(object), "good": stats["poi"].isin(good).astype(bool)}),
    )
    con.execute("CREATE TABLE poi_stats AS SELECT * FROM poi_stats_view")
    con.unregister("poi_stats_view")
    before = scalar(con, "SELECT count(*) FROM kept")
    con.execute("DELETE FROM kept WHERE poi IN (SELECT poi FROM poi_stats WHERE NOT good)")
    funnel["dropped_small_poi"] = before - scalar(con, "SELECT count(*) FROM kept")
    funnel["pois_dropped"] = scalar(con, "SELECT count(*) FROM poi_stats WHERE NOT good")


# --- step 7: splits ------------------------------------------------------------------------


def _split(con, config: PrepareConfig) -> None:
    """Add ``kept.split``: users.assign_users on (user, POI) pair counts counted in SQL.

    Posts without a user are users of their own, keyed ``\\0post:<position among kept posts>``
    exactly as splits.user_disjoint_split does, so both engines order users the same way.
    """
    con.execute("""
        CREATE OR REPLACE TABLE kept AS
        SELECT *, coalesce("user", chr(0) || 'post:' || (row_number() OVER (ORDER BY rn) - 1)::VARCHAR) AS ukey
        FROM kept
    """)
    pairs = con.execute("SELECT ukey, poi, count(*) AS n FROM kept GROUP BY ukey, poi").df()
    user_codes, user_names = pd.factorize(pairs["ukey"].astype(object), sort=True)
    poi_codes, poi_names = pd.factorize(pairs["poi"].astype(object), sort=True)
    order = np.lexsort((poi_codes, user_codes))
    chosen = assign_users(
        user_codes[order],
        poi_codes[order],
        pairs["n"].to_numpy()[order],
        len(user_names),
        len(poi_names),
        config.split_config(),
    )
    con.register(
        "user_split",
        pd.DataFrame({"ukey": np.asarray(user_names, dtype=object), "split": np.array(SPLITS, dtype=object)[chosen]}),
    )
    con.execute(
        "CREATE OR REPLACE TABLE kept AS SELECT kept.*, user_split.split FROM kept JOIN user_split USING (ukey)"
    )
    con.unregister("user_split")


# --- outputs -------------------------------------------------------------------------------


def _poi_table(con, known_centres: pd.DataFrame | None) -> pd.DataFrame:
    """pois.poi_table from SQL aggregates: spherical mean of the posts' unit vectors (exact sums), name = mode."""
    agg = con.execute(
        """
        SELECT poi, count(*) AS posts, count(DISTINCT "user") AS users,
               count(lat) FILTER (lat IS NOT NULL AND lon IS NOT NULL) AS n_xy,
               fsum(cos(lat * $rad) * cos(lon * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL) AS x,
               fsum(cos(lat * $rad) * sin(lon * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL) AS y,
               fsum(sin(lat * $rad)) FILTER (lat IS NOT NULL AND lon IS NOT NULL) AS z
        FROM kept GROUP BY poi
    """,
        {"rad": np.pi / 180.0},
    ).df()
    agg = agg.iloc[np.argsort(agg["poi"].astype(object).to_numpy(), kind="stable")].reset_index(drop=True)
    names = con.execute("""SELECT poi, poi_name, count(*) AS n FROM kept WHERE poi_name IS NOT NULL
                           GROUP BY poi, poi_name""").df()
    # pandas' mode(): the most frequent value, the smallest one among ties
    names = names.sort_values(["poi", "n", "poi_name"], ascending=[True, False, True]).drop_duplicates("poi")
    name_of = dict(zip(names["poi"], names["poi_name"], strict=True))
    rows = []
    for row in agg.itertuples(index=False):
        lat = lon = float("nan")
        if row.n_xy:
            v = np.array([row.x, row.y, row.z]) / row.n_xy
            x, y, z = v / np.linalg.norm(v)
            lat, lon = float(np.degrees(np.arcsin(z))), float(np.degrees(np.arctan2(y, x)))
        rows.append(
            {
                "poi": row.poi,
                "lat": lat,
                "lon": lon,
                "name": str(name_of.get(row.poi, "")),
                "posts": int(row.posts),
                "users": int(row.users),
            }
        )
    table = pd.DataFrame(rows, columns=["poi", "lat", "lon", "name", "posts", "users"])
    return apply_known_centres(table, known_centres)


def _kept_stream(con) -> Iterator[tuple]:
    """(rn, k, poi, split) of kept posts in input order, fetched in bounded batches."""
    reader = arrow_batches(con, "SELECT rn, k, poi, split FROM kept ORDER BY rn")
    for batch in reader:
        yield from zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True)


def _write_posts(con, spool: Path, vocabulary: set[str], work: Path, n_posts: int, show_progress: bool) -> None:
    """posts.parquet + posts.jsonl, formatted by the shared writer in input order.

    Row groups follow the default engine's spool batches (``k // SPOOL_BATCH``, empty ones
    included) so the Parquet file is byte-identical to the default engine's.
    """
    import pyarrow.parquet as pq

    n_batches = -(-n_posts // SPOOL_BATCH)
    kept = _kept_stream(con)
    nxt = next(kept, None)
    current = 0
    columns = ["id", "text", "hashtags", "image", "poi_name", "lat", "lon", "user", "created", "lang", "extra"]
    with (
        PreparedPostsWriter(work, vocabulary) as writer,
        progress_bar(show_progress, "writing", total=n_batches, unit="batch") as bar,
    ):
        offset = 0
        for batch in pq.ParquetFile(spool).iter_batches(batch_size=FETCH_ROWS, columns=columns):
            end = offset + batch.num_rows
            if nxt is None or nxt[0] >= end:
                offset = end
                continue
            for rn, row in enumerate(batch.to_pylist(), start=offset):
                if nxt is None or rn != nxt[0]:
                    continue
                _, k, poi, split = nxt
                while current < k // SPOOL_BATCH:
                    writer.end_row_group()
                    current += 1
                    bar.update(1)
                writer.add(row, poi, split)
                nxt = next(kept, None)
            offset = end
        while current < n_batches:
            writer.end_row_group()
            current += 1
            bar.update(1)


def _write_hashtags(con, path: Path) -> None:
    """hashtags.csv (hashtag, posts, kept) by posts descending then tag, in bounded chunks."""
    reader = arrow_batches(con, "SELECT tag AS hashtag, posts, kept FROM tags ORDER BY posts DESC, tag")
    header = True
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for batch in reader:
            frame = batch.to_pandas()
            frame["hashtag"] = frame["hashtag"].astype(object)
            frame = csv_guard_columns(frame, HASHTAG_TEXT_COLUMNS)  # a given tag may start with = + - @
            frame.to_csv(handle, index=False, header=header, float_format="%.7f", lineterminator="\n")
            header = False
        if header:
            pd.DataFrame(columns=["hashtag", "posts", "kept"]).to_csv(handle, index=False, lineterminator="\n")


def _cluster_tag_counts(con, posts_parquet: str) -> tuple[pd.DataFrame, dict[str, int], int]:
    """pois.cluster_tag_counts in SQL over the training posts: integer counts, so the names are the default engine's."""
    train = f"(SELECT poi, hashtags FROM read_parquet('{posts_parquet}') WHERE split = 'train')"
    counts = con.execute(f"""
        SELECT poi, tag, count(*) AS posts FROM (SELECT poi, unnest(hashtags) AS tag FROM {train})
        GROUP BY poi, tag ORDER BY poi, tag
    """).df()
    per_poi = {str(poi): int(n) for poi, n in con.execute(f"SELECT poi, count(*) FROM {train} GROUP BY poi").fetchall()}
    return counts, per_poi, sum(per_poi.values())


def _summary(con, posts_parquet: str, funnel: Counter, n_vocabulary: int, n_places: int) -> dict[str, Any]:
    """summary.build_summary from SQL counts over the written posts."""

    def stats(split: str | None) -> dict[str, Any]:
        where = "TRUE" if split is None else f"split = '{split}'"
        return split_stats(
            *con.execute(f"""
            SELECT count(*), count(DISTINCT "user"), count(DISTINCT poi),
                   count(*) FILTER (length(text) > 0), count(*) FILTER (len(hashtags) > 0),
                   count(*) FILTER (image IS NOT NULL AND len(image) > 0)
            FROM read_parquet('{posts_parquet}') WHERE {where}
        """).fetchall()[0]
        )

    return assemble_summary(stats, funnel, n_vocabulary, n_places)
