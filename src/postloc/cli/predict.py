"""``postloc predict``, ``postloc serve`` and ``postloc explain``: using a trained run.

``predict`` streams: posts come from the reader in batches of ``--batch-size`` and every batch's
predictions are written before the next is read, so memory does not grow with the input (a
million posts never sit in memory at once). Photos are read from disk per batch and turned into
features with the run's backbone when it can be rebuilt here (see :mod:`postloc.inference.images`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from postloc.errors import PostlocError

OUT_FORMATS = ("jsonl", "parquet")


def add_parsers(sub) -> None:
    _add_predict(sub)
    _add_serve(sub)
    _add_explain(sub)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict POIs for a file of posts (streaming JSONL/CSV/Parquet in, JSONL/Parquet out)",
                       description="Top-k POIs with probability and centre for every post of INPUT.")
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder (or a saved model folder)")
    p.add_argument("input", type=Path, help="posts: JSONL, CSV or Parquet in the exchange format")
    p.add_argument("-o", "--out", type=Path, required=True, help="output .jsonl or .parquet (written atomically)")
    p.add_argument("--format", choices=("jsonl", "csv", "parquet"), help="input format (default: from the name)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1024, help="posts read, predicted and written at a time")
    p.add_argument("--skip-bad", action="store_true", help="skip bad input records (reported) instead of stopping")
    p.add_argument("--no-images", action="store_true", help="ignore photo files even when a featurizer is available")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("scaling out (docs/scale-ray.md)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a Ray Data job, Parquet/JSONL in, "
                        "a folder of Parquet files out (needs pip install 'postloc[ray]')")
    g.add_argument("--workers", type=int, default=1, help="--engine ray: actors, each holding the model (default 1)")
    g.add_argument("--threads", type=int, help="--engine ray: torch threads per actor (default: cores / workers)")
    g.add_argument("--ray-address", help="--engine ray: join this cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.set_defaults(run=run_predict)


def _add_serve(sub) -> None:
    from postloc.serve.limits import Limits

    d = Limits()
    p = sub.add_parser("serve", help="HTTP API and web page for a trained run",
                       description="Serve RUN: POST /v1/predict, /v1/explain, GET /v1/pois, /healthz, /docs, page at /.")
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (local only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: torch's)")
    g = p.add_argument_group("limits")
    g.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="(default %(default)s)")
    g.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels, help="(default %(default)s)")
    g.add_argument("--max-text-chars", type=int, default=d.max_text_chars, help="(default %(default)s)")
    g.add_argument("--rate", type=float, default=d.rate_per_second, help="requests/s per client IP (default %(default)s)")
    g.add_argument("--burst", type=int, default=d.burst, help="token bucket size per client (default %(default)s)")
    g = p.add_argument_group("page")
    g.add_argument("--tiles", default=None, help="tile URL template for the map, e.g. "
                                                 "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)")
    g.add_argument("--tile-attribution", default="")
    g.add_argument("--cors-origin", action="append", default=[], help="allow this origin (repeatable; default: CORS off)")
    p.set_defaults(run=run_serve)


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="which words, hashtags and the photo give a post's location away",
                       description="Occlusion: remove each part of the post and show the drop of the predicted "
                                   "POI's probability.")
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    p.add_argument("--text", default="", help="caption")
    p.add_argument("--hashtags", default="", help="hashtags, space or comma separated")
    p.add_argument("--image", type=Path, help="photo file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run_explain)


# --- predict ----------------------------------------------------------------------------------

def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def image_vector(paths: list[str], featurize, max_pixels: int) -> np.ndarray | None:
    """Mean feature vector of a post's readable photos (as ``postloc images`` does), or None."""
    from postloc.inference.images import ImageRejected, decode_upload
    from postloc.serve.limits import sniff_image

    vectors = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
            if sniff_image(data) is None:
                continue
            vectors.append(np.asarray(featurize(decode_upload(data, max_pixels)), dtype=np.float32))
        except (OSError, ImageRejected):
            continue
    return np.mean(vectors, axis=0) if vectors else None


