"""The prepared dataset folder: the one module that names its files, reads them, writes them and seals them.

``postloc prepare`` writes the folder (:mod:`postloc.data.prepare`), training, the experiments,
``postloc images`` and the quickstart read it; all of them ask this module for its file names and
for the few reads and writes they share, so that the layout is defined once::

    posts.parquet   the posts, typed (:func:`prepared_schema`), one row each with its ``split``
    posts.jsonl     the same posts in the exchange format
    pois.csv        the POIs: id, centre, name (ids and names guarded against spreadsheet formulas)
    hashtags.csv    the hashtag counts and which ones were kept
    summary.json    the funnel and split statistics (summary.md: the same for people)
    manifest.json   the seal, written last: input, settings, outputs; its ``postloc_prepared`` key
                    marks the folder as postloc's (:data:`PREPARED`, :mod:`postloc.io.ownership`)

``postloc images`` adds its files beside these (:mod:`postloc.data.image_features`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.data.schema import PREPARED_POST_COLUMNS, arrow_schema
from postloc.errors import PostlocError
from postloc.io.escape import csv_unguard, csv_unguard_columns
from postloc.io.inputs import check_regular_file, read_small_json
from postloc.io.ownership import FolderKind

POSTS = "posts.parquet"
POSTS_JSONL = "posts.jsonl"
POIS = "pois.csv"
HASHTAGS = "hashtags.csv"
SUMMARY = "summary.json"
SUMMARY_MD = "summary.md"
MANIFEST = "manifest.json"
#: the key of ``manifest.json`` that says postloc wrote the folder
MARKER_KEY = "postloc_prepared"
#: the small files a copy of a prepared folder with other posts takes along (the experiments' variants)
TABLES = (POIS, HASHTAGS, MANIFEST, SUMMARY, SUMMARY_MD)

#: which output folders ``prepare`` may replace (:func:`postloc.io.ownership.check_output_folder`)
PREPARED = FolderKind("prepared dataset", ((MANIFEST, lambda m: MARKER_KEY in m),))


@dataclass
class PreparedData:
    """Posts (one row each, with ``split``), the POI table and the manifest of a prepared folder."""

    path: Path
    posts: pd.DataFrame
    pois: pd.DataFrame
    manifest: dict[str, Any]

    def split(self, name: str) -> pd.DataFrame:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        return self.posts[self.posts["split"] == name].reset_index(drop=True)

    @property
    def poi_names(self) -> list[str]:
        return self.pois["poi"].tolist()

    @property
    def synthetic(self) -> bool:
        """Whether these are synthetic posts (:func:`is_synthetic`, on the posts already loaded)."""
        if is_generated(self.manifest):
            return True
        return "extra" in self.posts and _marks_synthetic(self.posts["extra"])


def load_prepared(path: str | Path) -> PreparedData:
    """Load the output of ``postloc prepare``; a clear error if the folder is not one."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        raise PostlocError(f"{path} is not a prepared dataset (no {MANIFEST}); run `postloc prepare` first")
    manifest = read_manifest(path)
    for name in (POSTS, POIS):  # a device or FIFO in their place would be read forever
        check_regular_file(path / name)
    return PreparedData(path=path, posts=read_posts(path), pois=read_pois(path), manifest=manifest)


def is_prepared(path: str | Path) -> bool:
    """Whether ``path`` holds a prepared folder's manifest and posts (what ``postloc images`` checks)."""
    return (Path(path) / MANIFEST).exists() and (Path(path) / POSTS).exists()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """``manifest.json`` of the folder ``path``: its input, settings, funnel and outputs."""
    return read_small_json(Path(path) / MANIFEST)


def write_manifest(path: str | Path, manifest: dict[str, Any], outputs: Sequence[str] | None = None) -> None:
    """Seal the folder: ``manifest.json``, written last, lists the folder's files.

    ``outputs`` defaults to the names now in the folder, sorted, and the manifest itself; a writer
    that lists them in its own order passes them."""
    folder = Path(path)
    manifest = dict(manifest)
    manifest["outputs"] = (
        list(outputs) if outputs is not None else sorted(p.name for p in folder.iterdir()) + [MANIFEST]
    )
    _write_json(folder / MANIFEST, manifest)


