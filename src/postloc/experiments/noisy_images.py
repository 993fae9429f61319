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

from postloc.data.image_features import default_cache_dir
from postloc.data.prepared import TABLES, read_posts, write_posts
from postloc.experiments.data import frame_has_images
from postloc.experiments.folder import TABLE3_INFO
from postloc.io.inputs import read_small_json

if TYPE_CHECKING:  # the image pipeline is imported only when the study runs
    from postloc.vision.work import NoiseMode

MODES: tuple[NoiseMode, ...] = ("keep", "drop")


def noise_variants(prepared: str | Path, work: Path) -> dict[str, Any]:
    """``{"ok": True, "keep": path, "drop": path, "backbone": ..., "dropped": n}``, or
    ``{"ok": False, "reason": ...}``."""
    prepared = Path(prepared)
    marker = work / TABLE3_INFO
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
            result = extract_images(target, ImagesConfig(noise=mode, cache_dir=str(default_cache_dir(work))))
            info[mode] = str(target)
            info["backbone"] = result.summary.get("backbone")
            info[f"{mode}_status"] = result.summary.get("status")
    except Exception as error:  # noqa: BLE001 - the study reports the failure instead of stopping the others
        return {"ok": False, "reason": f"the image pipeline failed: {type(error).__name__}: {error}"}
    marker.write_text(json.dumps(info, indent=2, default=str) + "\n")
    return info


def _missing_files(prepared: Path, sample: int = 20) -> str | None:
    """The first of up to ``sample`` image paths that does not exist, when none of them exists."""
    posts = read_posts(prepared, columns=["image"])
    paths = [p for v in posts["image"] if v is not None for p in v][:sample]
    resolved = [Path(p) if Path(p).is_absolute() else prepared / p for p in paths]
    if paths and not any(p.exists() for p in resolved):
        return paths[0]
    return None


def _copy_with_absolute_images(prepared: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        if (prepared / name).exists():
            shutil.copy2(prepared / name, target / name)
    posts = read_posts(prepared)
    base = prepared.resolve()
    posts["image"] = [
        [str(p) if Path(p).is_absolute() else str((base / p).resolve()) for p in (list(v) if v is not None else [])]
        for v in posts["image"]
    ]
    write_posts(posts, target)
