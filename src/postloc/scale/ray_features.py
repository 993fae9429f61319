"""Image feature extraction with Ray Data: one row per image, embedded by actors holding the frozen backbone.

Flow, for a folder written by ``postloc prepare`` (the same input as ``postloc images``):

1. ``read_parquet(PREPARED/posts.parquet, columns=[id, image])`` streams the posts;
2. a task per block explodes them into one row per image (``post_id``, ``path``);
3. an actor pool (``--workers`` actors, :class:`EmbedActor`) builds the backbone once per actor and,
   batch after batch, decodes, filters portraits / inpaints (``--image-noise``), preprocesses and
   embeds with the project's own code (:func:`postloc.vision.work.process`,
   :class:`~postloc.vision.backbones.FrozenBackbone`): the vectors are those of ``postloc images``;
4. ``write_parquet`` streams the rows to ``PREPARED/image_vectors/part-*.parquet``: ``post_id``,
   ``path``, ``sha256`` (of the file's bytes), ``status``, ``note``, ``width``, ``height``,
   ``portrait_ratio``, ``person_gate``, ``vector`` (null unless the status is kept/inpainted).
   A missing, corrupt or not-an-image file is a row with its status; it never stops the job.
5. On the driver, the per-image rows are pooled into exactly the artifacts ``postloc images``
   writes next to the prepared data: ``image_features.parquet`` (the :mod:`postloc.data.image_features`
   contract that ``postloc train`` reads: id, mean vector of the post's usable images, in
   ``posts.parquet`` order), ``image_status.csv`` and ``image_summary.json`` (which names the
   backbone, so ``postloc predict``/``serve`` can rebuild it). Training needs nothing new.

Step 5 holds the usable vectors in memory, as training does when it loads
``image_features.parquet``; everything before it streams. Unlike the local pipeline there is no
content-addressed cache (it lives on one machine's disk): a re-run recomputes, and a photo
referenced by two posts is embedded twice.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from postloc.data.image_features import IMAGE_FEATURES_FILE, STATUS_FILE, SUMMARY_FILE, VECTORS_DIR
from postloc.data.prepared import POSTS
from postloc.errors import PostlocError
from postloc.scale._ray import RaySettings, ray_session, write_parquet_parts


def image_row_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("post_id", pa.string()),
            ("path", pa.string()),
            ("sha256", pa.string()),
            ("status", pa.string()),
            ("note", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("portrait_ratio", pa.float64()),
            ("person_gate", pa.string()),
            ("vector", pa.list_(pa.float32())),
        ]
    )


def explode_images(batch, base: str):
    """Posts (``id``, ``image`` list) -> one row per image.

    Rows hold ``post_id`` and ``path``, resolved as ``postloc images`` does.
    """
    import pandas as pd

    from postloc.vision.pipeline import _resolve

    ids, paths = [], []
    for post_id, images in zip(batch["id"], batch["image"], strict=True):
        for path in images if images is not None else []:
            ids.append(str(post_id))
            paths.append(_resolve(str(path), Path(base)))
    return pd.DataFrame({"post_id": pd.Series(ids, dtype=object), "path": pd.Series(paths, dtype=object)})


class EmbedActor:
    """Holds one frozen backbone; each call turns a batch of image rows into status + vector rows."""

    def __init__(self, settings: Any, backbone: str, weights: str | None, threads: int):
        import torch

        from postloc.vision.backbones import get_backbone

        torch.set_num_threads(max(1, threads))
        self.backbone = get_backbone(backbone, weights)
        self.settings = settings
        self.schema = image_row_schema()

    def __call__(self, batch):
        import pyarrow as pa
        import torch

        from postloc.vision.work import WorkItem, process

        results = [process(WorkItem(str(path), ""), self.settings) for path in batch["path"]]
        usable = [r for r in results if r.pixels is not None]
        vectors = self.backbone(torch.from_numpy(np.stack([r.pixels for r in usable]))).numpy() if usable else []
        vector_of = {id(r): v for r, v in zip(usable, vectors, strict=True)}
        rows = []
        for post_id, result in zip(batch["post_id"], results, strict=True):
            vector = vector_of.get(id(result))
            rows.append(
                {
                    "post_id": str(post_id),
                    "path": result.path,
                    "sha256": result.sha256,
                    "status": result.status,
                    "note": result.note,
                    "width": result.width,
                    "height": result.height,
                    "portrait_ratio": None if math.isnan(result.ratio) else float(result.ratio),
                    "person_gate": result.gate,
                    "vector": None if vector is None else np.asarray(vector, np.float32),
                }
            )
        return pa.Table.from_pylist(rows, schema=self.schema)


def extract_images_ray(
    prepared_dir: str | Path,
    config: Any = None,
    *,
    workers: int = 1,
    threads: int | None = None,
    settings: RaySettings | None = None,
    rows_per_file: int | None = None,
):
    """``postloc images --engine ray``: see the module docstring. Returns an :class:`ImagesResult`."""
    import os

    from postloc.scale._ray import require_ray
    from postloc.vision.backbones import backbone_spec
    from postloc.vision.pipeline import ImagesConfig, ImagesResult, _check_dependencies, _read_posts
    from postloc.vision.weights import find_weights

    require_ray()
    config = config or ImagesConfig()
    prepared_dir = Path(prepared_dir)
    if workers < 1 or config.batch_size < 1:
        raise PostlocError("--workers and --batch-size must be at least 1")
    posts = _read_posts(prepared_dir)
    _check_dependencies(config)
    spec = backbone_spec(config.backbone)
    weights = find_weights(spec.weights_file, config.weights, spec.packaged, what=spec.name, advice=spec.advice)
    work = config.work_settings(spec.preprocessing, thumbnails=False)
    threads = threads or config.threads or max(1, (os.cpu_count() or 1) // workers)
    out = prepared_dir / VECTORS_DIR
    started = time.perf_counter()
    with ray_session(settings or RaySettings(), workers) as ray:
        rows = ray.data.read_parquet(str((prepared_dir / POSTS).resolve())).select_columns(["id", "image"])
        images = rows.map_batches(
            explode_images, batch_format="pandas", fn_kwargs={"base": str(prepared_dir.resolve())}
        )
        images = images.repartition(target_num_rows_per_block=config.batch_size)  # batches spread over actors
        embedded = images.map_batches(
            EmbedActor,
            batch_size=config.batch_size,
            batch_format="pandas",
            concurrency=workers,
            num_cpus=1,
            fn_constructor_kwargs=dict(settings=work, backbone=config.backbone, weights=str(weights), threads=threads),
        )

        write_parquet_parts(embedded, out, rows_per_file)
    compute_seconds = time.perf_counter() - started
    backbone = SimpleNamespace(name=spec.name, dim=spec.dim, weights_path=weights, preprocessing=spec.preprocessing)
    summary = write_artifacts(
        prepared_dir, posts, out, config, backbone, compute_seconds, started, workers=workers, threads=threads
    )
    return ImagesResult(prepared_dir, summary)


def write_artifacts(
    prepared_dir: Path,
    posts,
    vectors_dir: Path,
    config: Any,
    backbone: Any,
    compute_seconds: float,
    started: float,
    **engine: Any,
) -> dict[str, Any]:
    """``image_features.parquet``, ``image_status.csv``, ``image_summary.json`` from the per-image rows.

    The same files, columns and pooling (mean of a post's kept/inpainted images, float32) as
    :func:`postloc.vision.pipeline.extract_images`, through its own writers where they take plain data.
    """
    import json
    from collections import Counter

    import pyarrow.dataset as ds

    from postloc.data.image_features import write_image_features
    from postloc.io.atomic import atomic_open
    from postloc.vision.decode import MISSING, UNREADABLE, ZERO_BYTE
    from postloc.vision.pipeline import (
        USABLE,
        ImageRecord,
        _resolve,
        _summary,
        _write_status,
        pool_post_vectors,
    )

    UNREAD = (MISSING, UNREADABLE, ZERO_BYTE)  # files never decoded; the local pipeline calls their source "failed"
    records: dict[str, ImageRecord] = {}
    kept: dict[tuple[str, str], np.ndarray] = {}
    table = ds.dataset(str(vectors_dir), format="parquet")
    for batch in table.to_batches(batch_size=4096):
        for row in batch.to_pylist():
            ratio = row["portrait_ratio"]
            records[row["path"]] = ImageRecord(
                row["path"],
                row["sha256"] or "",
                row["status"],
                row["note"] or "",
                math.nan if ratio is None else ratio,
                row["person_gate"] or "",
                row["width"] or 0,
                row["height"] or 0,
                "failed" if row["status"] in UNREAD else "computed",
                "",
            )
            if row["status"] in USABLE and row["vector"] is not None:
                kept[(row["post_id"], row["path"])] = np.asarray(row["vector"], np.float32)
    counts: Counter = Counter()
    base = prepared_dir.resolve()
    pooled = list(pool_post_vectors(posts, lambda post_id, image: kept.get((post_id, _resolve(image, base))), counts))
    ids = [post_id for post_id, _ in pooled]
    matrix = [vector for _, vector in pooled]
    counts["posts"] = len(posts)
    dim = backbone.dim if not matrix else matrix[0].shape[0]
    write_image_features(prepared_dir, ids, np.stack(matrix) if matrix else np.zeros((0, dim), np.float32))
    _write_status(prepared_dir / STATUS_FILE, records, posts, prepared_dir.resolve())
    computed = sum(1 for r in records.values() if r.source == "computed")
    summary = _summary(
        records, counts, config, backbone, vectors_dir, computed, compute_seconds, time.perf_counter() - started
    )
    summary["engine"] = {"name": "ray", **engine}
    summary["cache"] = f"none (ray engine); per-image rows in {vectors_dir}"
    summary["outputs"] = [IMAGE_FEATURES_FILE, STATUS_FILE, SUMMARY_FILE, f"{VECTORS_DIR}/"]
    summary["settings"]["threads"] = engine.get("threads")
    with atomic_open(prepared_dir / SUMMARY_FILE) as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return summary