def copy_manifest(source: str | Path, target: str | Path, **config: Any) -> None:
    """The manifest of ``source`` into ``target``, with ``config`` overriding its settings (a variant's)."""
    manifest = read_manifest(source)
    manifest.setdefault("config", {}).update(config)
    _write_json(Path(target) / MANIFEST, manifest)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_summary(path: str | Path) -> dict[str, Any]:
    """``summary.json``: the funnel and the split statistics ``prepare`` wrote."""
    return read_small_json(Path(path) / SUMMARY)


def read_posts(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``posts.parquet`` of the folder (only ``columns`` when given)."""
    return pd.read_parquet(Path(path) / POSTS, columns=list(columns) if columns is not None else None)


def read_pois(path: str | Path) -> pd.DataFrame:
    """``pois.csv``: id, centre and name of every POI, with the spreadsheet-formula guard taken off."""
    pois = pd.read_csv(
        Path(path) / POIS, dtype={"poi": str, "name": str}, keep_default_na=False, na_values={"lat": [""], "lon": [""]}
    )
    return csv_unguard_columns(pois)  # prepare guards ids and names against spreadsheet formulas


def read_kept_hashtags(path: str | Path) -> list[str] | None:
    """The hashtags ``prepare`` kept (its vocabulary), sorted; None when the folder has no ``hashtags.csv``
    or the table does not say which were kept."""
    table_path = Path(path) / HASHTAGS
    if not table_path.exists():
        return None
    table = pd.read_csv(table_path, dtype={"hashtag": str}, keep_default_na=False)
    if "kept" not in table:
        return None
    kept = table["kept"].astype(str).str.lower().isin(["true", "1"])
    return sorted(table.loc[kept, "hashtag"].map(csv_unguard).tolist())  # prepare guards formulas


#: the manifest key of a generated folder (:mod:`postloc.datasets.synthetic_features`); ``prepare`` never writes it
SYNTHETIC_KEY = "synthetic"


# Two questions, asked only here (nobody else reads the manifest's ``"synthetic"`` key):
#
# - :func:`is_generated` -- was the folder *generated* rather than prepared from posts? Only
#   ``datasets.synthetic_features`` writes such a folder (planted Gaussian image vectors, no raw input
#   to re-prepare), and it says so in the manifest. The experiments ask it for the image backbone's name
#   and whether a variant can be re-prepared.
# - :func:`is_synthetic` / :attr:`PreparedData.synthetic` -- does the folder hold synthetic *posts*?
#   Generated, or prepared by ``postloc prepare`` from ``postloc synthetic``'s posts: those carry
#   ``"synthetic": true`` in every record, which ``prepare`` keeps in ``extra``. Everything that labels its
#   output SYNTHETIC asks this one: training, evaluate and open-set (the run's ``config.json``,
#   ``eval-*.json``, ``open-set.json``) and the experiments' ``results.json``. (Until issue 30 training
#   asked only the manifest and called a run on ``postloc synthetic`` posts not synthetic.)


def is_generated(manifest: Mapping[str, Any]) -> bool:
    """Whether the prepared folder with this manifest was generated (``datasets.synthetic_features``),
    not prepared from posts; the note above says how this differs from :func:`is_synthetic`."""
    return bool(manifest.get(SYNTHETIC_KEY, False))


def is_synthetic(path: str | Path) -> bool:
    """Whether the folder holds synthetic posts: it was generated (:func:`is_generated`), or its posts say so
    (``postloc.datasets.synthetic`` marks every record, and ``prepare`` keeps the mark in ``extra`` but not
    in the manifest)."""
    if is_generated(read_manifest(path)):
        return True
    return _marks_synthetic(read_posts(path, columns=["extra"])["extra"])


def _marks_synthetic(extra: pd.Series) -> bool:
    """Whether any post's ``extra`` carries ``postloc.datasets.synthetic``'s mark."""
    return bool(extra.dropna().astype(str).str.contains('"synthetic": true').any())


def prepared_schema():
    """The columns of ``posts.parquet``, in order."""
    return arrow_schema(PREPARED_POST_COLUMNS)


def write_posts(posts: pd.DataFrame, path: str | Path) -> Path:
    """``posts.parquet`` in the folder ``path`` from a frame of prepared posts (a fold's splits, a variant's
    hashtags): the columns of :func:`prepared_schema` the frame has, in its order and types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = prepared_schema()
    columns = [f.name for f in schema if f.name in posts]
    table = pa.Table.from_pandas(
        posts[columns], schema=pa.schema([schema.field(c) for c in columns]), preserve_index=False
    )
    target = Path(path) / POSTS
    pq.write_table(table, target)
    return target