def post_record(post, featurizer, max_pixels: int) -> dict[str, Any]:
    """What the predictor is given for one validated post: text, hashtags and, when there is one, the
    image vector (a precomputed ``image_vector`` wins; else the photos through ``featurizer``).

    Shared by the local path and the Ray engine (:mod:`postloc.scale.ray_predict`), so both feed the
    model exactly the same inputs.
    """
    record: dict[str, Any] = {"id": post.id, "text": post.text, "hashtags": list(post.hashtags)}
    vector = post.extra.get("image_vector")
    if vector is None and post.images and featurizer is not None:
        vector = image_vector(post.images, featurizer, max_pixels)
    if vector is not None:
        record["image_vector"] = vector
    return record


def predict_file(run: Path, source: Path, out: Path, *, top_k: int = 5, batch_size: int = 1024,
                 fmt: str | None = None, skip_bad: bool = False, images: bool = True, progress: bool = True,
                 predictor=None, featurizer=None) -> dict[str, Any]:
    """Stream ``source`` through the run's model into ``out``; returns counts."""
    from tqdm import tqdm

    from postloc.data.readers import SkipReport, read_posts
    from postloc.inference.predictor import load
    from postloc.inference.images import featurizer_for_run
    from postloc.serve.limits import Limits

    if batch_size < 1 or top_k < 1:
        raise PostlocError("--batch-size and --top-k must be at least 1")
    out_fmt = "parquet" if out.suffix.lower() in (".parquet", ".pq") else "jsonl"
    predictor = predictor or load(run)
    info = None
    if images and featurizer is None:
        info = featurizer_for_run(run, int(getattr(predictor.model, "image_dim", 0) or 0))
        featurizer = info.featurizer
    report = SkipReport()
    posts = read_posts(source, format=fmt, skip_bad=skip_bad, report=report)
    counts = {"posts": 0, "with_images": 0, "images_used": 0}
    bar = tqdm(desc="predict", unit="post", disable=not progress, file=sys.stderr)
    writer = _writer(out, out_fmt)
    try:
        for batch in _batches(posts, batch_size):
            records = []
            for post in batch:
                record = post_record(post, featurizer, Limits().max_image_pixels)
                counts["with_images"] += bool(post.images)
                counts["images_used"] += "image_vector" in record
                records.append(record)
            ranked = predictor.predict(records, top_k=top_k, batch_size=batch_size)
            writer.write([{"id": r["id"], "predictions": p} for r, p in zip(records, ranked)])
            counts["posts"] += len(batch)
            bar.update(len(batch))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    counts["skipped"] = report.skipped
    if info is not None and counts["with_images"] and not counts["images_used"]:
        counts["image_note"] = info.reason
    return counts


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
        try:
            self._context.__exit__(RuntimeError, error, None)
        except RuntimeError:
            pass


