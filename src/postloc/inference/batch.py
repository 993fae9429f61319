"""Batch prediction: a file of posts through a run's model into a JSONL or Parquet file, streaming.

Posts come from the reader in batches of ``batch_size`` and every batch's predictions are written
before the next is read, so memory does not grow with the input (a million posts never sit in
memory at once). Photos are read from disk per batch and turned into vectors the way the run's
training photos were (:class:`postloc.inference.images.PhotoFeatures`: the portrait filter, the
backbone and the feature cache of ``postloc images``); then each batch takes the predictor's road
(:meth:`~postloc.inference.predictor.Predictor.records`, then ``answers``). The Ray engine
(:mod:`postloc.scale.ray_predict`) feeds the model through :func:`with_photo` and the same road.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from postloc.data.schema import IMAGE_VECTOR_KEY, Post
from postloc.errors import PostlocError
from postloc.inference.images import USED, ImageFeaturizer, PhotoFeatures, photos_for_run
from postloc.inference.photos import DEFAULT_MAX_PIXELS
from postloc.io.atomic import output_target
from postloc.io.ownership import check_not_input


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def with_photo(post: Post, photos: PhotoFeatures | None, tally: Counter | None = None) -> Post:
    """The post with its photos' vector in ``extra["image_vector"]``, for :meth:`Predictor.records` to check.

    A precomputed ``image_vector`` wins; else the photos go through ``photos`` (the run's image path).
    Shared by the local path and the Ray engine (:mod:`postloc.scale.ray_predict`), so both feed the
    model exactly the same inputs. ``tally`` counts each photo's status (kept, dropped_portrait, ...).
    """
    if post.extra.get(IMAGE_VECTOR_KEY) is not None or not post.images or photos is None:
        return post
    vector, outcomes = photos.post_vector(post.images)
    if tally is not None:
        tally.update(o.status for o in outcomes)
    return post if vector is None else replace(post, extra={**post.extra, IMAGE_VECTOR_KEY: vector})


def predict_file(
    run: Path,
    source: Path,
    out: Path,
    *,
    top_k: int = 5,
    batch_size: int = 1024,
    fmt: str | None = None,
    skip_bad: bool = False,
    images: bool = True,
    progress: bool = True,
    predictor=None,
    featurizer: ImageFeaturizer | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_confidence: float | None = None,
    names: Path | None = None,
    name_weight: float | None = None,
) -> dict[str, Any]:
    """Stream ``source`` (``-``: JSONL on standard input) through the run's model into ``out``; returns counts.

    ``names``: a CSV/GeoJSON table of POIs known by name (``--pois``; docs/cold-start.md): POIs with no
    training posts are predicted from the names posts write, and every row and candidate gets a ``source``
    (``model``, ``names`` or ``model+names``). ``name_weight`` is the names' share at a full match.

    Every output row is ``{id, poi, confidence, reason, predictions}`` (:func:`prediction_rows`):
    with ``min_confidence``, a post whose calibrated confidence is below it gets ``poi`` null and
    a ``reason`` (counted in ``abstained``); its ranked ``predictions`` are written all the same.

    ``photos`` in the counts: each photo's outcome (``kept``, ``inpainted``, ``dropped_portrait``,
    ``kept_unfiltered`` or why it could not be read), so the summary can say what happened to them.
    """
    from tqdm import tqdm

    from postloc.data.gazetteer import read_gazetteer
    from postloc.data.readers import STDIN, SkipReport, read_posts, read_stdin
    from postloc.inference.names import DEFAULT_NAME_WEIGHT
    from postloc.inference.predictor import check_min_confidence, load

    if batch_size < 1 or top_k < 1:
        raise PostlocError("--batch-size and --top-k must be at least 1")
    min_confidence = check_min_confidence(min_confidence)
    from_stdin = str(source) == STDIN  # JSONL posts on standard input, read once
    if from_stdin and fmt not in (None, "jsonl"):
        raise PostlocError(f"standard input (-) is read as JSONL; --format {fmt} needs a file")
    # Checked before the model loads: a directory, a block device or an output that would replace
    # the input or a file of the run is refused with nothing written ("-" streams to stdout).
    output_target(out)
    check_not_input(out, ([] if from_stdin else [source]) + [run] + ([names] if names is not None else []))
    out_fmt = "parquet" if out.suffix.lower() in (".parquet", ".pq") else "jsonl"
    gazetteer = read_gazetteer(names) if names is not None else None  # a bad table stops before the model loads
    predictor = predictor or load(run)
    if gazetteer is not None:
        predictor.use_names(gazetteer, DEFAULT_NAME_WEIGHT if name_weight is None else name_weight)
    photos, info = photos_for_run(run, predictor, featurizer, max_pixels=max_pixels) if images else (None, None)
    report = SkipReport()
    if from_stdin:
        posts = read_stdin(skip_bad=skip_bad, report=report)
    else:
        posts = read_posts(source, format=fmt, skip_bad=skip_bad, report=report)
    counts: dict[str, Any] = {"posts": 0, "with_images": 0, "images_used": 0, "abstained": 0}
    tally: Counter = Counter()
    bar = tqdm(desc="predict", unit="post", disable=not progress, file=sys.stderr)
    writer = _writer(out, out_fmt, sources=gazetteer is not None)
    try:
        for batch in batches(posts, batch_size):
            with_photos = [with_photo(post, photos, tally) for post in batch]
            counts["with_images"] += sum(bool(post.images) for post in with_photos)
            counts["images_used"] += sum(post.extra.get(IMAGE_VECTOR_KEY) is not None for post in with_photos)
            records = predictor.records(with_photos)
            answers = predictor.answers(records, top_k=top_k, batch_size=batch_size, min_confidence=min_confidence)
            writer.write(prediction_rows(records, answers))
            counts["abstained"] += sum(a["poi"] is None for a in answers)
            counts["posts"] += len(batch)
            bar.update(len(batch))
            if photos is not None:
                photos.flush()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        if photos is not None:
            photos.close()
    counts["skipped"] = report.skipped
    if gazetteer is not None:
        counts["names"] = {"places": len(gazetteer), "name_only_pois": len(predictor.names.extra)}
        counts["names"]["skipped"] = gazetteer.skipped
    counts["photos"] = dict(sorted(tally.items()))
    counts["image_notes"] = list(photos.notes) if photos is not None else []
    if info is not None and counts["with_images"] and not counts["images_used"]:
        counts["image_note"] = info.reason
    return counts


def prediction_rows(records: Sequence[Mapping[str, Any]], answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output rows of a batch: ``id``, the decision (``poi``, ``confidence``, ``reason``) and the candidates.

    Shared with the Ray engine, so both write the same rows (see :func:`prediction_schema`). With names
    in use (the answers carry a ``source``), rows have ``source`` after ``reason``.
    """
    return [
        {
            "id": r["id"],
            "poi": a["poi"],
            "confidence": a["confidence"],
            "reason": a["reason"],
            **({"source": a["source"]} if "source" in a else {}),
            "predictions": a["predictions"],
        }
        for r, a in zip(records, answers, strict=True)
    ]


