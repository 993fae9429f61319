"""``postloc quickstart INPUT --out DIR``: prepare, images, score, train, report, then serve.

A thin layer over :func:`postloc.quickstart.quickstart`: it reads the few options a user may set,
runs the steps, prints the scores and where the report is, and then serves the run exactly as
``postloc serve DIR/run`` would (``--no-serve`` prints that command instead).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from postloc.cli.prepare import _columns
from postloc.errors import PostlocError
from postloc.io.escape import term


def add_parser(sub) -> None:
    """Register ``quickstart``."""
    from postloc.training.config import DEFAULT_MODEL

    p = sub.add_parser(
        "quickstart",
        help="from raw posts to a served model in one command (settings chosen from the data)",
        description="Scan INPUT, choose small-data settings (printed, with why), prepare, compute image "
        "features when there are photos, score the default model against tfidf-logreg and the majority "
        "class on user-disjoint folds, train it, write DIR/report.html and serve DIR/run. Resumable: "
        "run it again after an interruption.",
    )
    p.add_argument(
        "input", help="a JSONL/CSV/Parquet file, an Instaloader download folder, or an embedded data set (dresden)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (a new one, or an earlier quickstart's)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="model to train and serve (default %(default)s)")
    g = p.add_argument_group("reading (bad records are always skipped and counted)")
    g.add_argument("--format", choices=("jsonl", "csv", "parquet", "instaloader"), help="default: from the name")
    g.add_argument("--columns", type=_columns, default={}, help="KEY=COLUMN pairs, e.g. lon=lng,text=caption")
    g.add_argument("--list-sep", default=";", help="separator of hashtags/images inside one CSV cell (default ;)")
    g.add_argument(
        "--pois",
        type=Path,
        help="POI table CSV poi,lat,lon[,name]: POI centres; with a name column also the POIs answered by name",
    )
    g = p.add_argument_group(
        "prepare settings (default: chosen from the data and printed with why; given here: used as given)"
    )
    g.add_argument("--min-hashtag-count", type=int, help="drop hashtags used by fewer posts (those naming a POI stay)")
    g.add_argument("--languages", help="comma-separated ISO 639-1 codes to keep, or 'any'")
    g.add_argument("--poi-method", choices=("auto", "labels", "hdbscan", "dbscan", "grid"))
    g.add_argument("--min-poi-posts", type=int, help="drop POIs with fewer posts")
    g.add_argument("--min-poi-users", type=int, help="drop POIs with fewer users")
    g.add_argument("--poi-min-samples", type=int, help="HDBSCAN/DBSCAN core density")
    g.add_argument(
        "--basemap",
        type=Path,
        metavar="FILE",
        help="streets and shores drawn under the report's and the page's map, offline: a GeoJSON of lines and "
        "areas (e.g. osmium export extract.osm.pbf -o streets.geojson); nothing is fetched from the network",
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--no-images", action="store_true", help="do not compute image features even when there are photos")
    g.add_argument("--folds", type=int, help="user-disjoint folds for the scores (default: 5, or 0 for large data)")
    g.add_argument("--seed", type=int, default=0, help="seed of splits, folds and training (default 0)")
    g.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    g.add_argument("--quick", action="store_true", help="tiny model settings, 2 epochs: for tests")
    g = p.add_argument_group("serving")
    g.add_argument("--no-serve", action="store_true", help="print the serve command instead of serving")
    g.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (local only)")
    g.add_argument("--port", type=int, default=8000)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc import datasets
    from postloc.data.prepare import ReadOptions
    from postloc.quickstart import QuickstartConfig, quickstart

    if args.folds is not None and (args.folds == 1 or args.folds < 0):
        raise PostlocError(f"--folds must be 0 (the prepared test split) or at least 2, got {args.folds}")
    if args.threads < 1:
        raise PostlocError(f"--threads must be at least 1, got {args.threads}")
    settings = _settings(args)
    source = Path(args.input)
    read = ReadOptions(format=args.format, columns=args.columns, list_sep=args.list_sep, skip_bad=True)
    if not source.exists() and args.input in datasets.names():
        source = datasets.path(args.input)
        embedded = datasets.read_options(args.input)
        read = ReadOptions(format=embedded.format, columns=embedded.columns, list_sep=embedded.list_sep, skip_bad=True)
    config = QuickstartConfig(
        model=args.model,
        read=read,
        pois_csv=str(args.pois) if args.pois else None,
        images=not args.no_images,
        folds=args.folds,
        seed=args.seed,
        threads=args.threads,
        quick=args.quick,
        progress=not args.quiet,
        settings=settings,
        basemap=str(args.basemap) if args.basemap else None,
    )
    result = quickstart(source, args.out, config)
    for model, scores in sorted(result.scores.items(), key=lambda kv: -(kv[1].get("accuracy") or 0)):
        acc, km = scores.get("accuracy"), scores.get("mean_km")
        print(
            f"{model:>14}: accuracy {'–' if acc is None else f'{acc:.3f}'}, "
            f"mean error {'–' if km is None else f'{km:.2f} km'}"
        )
    if result.verdict:
        print("verdict: " + term(result.verdict["sentence"]))
    print(f"report: {result.report}")
    serve_argv = ["serve", str(result.run_dir), "--host", args.host, "--port", str(args.port)]
    if result.name_only_places is not None:  # POIs too small to train on are still answered by name
        serve_argv += ["--pois", str(result.name_only_places)]
    if args.basemap:
        serve_argv += ["--basemap", str(args.basemap)]
    if args.no_serve:
        print("serve it with: postloc " + shlex.join(serve_argv))
        return 0
    from postloc.cli import serve

    parser = argparse.ArgumentParser(prog="postloc")
    serve.add_parser(parser.add_subparsers(dest="command", required=True))
    print(f"serving {result.run_dir} (Ctrl-C stops; the same as: postloc {shlex.join(serve_argv)})", file=sys.stderr)
    return serve.run_serve(parser.parse_args(serve_argv))


def _settings(args) -> dict:
    """The prepare settings given on the command line (``choices.SETTABLE``), checked as ``prepare`` checks them."""
    from postloc.quickstart.choices import SETTABLE

    given = {name: getattr(args, name) for name in SETTABLE if getattr(args, name, None) is not None}
    for name in ("min_poi_posts", "min_poi_users", "poi_min_samples"):
        if name in given and given[name] < 1:
            raise PostlocError(f"--{name.replace('_', '-')} must be at least 1, got {given[name]}")
    if given.get("min_hashtag_count", 0) < 0:
        raise PostlocError(f"--min-hashtag-count must be >= 0, got {given['min_hashtag_count']}")
    return given