class _ParquetWriter:
    """One row group per batch: id plus a list of (poi, name, probability, lat, lon) structs."""

    def __init__(self, path: Path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from postloc.io.atomic import atomic_path

        self.pa = pa
        entry = pa.struct([("poi", pa.string()), ("name", pa.string()), ("probability", pa.float64()),
                           ("lat", pa.float64()), ("lon", pa.float64())])
        self.schema = pa.schema([("id", pa.string()), ("predictions", pa.list_(entry))])
        self._context = atomic_path(path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self._rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._writer.write_table(self.pa.Table.from_pylist(rows, schema=self.schema))
        self._rows += len(rows)

    def close(self) -> None:
        if self._rows == 0:
            self._writer.write_table(self.pa.Table.from_pylist([], schema=self.schema))
        self._writer.close()
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        self._writer.close()
        error = RuntimeError("aborted")
        try:
            self._context.__exit__(RuntimeError, error, None)
        except RuntimeError:
            pass


def _writer(path: Path, fmt: str):
    return _ParquetWriter(path) if fmt == "parquet" else _JsonlWriter(path)


def run_predict(args) -> int:
    if args.engine == "ray":
        return _run_predict_ray(args)
    counts = predict_file(args.run_dir, args.input, args.out, top_k=args.top_k, batch_size=args.batch_size,
                          fmt=args.format, skip_bad=args.skip_bad, images=not args.no_images,
                          progress=not args.quiet)
    print(f"wrote {args.out}: {counts['posts']} posts"
          + (f", {counts['skipped']} bad records skipped" if counts.get("skipped") else "")
          + (f", photos used for {counts['images_used']} of {counts['with_images']} posts with photos"
             if counts["with_images"] else ""))
    if counts.get("image_note"):
        print(f"note: {counts['image_note']}", file=sys.stderr)
    return 0


def _run_predict_ray(args) -> int:
    from postloc.scale import RaySettings, predict_ray

    counts = predict_ray(args.run_dir, args.input, args.out, workers=args.workers, top_k=args.top_k,
                         batch_size=args.batch_size, fmt=args.format, skip_bad=args.skip_bad,
                         images=not args.no_images, threads=args.threads,
                         settings=RaySettings(address=args.ray_address, progress=not args.quiet))
    print(f"wrote {args.out}/ ({counts['files']} Parquet files): {counts['posts']} posts with {args.workers} "
          f"Ray worker(s) in {counts['seconds']} s"
          + (f", {counts['skipped']} bad records skipped" if counts.get("skipped") else ""))
    return 0


# --- serve ------------------------------------------------------------------------------------

def build_app(run: Path, settings=None, featurizer=None):
    """Load the run once and build the app (what ``postloc serve`` and the benchmark run)."""
    from postloc.inference.predictor import load
    from postloc.serve.app import create_app
    from postloc.inference.images import featurizer_for_run

    predictor = load(run)
    info = featurizer if featurizer is not None else featurizer_for_run(
        run, int(getattr(predictor.model, "image_dim", 0) or 0))
    return create_app(predictor, settings, info, model_name=getattr(predictor.model, "name", ""))


def run_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PostlocError("postloc serve needs the serve extra: pip install 'postloc[serve]'") from None
    from postloc.serve.app import ServeSettings
    from postloc.serve.limits import Limits

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    limits = Limits(max_body_bytes=args.max_body_bytes, max_image_pixels=args.max_image_pixels,
                    max_text_chars=args.max_text_chars, rate_per_second=args.rate, burst=args.burst)
    settings = ServeSettings(limits=limits, tile_url=args.tiles, tile_attribution=args.tile_attribution,
                             cors_origins=tuple(args.cors_origin))
    app = build_app(args.run_dir, settings)
    print(f"serving {args.run_dir} on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", server_header=False)
    return 0


# --- explain ----------------------------------------------------------------------------------

def run_explain(args) -> int:
    import re

    from postloc.inference.explain import explain
    from postloc.inference.predictor import load
    from postloc.inference.images import ImageRejected, decode_upload, featurizer_for_run
    from postloc.serve.limits import Limits, sniff_image

    predictor = load(args.run_dir)
    post: dict[str, Any] = {"id": "cli", "text": args.text,
                            "hashtags": [t for t in re.split(r"[\s,]+", args.hashtags) if t]}
    if args.image is not None:
        info = featurizer_for_run(args.run_dir, int(getattr(predictor.model, "image_dim", 0) or 0))
        try:
            data = args.image.read_bytes()
        except OSError as error:
            raise PostlocError(f"{args.image}: {error.strerror or error}") from None
        if sniff_image(data) is None:
            raise PostlocError(f"{args.image}: not a supported image (JPEG, PNG, GIF, BMP, WebP)")
        try:
            decoded = decode_upload(data, Limits().max_image_pixels)
        except ImageRejected as error:
            raise PostlocError(f"{args.image}: {error.message}") from None
        if info.featurizer is None:
            print(f"note: {info.reason}", file=sys.stderr)
        else:
            post["image_vector"] = info.featurizer(decoded)
    result = explain(predictor, post)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0
