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

from postloc.data.image_features import IMAGE_FEATURES_FILE, has_image_features, read_image_summary
from postloc.data.modalities import available_modalities
from postloc.data.prepared import (
    POSTS,
    copy_manifest,
    is_generated,
    load_prepared,
    read_manifest,
    read_posts,
    write_posts,
)
from postloc.experiments.folder import VARIANT_INFO
from postloc.io.inputs import read_small_json

__all__ = ["available_modalities", "image_backbone", "resolve_raw_input"]


def image_backbone(prepared: str | Path) -> str | None:
    """Which network produced ``image_features.parquet`` (None when there are no features)."""
    if not has_image_features(prepared):
        return None
    summary = read_image_summary(prepared)
    if summary is not None:
        return str(summary.get("backbone") or "unknown backbone")
    if is_generated(read_manifest(prepared)):
        return "synthetic Gaussian vectors"
    return "unknown backbone"


def resolve_raw_input(prepared: str | Path, raw: str | None) -> tuple[Path | None, str]:
    """The raw input to re-prepare from, and how it was found (or why not)."""
    if raw:
        path = Path(raw)
        return (path, f"given: {path}") if path.exists() else (None, f"--raw {raw} does not exist")
    manifest = read_manifest(prepared)
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
    manifest = read_manifest(prepared)
    return int((manifest.get("config") or {}).get("min_hashtag_count") or 1)


def hashtag_variant(prepared: str | Path, threshold: int, out: Path, raw: Path | None) -> dict[str, Any]:
    """A prepared folder at ``out`` with hashtags used by fewer than ``threshold`` posts dropped.

    Returns ``{"ok": bool, "method": ..., "reason": ...}``; reuses ``out`` when it is complete.
    """
    prepared = Path(prepared)
    marker = out / VARIANT_INFO
    if marker.exists():
        return read_small_json(marker)
    own = prepared_threshold(prepared)
    manifest = read_manifest(prepared)
    if raw is not None and not is_generated(manifest):
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
        if has_image_features(prepared):
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
        if item.is_file() and item.name != POSTS:
            shutil.copy2(item, out / item.name)
    posts = data.posts.copy()
    posts["hashtags"] = [[t for t in tags if t in keep] for tags in posts["hashtags"]]
    write_posts(posts, out)
    copy_manifest(prepared, out, min_hashtag_count=threshold)


def frame_has_images(prepared: str | Path) -> bool:
    posts = read_posts(prepared, columns=["image"])
    return bool(posts["image"].map(lambda v: v is not None and len(v) > 0).any())
