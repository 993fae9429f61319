"""Batch prediction with Ray Data: Parquet/JSONL in, a folder of Parquet files out, the model in an actor pool.

Flow: ``ray.data.read_parquet`` (or ``read_text`` for JSONL, one line per row) streams the posts in
blocks; ``map_batches`` hands ``--batch-size`` rows at a time to a pool of ``--workers`` actors
(:class:`PredictActor`), each of which loads the run folder once in its constructor and then
predicts batch after batch; the results are written by ``write_parquet`` as they come, one file
per write task. Memory on every process stays bounded by a few blocks, whatever the input size.

Every row goes through the same code as ``postloc predict``: validation by
:meth:`postloc.data.schema.Post.from_record`, then :func:`postloc.inference.batch.with_photo` (the
precomputed ``image_vector`` or the photos through the run's image path), then the predictor's road
(:meth:`~postloc.inference.predictor.Predictor.records`, then ``answers``: calibrated; no ``min_confidence``).
The output has the columns ``postloc predict`` writes to Parquet: ``id``, ``poi``, ``confidence``, ``reason``
and ``predictions`` (list of ``{poi, name, probability, lat, lon}``).

Photos are embedded by the actor itself, through the run's image path (:class:`postloc.inference.images.PhotoFeatures`:
training's portrait filter, the backbone loaded once per actor on first use, the content-hash cache
of ``postloc images`` looked up first and extended after each batch), rather than joined from a
feature table: a join is a shuffle of the whole input on a cluster, and a feature table computed by
``postloc images`` covers only the prepared training posts, not new posts. Embedding in the actor
gives exactly what the local ``postloc predict`` computes for the same post.

Limits against the local path: bad records are named by file (the row number is not known inside
a distributed read); ids are not checked for duplicates across the input (that needs a global
shuffle); CSV, compressed JSONL and Instaloader folders are not read (convert them with
``postloc prepare`` or use the local engine).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from postloc.errors import BadInputError, OutputPathError, PostlocError
from postloc.inference.batch import prediction_rows, prediction_schema, with_photo
from postloc.inference.photos import DEFAULT_MAX_PIXELS
from postloc.io.ownership import check_not_input
from postloc.scale._ray import RaySettings, ray_session, write_parquet_parts

PATH_COLUMN = "path"  # added by Ray's readers with include_paths=True
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


def detect_input(source: Path, fmt: str | None) -> str:
    """``parquet`` or ``jsonl`` for a file or a folder of files; anything else is a clear error."""
    if not source.exists():
        raise BadInputError(source, None, None, "no such file or folder")
    if fmt is None:
        names = [p.name.lower() for p in (sorted(source.iterdir()) if source.is_dir() else [source])]
        if any(n.endswith(PARQUET_SUFFIXES) for n in names):
            fmt = "parquet"
        elif any(n.endswith(JSONL_SUFFIXES) for n in names):
            fmt = "jsonl"
        else:
            fmt = "other"
    if fmt not in ("parquet", "jsonl"):
        raise PostlocError(
            f"{source}: --engine ray reads Parquet or JSONL (a file or a folder of files); "
            "convert other input with `postloc prepare`, or use --engine local"
        )
    return fmt


class PredictActor:
    """One model replica: the run is loaded once per actor, then every batch reuses it.

    Constructed by Ray inside the actor process (``fn_constructor_kwargs``), so what travels is
    only the run path and a few settings, never the model.
    """

    def __init__(
        self,
        run: str,
        top_k: int,
        fmt: str,
        images: bool,
        skip_bad: bool,
        threads: int,
        featurizer: Callable | None = None,
        max_pixels: int | None = None,
    ):
        import torch

        from postloc.inference.images import photos_for_run
        from postloc.inference.predictor import load

        torch.set_num_threads(max(1, threads))
        self.predictor = load(run)
        self.photos = (
            photos_for_run(
                run, self.predictor, featurizer, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, warn=_log_once
            )[0]
            if images
            else None
        )
        self.top_k, self.fmt, self.skip_bad = top_k, fmt, skip_bad
        self.schema = prediction_schema()

    def __call__(self, batch):
        import pyarrow as pa

        from postloc.data.schema import Post

        posts = []
        for row in batch.to_pylist():
            source = str(row.pop(PATH_COLUMN, "") or "<ray input>")
            try:
                record = self._parse(row, source)
                post = Post.from_record(record, source=source, base_dir=str(Path(source).parent))
            except BadInputError:
                if self.skip_bad:
                    continue
                raise
            posts.append(with_photo(post, self.photos))
        if self.photos is not None:
            self.photos.flush()  # an actor has no end hook: new cache rows are written batch by batch
        records = self.predictor.records(posts)
        answers = self.predictor.answers(records, top_k=self.top_k, batch_size=max(1, len(records)))
        return pa.Table.from_pylist(prediction_rows(records, answers), schema=self.schema)

    def _parse(self, row: dict[str, Any], source: str) -> Any:
        if self.fmt != "jsonl":
            return row
        line = row.get("text", "")
        try:
            return json.loads(line)
        except json.JSONDecodeError as error:
            raise BadInputError(source, None, None, f"a line is not valid JSON ({error.msg}): {line[:80]!r}") from None


def _log_once(message: str) -> None:
    import logging

    logging.getLogger("postloc.scale").warning(message)


def check_parts_folder(out: Path, inputs: list[Path]) -> None:
    """Replace ``out`` only when it is new, empty or an earlier output of this job (``part-*.parquet`` only).

    The folder is swapped in whole at the end, so anything else in it would be deleted.
    """
    check_not_input(out, inputs)
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputPathError(f"{out}: exists and is not a folder; --engine ray writes a folder of Parquet files")
    foreign = [
        p.name for p in out.iterdir() if not (p.is_file() and p.name.startswith("part-") and p.suffix == ".parquet")
    ]
    if foreign:
        raise OutputPathError(
            f"{out} holds files that are not an earlier prediction's part-*.parquet (e.g. {foreign[0]!r}); "
            f"refusing to replace it: choose a new or empty folder"
        )


def predict_ray(
    run: str | Path,
    source: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    top_k: int = 5,
    batch_size: int = 1024,
    fmt: str | None = None,
    skip_bad: bool = False,
    images: bool = True,
    threads: int | None = None,
    featurizer: Callable | None = None,
    settings: RaySettings | None = None,
    rows_per_file: int | None = None,
) -> dict[str, Any]:
    """Predict every post of ``source`` into the folder ``out`` (``part-*.parquet``); returns counts.

    ``out`` is built under a temporary name and renamed at the end (an older folder is replaced
    only then), so a failed job leaves no half-written output. ``threads``: torch threads per actor
    (default: this machine's cores shared among the workers).
    """
    from postloc.inference.predictor import load
    from postloc.scale._ray import require_ray

    require_ray()
    run, source, out = Path(run), Path(source), Path(out)
    if workers < 1 or batch_size < 1 or top_k < 1:
        raise PostlocError("--workers, --batch-size and --top-k must be at least 1")
    if out.suffix.lower() in (".jsonl", ".ndjson", ".json", ".csv"):
        raise PostlocError(f"{out}: --engine ray writes a folder of Parquet files; give a folder name")
    check_parts_folder(out, [source, run])
    fmt = detect_input(source, fmt)
    load(run)  # fail here, with the run's own message, before any actor starts
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    counts: dict[str, Any] = {"engine": "ray", "workers": workers}
    with ray_session(settings or RaySettings(), workers) as ray:
        started = time.perf_counter()
        counts["ray_address"] = ray.get_runtime_context().gcs_address
        if fmt == "parquet":
            dataset = ray.data.read_parquet(str(source), include_paths=True, file_extensions=["parquet", "pq"])
        else:
            dataset = ray.data.read_text(
                str(source), include_paths=True, file_extensions=[s.lstrip(".") for s in JSONL_SUFFIXES]
            )
        # Streaming re-chunking (no shuffle): one block per batch, so batches spread over the actors
        # even when the input is one file.
        dataset = dataset.repartition(target_num_rows_per_block=batch_size)
        predicted = dataset.map_batches(
            PredictActor,
            batch_size=batch_size,
            batch_format="pyarrow",
            concurrency=workers,
            num_cpus=1,
            fn_constructor_kwargs=dict(
                run=str(run.resolve()),
                top_k=top_k,
                fmt=fmt,
                images=images,
                skip_bad=skip_bad,
                threads=threads,
                featurizer=featurizer,
            ),
        )

        write_parquet_parts(predicted, out, rows_per_file)
        counts["seconds"] = round(time.perf_counter() - started, 3)
    files = sorted(out.glob("part-*.parquet"))
    counts["files"] = len(files)
    counts["posts"] = _parquet_rows(files)
    if fmt == "parquet":
        counts["skipped"] = _parquet_rows(_input_files(source)) - counts["posts"]
    return counts


def _input_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in PARQUET_SUFFIXES)


def _parquet_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
