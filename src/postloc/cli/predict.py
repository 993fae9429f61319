"""``postloc predict``: a file of posts through a trained run (the library is :mod:`postloc.inference.batch`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from postloc.cli._args import add_name_flags, check_name_flags, fraction
from postloc.errors import PostlocError
from postloc.io.escape import term


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict POIs for a file of posts (streaming JSONL/CSV/Parquet in, JSONL/Parquet out)",
        description="Top-k POIs with probability and centre for every post of INPUT.",
    )
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder (or a saved model folder)")
    p.add_argument(
        "input", type=Path, help="posts: JSONL, CSV or Parquet in the exchange format, or - for JSONL on stdin"
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="output .jsonl or .parquet (written atomically), or - for JSONL on stdout",
    )
    p.add_argument("--format", choices=("jsonl", "csv", "parquet"), help="input format (default: from the name)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument(
        "--min-confidence",
        type=fraction,
        metavar="X",
        help="abstain below this calibrated confidence (0..1): the post's poi is null with a reason, "
        "its ranked candidates are still written",
    )
    add_name_flags(
        p,
        "POIs known by name (CSV poi,lat,lon,name or an OpenStreetMap GeoJSON of named points): "
        "also predict POIs without training posts from the names posts write; each answer gets a "
        "source (model, names, model+names); docs/cold-start.md",
    )
    p.add_argument("--batch-size", type=int, default=1024, help="posts read, predicted and written at a time")
    p.add_argument("--skip-bad", action="store_true", help="skip bad input records (reported) instead of stopping")
    p.add_argument("--no-images", action="store_true", help="ignore photo files even when a featurizer is available")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("scaling out (docs/scale-ray.md)")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: a Ray Data job, Parquet/JSONL in, "
        "a folder of Parquet files out (needs pip install 'postloc[ray]')",
    )
    g.add_argument("--workers", type=int, default=1, help="--engine ray: actors, each holding the model (default 1)")
    g.add_argument("--threads", type=int, help="--engine ray: torch threads per actor (default: cores / workers)")
    g.add_argument("--ray-address", help="--engine ray: join this cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.set_defaults(run=run_predict)


def run_predict(args) -> int:
    from postloc.inference.batch import photo_summary, predict_file

    check_name_flags(args)
    if args.engine == "ray":
        if str(args.input) == "-":
            raise PostlocError("--engine ray reads files; give a file of posts, or use the local engine for -")
        if args.min_confidence is not None:
            raise PostlocError("--min-confidence is not supported with --engine ray yet; use the local engine")
        if args.pois is not None:
            raise PostlocError("--pois is not supported with --engine ray yet; use the local engine")
        return _run_predict_ray(args)
    counts = predict_file(
        args.run_dir,
        args.input,
        args.out,
        **_reading(args),
        progress=not args.quiet,
        min_confidence=args.min_confidence,
        names=args.pois,
        name_weight=args.name_weight,
    )
    # With -o - the predictions are the standard output: the summary goes to stderr, out of their way.
    summary = sys.stderr if str(args.out) == "-" else sys.stdout
    print(
        f"wrote {args.out}: {counts['posts']} posts"
        + (f", {counts['skipped']} bad records skipped" if counts.get("skipped") else "")
        + (
            f", {counts.get('abstained', 0)} below --min-confidence {args.min_confidence:g} (poi null)"
            if args.min_confidence is not None
            else ""
        )
        + (
            f", photos used for {counts['images_used']} of {counts['with_images']} posts with photos"
            if counts["with_images"]
            else ""
        )
        + (f" ({photo_summary(counts['photos'])})" if counts.get("photos") else "")
        + (
            f"; {counts['names']['places']} named places in --pois, "
            f"{counts['names']['name_only_pois']} of them known by name only"
            if counts.get("names")
            else ""
        ),
        file=summary,
    )
    for note in counts.get("image_notes", []):
        print(f"note: {term(note)}", file=sys.stderr)
    if counts.get("image_note"):
        print(f"note: {term(counts['image_note'])}", file=sys.stderr)
    return 0


def _run_predict_ray(args) -> int:
    from postloc.scale import RaySettings, predict_ray

    counts = predict_ray(
        args.run_dir,
        args.input,
        args.out,
        workers=args.workers,
        **_reading(args),
        threads=args.threads,
        settings=RaySettings(address=args.ray_address, progress=not args.quiet),
    )
    print(
        f"wrote {args.out}/ ({counts['files']} Parquet files): {counts['posts']} posts with {args.workers} "
        f"Ray worker(s) in {counts['seconds']} s"
        + (f", {counts['skipped']} bad records skipped" if counts.get("skipped") else "")
    )
    return 0


def _reading(args: argparse.Namespace) -> dict[str, Any]:
    """What the local and the Ray engine read and write alike: top-k, batch size, input format, bad
    records, photos."""
    return {
        "top_k": args.top_k,
        "batch_size": args.batch_size,
        "fmt": args.format,
        "skip_bad": args.skip_bad,
        "images": not args.no_images,
    }
