"""What a prepared folder offers (modalities, image backbone) and its derived variants.

Fig. 4 needs the data prepared with other ``min_hashtag_count`` thresholds. The prepared posts
have already lost every tag below the folder's own threshold, so a lower threshold cannot be
obtained from them: the honest sweep re-prepares from the *raw* input (the file named in
``manifest.json``, an embedded data set, or ``--raw``) with the folder's recorded settings and
only the threshold changed. When the raw input cannot be found, thresholds at or above the
folder's own are obtained by filtering its posts (exact for the tags, but posts left empty stay
in, unlike a fresh ``prepare``), and lower thresholds are n/a. Every variant records how it was
made.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from postloc.data.image_features import IMAGE_FEATURES_FILE
from postloc.data.modalities import available_modalities
from postloc.data.prepared import load_prepared
from postloc.io.inputs import read_small_json

__all__ = ["available_modalities", "image_backbone", "is_synthetic", "resolve_raw_input"]


def image_backbone(prepared: str | Path) -> str | None:
    """Which network produced ``image_features.parquet`` (None when there are no features)."""
    path = Path(prepared)
    if not (path / IMAGE_FEATURES_FILE).exists():
        return None
    summary = path / "image_summary.json"
    if summary.exists():
        return str(read_small_json(summary).get("backbone") or "unknown backbone")
    manifest = read_small_json(path / "manifest.json")
    if manifest.get("synthetic"):
        return "synthetic Gaussian vectors"
    return "unknown backbone"


def is_synthetic(prepared: str | Path) -> bool:
    """The manifest says so, or the posts do (``postloc.datasets.synthetic`` marks every record, and
    ``prepare`` keeps the mark in ``extra`` but not in the manifest)."""
    if read_small_json(Path(prepared) / "manifest.json").get("synthetic", False):
        return True
    posts = pd.read_parquet(Path(prepared) / "posts.parquet", columns=["extra"])
    return bool(posts["extra"].dropna().astype(str).str.contains('"synthetic": true').any())


def resolve_raw_input(prepared: str | Path, raw: str | None) -> tuple[Path | None, str]:
    """The raw input to re-prepare from, and how it was found (or why not)."""
    if raw:
        path = Path(raw)
        return (path, f"given: {path}") if path.exists() else (None, f"--raw {raw} does not exist")
    manifest = read_small_json(Path(prepared) / "manifest.json")
    name = str((manifest.get("input") or {}).get("path") or "")
    from postloc import datasets

    for dataset in datasets.names():
        if datasets.path(dataset).name == name:
            return datasets.path(dataset), f"embedded data set {dataset!r} ({name}, named in manifest.json)"
    for candidate in (Path(name), Path(prepared).parent / name):
        if name and candidate.exists():
            return candidate, f"{candidate} (named in manifest.json)"
    return None, f"raw input {name!r} named in manifest.json was not found (pass --raw)"


def prepared_threshold(prepared: str | Path) -> int:
    manifest = read_small_json(Path(prepared) / "manifest.json")
    return int((manifest.get("config") or {}).get("min_hashtag_count") or 1)


def hashtag_variant(prepared: str | Path, threshold: int, out: Path, raw: Path | None) -> dict[str, Any]:
    """A prepared folder at ``out`` with hashtags used by fewer than ``threshold`` posts dropped.

    Returns ``{"ok": bool, "method": ..., "reason": ...}``; reuses ``out`` when it is complete.
    """
    prepared = Path(prepared)
    marker = out / "variant.json"
    if marker.exists():
        return read_small_json(marker)
    own = prepared_threshold(prepared)
    manifest = read_small_json(prepared / "manifest.json")
    if raw is not None and not manifest.get("synthetic"):
        from postloc.data.prepare import PrepareConfig, ReadOptions, prepare

        names = {f.name for f in fields(PrepareConfig)}
        settings: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in (manifest.get("config") or {}).items() if k in names
        }
        settings["min_hashtag_count"] = threshold
        spec = manifest.get("input") or {}
        fmt = spec.get("format")
        read = ReadOptions(
            format=None if fmt in (None, "auto") else fmt,
            columns=dict(spec.get("columns") or {}),
            list_sep=spec.get("list_sep", ";"),
            skip_bad=bool(spec.get("skip_bad", False)),
        )
        prepare(raw, out, PrepareConfig(**settings), read)
        if (prepared / IMAGE_FEATURES_FILE).exists():
            shutil.copy2(prepared / IMAGE_FEATURES_FILE, out / IMAGE_FEATURES_FILE)
        info = {
            "ok": True,
            "method": f"re-prepared from the raw input with min_hashtag_count={threshold}",
            "reason": "",
        }
    elif threshold >= own:
        _filter_prepared(prepared, threshold, out)
        info = {
            "ok": True,
            "method": f"filtered the prepared posts (own threshold {own}) to min_hashtag_count="
            f"{threshold}; posts left without tags are kept",
            "reason": "",
        }
    else:
        return {
            "ok": False,
            "method": "",
            "reason": f"threshold {threshold} is below the prepared folder's own "
            f"({own}) and the raw input is not available",
        }
    data = load_prepared(out)
    info["posts"] = int(len(data.posts))
    info["test_posts"] = int((data.posts["split"] == "test").sum())
    info["pois"] = int(len(data.pois))
    info["vocabulary"] = len({t for tags in data.posts["hashtags"] for t in tags})
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return info


def _filter_prepared(prepared: Path, threshold: int, out: Path) -> None:
    data = load_prepared(prepared)
    counts = Counter(t for tags in data.posts["hashtags"] for t in set(tags))
    keep = {t for t, n in counts.items() if n >= threshold}
    out.mkdir(parents=True, exist_ok=True)
    for item in prepared.iterdir():
        if item.is_file() and item.name != "posts.parquet":
            shutil.copy2(item, out / item.name)
    posts = data.posts.copy()
    posts["hashtags"] = [[t for t in tags if t in keep] for tags in posts["hashtags"]]
    import pyarrow as pa
    import pyarrow.parquet as pq

    from postloc.data.prepare import prepared_schema

    schema = prepared_schema()
    columns = [f.name for f in schema if f.name in posts]
    table = pa.Table.from_pandas(
        posts[columns], schema=pa.schema([schema.field(c) for c in columns]), preserve_index=False
    )
    pq.write_table(table, out / "posts.parquet")
    manifest = read_small_json(prepared / "manifest.json")
    manifest.setdefault("config", {})["min_hashtag_count"] = threshold
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")


def frame_has_images(prepared: str | Path) -> bool:
    posts = pd.read_parquet(Path(prepared) / "posts.parquet", columns=["image"])
    return bool(posts["image"].map(lambda v: v is not None and len(v) > 0).any())
