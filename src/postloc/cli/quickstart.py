"""``postloc quickstart INPUT --out DIR``: prepare, images, score, train, report, then serve.

A thin layer over :func:`postloc.quickstart.quickstart`: it reads the few options a user may set (flags
derived from ``QuickstartConfig``, ``PrepareConfig`` and ``serve``'s ``Listen``, which check the values), runs
the steps, prints the scores and where the report is, and then serves the run exactly as
``postloc serve DIR/run`` would (``--no-serve`` prints that command instead).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from postloc.cli._args import add_engine_flags, add_flags, cell_executor, from_args
from postloc.cli.prepare import _columns
from postloc.io.escape import term


def add_parser(sub) -> None:
    """Register ``quickstart``."""
    from postloc.cli.serve import Listen
    from postloc.data.prepare import PrepareConfig, ReadOptions
    from postloc.quickstart import QuickstartConfig
    from postloc.quickstart.choices import SETTABLE

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
    add_flags(p, QuickstartConfig, "model")
    g = p.add_argument_group("reading (bad records are always skipped and counted)")
    # prepare's reading flags; bad records are always skipped here
    add_flags(
        g,
        ReadOptions,
        "format",
        "columns",
        "list_sep",
        columns={"type": _columns, "help": "KEY=COLUMN pairs, e.g. lon=lng,text=caption"},
    )
    g.add_argument(
        "--pois",
        type=Path,
        help="POI table CSV poi,lat,lon[,name]: POI centres; with a name column also the POIs answered by name",
    )
    g = p.add_argument_group(
        "prepare settings (default: chosen from the data and printed with why; given here: used as given)"
    )
    # prepare's flags (name, type, choices), with no default: a setting not given is chosen from the data
    add_flags(
        g,
        PrepareConfig,
        *SETTABLE,
        min_hashtag_count={"default": None, "help": "drop hashtags used by fewer posts (those naming a POI stay)"},
        languages={"default": None, "type": str, "help": "comma-separated ISO 639-1 codes to keep, or 'any'"},
        poi_method={"default": None, "help": None},
        min_poi_posts={"default": None, "help": "drop POIs with fewer posts"},
        min_poi_users={"default": None, "help": "drop POIs with fewer users"},
        poi_min_samples={"default": None, "help": "HDBSCAN/DBSCAN core density"},
    )
    g.add_argument(
        "--basemap",
        type=Path,
        metavar="FILE",
        help="streets and shores drawn under the report's and the page's map, offline: a GeoJSON of lines and "
        "areas (e.g. osmium export extract.osm.pbf -o streets.geojson); nothing is fetched from the network",
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--no-images", action="store_true", help="do not compute image features even when there are photos")
    add_flags(g, QuickstartConfig, "folds", "seed", "threads", "quick")
    g = p.add_argument_group("serving")
    g.add_argument("--no-serve", action="store_true", help="print the serve command instead of serving")
    add_flags(g, Listen, "host", "port", host={"help": "default 127.0.0.1 (local only)"})
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_engine_flags(
        p,
        "the scoring step's cells (one per fold and model)",
        "one after another in this process",
        "each cell a task of --threads CPUs; several machines need --out on a filesystem they all mount; "
        "the same scores",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc import datasets
    from postloc.cli.serve import Listen
    from postloc.data.prepare import ReadOptions
    from postloc.quickstart import QuickstartConfig, quickstart

    from_args(Listen, args, "host", "port")  # checked now, not after the steps have run
    settings = _settings(args)
    source = Path(args.input)
    read = from_args(ReadOptions, args, "format", "columns", "list_sep", skip_bad=True)
    if not source.exists() and args.input in datasets.names():
        source = datasets.path(args.input)
        embedded = datasets.read_options(args.input)
        read = ReadOptions(format=embedded.format, columns=embedded.columns, list_sep=embedded.list_sep, skip_bad=True)
    config = from_args(
        QuickstartConfig,
        args,
        "model",
        "folds",
        "seed",
        "threads",
        "quick",
        read=read,
        pois_csv=str(args.pois) if args.pois else None,
        images=not args.no_images,
        progress=not args.quiet,
        settings=settings,
        basemap=str(args.basemap) if args.basemap else None,
    )
    result = quickstart(source, args.out, config, executor=cell_executor(args, config.threads))
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
    """The prepare settings given on the command line (``choices.SETTABLE``), checked by ``PrepareConfig`` as
    ``prepare`` checks them (the languages are a text here, read by the choices)."""
    from postloc.data.prepare import PrepareConfig
    from postloc.quickstart.choices import SETTABLE

    given = {name: getattr(args, name) for name in SETTABLE if getattr(args, name, None) is not None}
    from_args(PrepareConfig, args, **{k: v for k, v in given.items() if k != "languages"})
    return given
