"""The image-feature contract between the image pipeline and the models.

The image pipeline (frozen backbone, portrait filtering, inpainting) is another component; it
hands its output to training as one file in the prepared folder::

    <prepared>/image_features.parquet   columns: id (string), vector (list<float32>)

One row per post that has a usable image (several images of one post are pooled by the
pipeline, as the paper's global average pooling does for one image). All vectors have the same
length. Posts without a row have no image: models treat the image modality as missing for them.
Keeping the contract to "post id -> vector" lets the models train today on precomputed or
synthetic vectors and later on the real cache without any change.

In DataFrames handed to models the vector travels in the column :data:`IMAGE_COLUMN`
(a float32 array, or ``None`` when the post has no image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.schema import IMAGE_VECTOR_KEY, is_missing
from postloc.errors import PostlocError
from postloc.io.inputs import read_small_json

IMAGE_FEATURES_FILE = "image_features.parquet"
IMAGE_COLUMN = IMAGE_VECTOR_KEY  # the one name, whether a record carries the vector or a frame does

# What ``postloc images`` (and its Ray engine) write beside the contract file; this module owns the
# names, the pipelines write the files and training, prediction and the experiments read them here.
#: one row per image file: its status (kept, dropped, inpainted, unreadable...) and portrait ratio
STATUS_FILE = "image_status.csv"
#: the run's record: backbone, preprocessing, noise mode, counts (what prediction rebuilds the featurizer from)
SUMMARY_FILE = "image_summary.json"
#: the default content-hash feature cache (``--cache`` puts it elsewhere)
CACHE_DIR = "image_cache"
#: the Ray engine's per-image rows (``part-*.parquet``)
VECTORS_DIR = "image_vectors"


def has_image_features(prepared_dir: str | Path) -> bool:
    """Whether the prepared folder holds the contract file (``postloc images`` ran, or vectors were given)."""
    return (Path(prepared_dir) / IMAGE_FEATURES_FILE).exists()


def read_image_summary(prepared_dir: str | Path) -> dict[str, Any] | None:
    """``image_summary.json`` of the folder (how its vectors were made), or None when there is none."""
    path = Path(prepared_dir) / SUMMARY_FILE
    return read_small_json(path) if path.exists() else None


def default_cache_dir(prepared_dir: str | Path) -> Path:
    """Where ``postloc images`` keeps its feature cache when not told (``--cache``)."""
    return Path(prepared_dir) / CACHE_DIR


def load_image_features(prepared_dir: str | Path) -> tuple[list[str], np.ndarray] | None:
    """``(ids, matrix[n, d] float32)`` from ``image_features.parquet``, or ``None`` when there is none."""
    path = Path(prepared_dir) / IMAGE_FEATURES_FILE
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = {"id", "vector"} - set(table.column_names)
    if missing:
        raise PostlocError(f"{path}: needs columns id and vector; missing {sorted(missing)}")
    ids = [str(v) for v in table.column("id").to_pylist()]
    vectors = table.column("vector").to_pylist()
    if not vectors:
        return ids, np.zeros((0, 0), dtype=np.float32)
    lengths = {len(v) for v in vectors if v is not None}
    if len(lengths) != 1 or any(v is None for v in vectors):
        raise PostlocError(f"{path}: every vector must be present and of one length, got lengths {sorted(lengths)}")
    if len(set(ids)) != len(ids):
        raise PostlocError(f"{path}: post ids must be unique")
    return ids, np.asarray(vectors, dtype=np.float32)


def write_image_features(prepared_dir: str | Path, ids: Sequence[str], matrix: np.ndarray) -> Path:
    """Write the contract file atomically (temp file then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from postloc.io.atomic import atomic_path

    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(ids) != matrix.shape[0]:
        raise ValueError(f"need one row per id, got {len(ids)} ids and a matrix of shape {matrix.shape}")
    vector = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), matrix.shape[1])
    table = pa.table(
        {"id": pa.array([str(i) for i in ids], pa.string()), "vector": vector.cast(pa.list_(pa.float32()))}
    )
    path = Path(prepared_dir) / IMAGE_FEATURES_FILE
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def attach_image_features(posts: pd.DataFrame, features: tuple[Sequence[str], np.ndarray] | None) -> pd.DataFrame:
    """A copy of ``posts`` with :data:`IMAGE_COLUMN` filled from ``features`` (``None`` where absent)."""
    out = posts.copy()
    if features is None:
        if IMAGE_COLUMN not in out:
            out[IMAGE_COLUMN] = None
        return out
    ids, matrix = features
    row = {post_id: i for i, post_id in enumerate(ids)}
    out[IMAGE_COLUMN] = [matrix[row[p]] if p in row else None for p in out["id"].astype(str)]
    return out


def image_matrix(posts: pd.DataFrame, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors[n, dim] float32, present[n] bool)`` from :data:`IMAGE_COLUMN`; zeros where missing."""
    n = len(posts)
    vectors = np.zeros((n, dim), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    if IMAGE_COLUMN not in posts or dim == 0:
        return vectors, present
    for i, value in enumerate(posts[IMAGE_COLUMN].tolist()):
        if is_missing(value):
            continue
        array = np.asarray(value, dtype=np.float32).reshape(-1)
        if array.shape[0] != dim:
            raise PostlocError(
                f"image vector of post {posts['id'].iloc[i]!r} has length {array.shape[0]}, the model expects {dim}"
            )
        vectors[i] = array
        present[i] = True
    return vectors, present


def image_dim(posts: pd.DataFrame) -> int:
    """Length of the image vectors in ``posts`` (0 when no post has one)."""
    if IMAGE_COLUMN not in posts:
        return 0
    for value in posts[IMAGE_COLUMN].tolist():
        if not is_missing(value):
            return int(np.asarray(value).reshape(-1).shape[0])
    return 0
