"""Table III's two image-feature variants: every image kept vs. portrait-noise images removed.

The paper removes photos whose portrait (person) ratio is above 0.5 and shows image-only
accuracy before and after. The vision pipeline (``postloc.vision.pipeline.extract_images``)
computes features with ``noise="keep"`` or ``noise="drop"``; each variant is a copy of the
prepared folder (image paths made absolute) with its own ``image_features.parquet``, sharing
one feature cache. When the posts have no image files or the pipeline cannot run (missing
mediapipe or backbone weights), the study is n/a and the reason is the pipeline's own message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from postloc.experiments.data import frame_has_images
from postloc.io.inputs import read_small_json

if TYPE_CHECKING:  # the image pipeline is imported only when the study runs
    from postloc.vision.work import NoiseMode

MODES: tuple[NoiseMode, ...] = ("keep", "drop")


def noise_variants(prepared: str | Path, work: Path) -> dict[str, Any]:
    """``{"ok": True, "keep": path, "drop": path, "backbone": ..., "dropped": n}``, or
    ``{"ok": False, "reason": ...}``."""
    prepared = Path(prepared)
    marker = work / "table3.json"
    if marker.exists():
        return read_small_json(marker)
    if not frame_has_images(prepared):
        return {
            "ok": False,
            "reason": "the prepared posts have no image files (only precomputed or no vectors), "
            "so features cannot be recomputed with and without the portrait filter",
        }
    missing = _missing_files(prepared)
    if missing:
        return {
            "ok": False,
            "reason": f"the image files named in the posts do not exist (e.g. {missing}), so "
            "features cannot be recomputed with and without the portrait filter",
        }
    try:
        from postloc.vision.pipeline import ImagesConfig, extract_images
    except Exception as error:  # noqa: BLE001 - the image pipeline is another component and may be incomplete
        return {"ok": False, "reason": f"the image pipeline cannot be imported: {error}"}
    info: dict[str, Any] = {"ok": True}
    try:
        for mode in MODES:
            target = work / f"images-{mode}"
            _copy_with_absolute_images(prepared, target)
            result = extract_images(target, ImagesConfig(noise=mode, cache_dir=str(work / "image_cache")))
            info[mode] = str(target)
            info["backbone"] = result.summary.get("backbone")
            info[f"{mode}_status"] = result.summary.get("status")
    except Exception as error:  # noqa: BLE001 - the study reports the failure instead of stopping the others
        return {"ok": False, "reason": f"the image pipeline failed: {type(error).__name__}: {error}"}
    marker.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return info


def _missing_files(prepared: Path, sample: int = 20) -> str | None:
    """The first of up to ``sample`` image paths that does not exist, when none of them exists."""
    posts = pd.read_parquet(prepared / "posts.parquet", columns=["image"])
    paths = [p for v in posts["image"] if v is not None for p in v][:sample]
    resolved = [Path(p) if Path(p).is_absolute() else prepared / p for p in paths]
    if paths and not any(p.exists() for p in resolved):
        return paths[0]
    return None


def _copy_with_absolute_images(prepared: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("pois.csv", "hashtags.csv", "manifest.json", "summary.json", "summary.md"):
        if (prepared / name).exists():
            shutil.copy2(prepared / name, target / name)
    posts = pd.read_parquet(prepared / "posts.parquet")
    base = prepared.resolve()
    posts["image"] = [
        [str(p) if Path(p).is_absolute() else str((base / p).resolve()) for p in (list(v) if v is not None else [])]
        for v in posts["image"]
    ]
    import pyarrow as pa

    from postloc.data.prepare import prepared_schema

    schema = prepared_schema()
    table = pa.Table.from_pandas(posts[[f.name for f in schema]], schema=schema, preserve_index=False)
    import pyarrow.parquet as pq

    pq.write_table(table, target / "posts.parquet")