def photo_summary(photos: dict[str, int]) -> str:
    """``12 photos: 9 used, 2 dropped as portrait noise, 1 unreadable (missing 1)`` for a summary line."""
    used = sum(n for status, n in photos.items() if status in USED)
    dropped = photos.get("dropped_portrait", 0)
    failed = {status: n for status, n in photos.items() if status not in USED and status != "dropped_portrait"}
    parts = [f"{used} used"]
    if dropped:
        parts.append(f"{dropped} dropped as portrait noise")
    if photos.get("kept_unfiltered"):
        parts.append(f"{photos['kept_unfiltered']} of the used without the portrait filter")
    if failed:
        detail = ", ".join(f"{status} {n}" for status, n in sorted(failed.items()))
        parts.append(f"{sum(failed.values())} unreadable ({detail})")
    return f"{sum(photos.values())} photos: " + ", ".join(parts)


class _JsonlWriter:
    def __init__(self, path: Path):
        from postloc.io.atomic import atomic_open

        self._context = atomic_open(path, "w")
        self._handle = self._context.__enter__()

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        error = RuntimeError("aborted")
        with contextlib.suppress(RuntimeError):
            self._context.__exit__(RuntimeError, error, None)


class _ParquetWriter:
    """One row group per batch: id, poi, confidence, reason and a list of (poi, name, probability, lat, lon) structs."""

    def __init__(self, path: Path, sources: bool = False):
        import pyarrow.parquet as pq

        from postloc.io.atomic import atomic_path

        self.schema = prediction_schema(sources)
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self._rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self._rows += len(rows)

    def close(self) -> None:
        if self._rows == 0:
            self.write([])
        self._writer.close()
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        error = RuntimeError("aborted")
        with contextlib.suppress(RuntimeError):
            self._context.__exit__(RuntimeError, error, None)


def prediction_schema(sources: bool = False):
    """The Arrow schema of Parquet predictions: ``id``, the decision (``poi``, null when the post's calibrated
    ``confidence`` is below ``min_confidence``, and ``reason``) and a list of ``{poi, name, probability, lat, lon}``.

    With ``sources`` (names in use), the row and every candidate also have ``source``.
    Shared by ``postloc predict`` and the Ray engine, so both write the same files.
    """
    import pyarrow as pa

    source = [("source", pa.string())] if sources else []
    entry = pa.struct(
        [
            ("poi", pa.string()),
            ("name", pa.string()),
            ("probability", pa.float64()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            *source,
        ]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("poi", pa.string()),
            ("confidence", pa.float64()),
            ("reason", pa.string()),
            *source,
            ("predictions", pa.list_(entry)),
        ]
    )


def _writer(path: Path, fmt: str, sources: bool = False):
    return _ParquetWriter(path, sources) if fmt == "parquet" else _JsonlWriter(path)
