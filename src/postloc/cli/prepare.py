"""``postloc prepare``: the command-line side of :mod:`postloc.data.prepare`.

Parses the reading options, the paper's filters, the POI and split settings and the engine into
``ReadOptions`` and ``PrepareConfig`` (their defaults are the flags' defaults) and calls ``prepare``.
An embedded data set name (``dresden``) is read with its own reading options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from postloc.cli._args import defaults as config_defaults


def _columns(text: str) -> dict[str, str]:
    """``lon=lng,user=user_guid`` -> ``{"lon": "lng", "user": "user_guid"}``."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, column = part.partition("=")
        if not sep or not key or not column:
            raise argparse.ArgumentTypeError(f"expected KEY=COLUMN pairs, got {part!r}")
        mapping[key.strip()] = column.strip()
    return mapping


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative numbers like 0.7,0.1,0.2, got {text!r}")
    return values


def add_parser(sub) -> None:
    """Register ``prepare``."""
    from postloc.data.prepare import PrepareConfig

    defaults = config_defaults(PrepareConfig)
    p = sub.add_parser(
        "prepare",
        help="clean posts, derive POIs, split by user, print a Table-I summary",
        description="Apply the MRLF paper's cleaning to INPUT and write a prepared dataset to --out.",
    )
    p.add_argument(
        "input", help="a JSONL/CSV/Parquet file, an Instaloader download folder, or an embedded data set name (dresden)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    g = p.add_argument_group("reading")
    g.add_argument("--format", choices=("jsonl", "csv", "parquet", "instaloader"), help="default: from the name")
    g.add_argument(
        "--columns",
        type=_columns,
        default={},
        help="KEY=COLUMN pairs for CSV, JSONL and Parquet, e.g. lon=lng,text=caption",
    )
    g.add_argument("--list-sep", default=";", help="separator of hashtags/images inside one CSV cell (default ;)")
    g.add_argument(
        "--skip-bad", action="store_true", help="skip bad records (counted and reported) instead of stopping"
    )
    g.add_argument(
        "--pois", type=Path, help="POI table CSV poi,lat,lon[,name] giving POI centres (a name also names the POI)"
    )
    g = p.add_argument_group("filters (defaults follow the paper)")
    g.add_argument(
        "--min-hashtag-count",
        type=int,
        default=defaults["min_hashtag_count"],
        help="drop hashtags used by fewer posts (default %(default)s)",
    )
    g.add_argument(
        "--languages",
        default=",".join(defaults["languages"]),
        help="comma-separated ISO 639-1 codes to keep, or 'any' (default %(default)s)",
    )
    g.add_argument(
        "--min-language-letters",
        type=int,
        default=defaults["min_language_letters"],
        help="captions with fewer letters are kept and flagged, not judged (default %(default)s)",
    )
    g.add_argument("--keep-duplicates", action="store_true", help="do not drop same user + text + place repeats")
    g.add_argument("--keep-empty", action="store_true", help="keep posts left with no text, hashtag or image")
    g = p.add_argument_group("POIs")
    g.add_argument(
        "--poi-method",
        default=defaults["poi_method"],
        choices=("auto", "labels", "hdbscan", "dbscan", "grid"),
        help="auto: labels when posts have them, else hdbscan (default %(default)s)",
    )
    g.add_argument("--min-poi-posts", type=int, default=defaults["min_poi_posts"], help="(default %(default)s)")
    g.add_argument("--min-poi-users", type=int, default=defaults["min_poi_users"], help="(default %(default)s)")
    g.add_argument(
        "--poi-min-samples",
        type=int,
        default=defaults["poi_min_samples"],
        help="HDBSCAN/DBSCAN core density (default %(default)s)",
    )
    g.add_argument(
        "--poi-eps-m", type=float, default=defaults["poi_eps_m"], help="DBSCAN radius, metres (default %(default)s)"
    )
    g.add_argument(
        "--poi-cell-m", type=float, default=defaults["poi_cell_m"], help="grid cell, metres (default %(default)s)"
    )
    g.add_argument(
        "--poi-cell-deg",
        type=float,
        default=defaults["poi_cell_deg"],
        help="grid cell in degrees of latitude and longitude, e.g. 0.01; replaces --poi-cell-m when given",
    )
    g = p.add_argument_group("splits")
    g.add_argument(
        "--split",
        type=_fractions,
        default=(defaults["train"], defaults["val"], defaults["test"]),
        help="train,val,test shares of posts (default 0.7,0.1,0.2)",
    )
    g.add_argument("--seed", type=int, default=defaults["seed"])
    g = p.add_argument_group("engine (docs/scale-prepare.md)")
    g.add_argument(
        "--engine",
        choices=("memory", "duckdb"),
        default=defaults["engine"],
        help="memory: pandas, the default; duckdb: out-of-core SQL for 10M+ posts, needs "
        "pip install 'postloc[duckdb]' (default %(default)s)",
    )
    g.add_argument(
        "--memory-limit",
        default=defaults["memory_limit"],
        help="duckdb engine: DuckDB memory limit; beyond it, it spills to disk (default %(default)s)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=defaults["workers"],
        help="processes for normalisation and language id; output order is kept (default %(default)s)",
    )
    g.add_argument(
        "--poi-sample",
        type=int,
        default=defaults["poi_sample"],
        help="duckdb engine: HDBSCAN/DBSCAN on at most this many seeded points, the others by "
        "nearest cluster centre (default %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc import datasets
    from postloc.data.prepare import PrepareConfig, ReadOptions, prepare
    from postloc.io.escape import term, term_skip_summary

    source = Path(args.input)
    read = ReadOptions(format=args.format, columns=args.columns, list_sep=args.list_sep, skip_bad=args.skip_bad)
    if not source.exists() and args.input in datasets.names():
        source = datasets.path(args.input)
        embedded = datasets.read_options(args.input)
        read = ReadOptions(
            format=embedded.format, columns=embedded.columns, list_sep=embedded.list_sep, skip_bad=args.skip_bad
        )
    languages = (
        ()
        if args.languages.strip().lower() in ("any", "all", "")
        else tuple(code.strip().lower() for code in args.languages.split(",") if code.strip())
    )
    train, val, test = args.split
    config = PrepareConfig(
        min_hashtag_count=args.min_hashtag_count,
        languages=languages,
        min_language_letters=args.min_language_letters,
        drop_duplicates=not args.keep_duplicates,
        drop_empty=not args.keep_empty,
        poi_method=args.poi_method,
        min_poi_posts=args.min_poi_posts,
        min_poi_users=args.min_poi_users,
        poi_min_samples=args.poi_min_samples,
        poi_eps_m=args.poi_eps_m,
        poi_cell_m=args.poi_cell_m,
        poi_cell_deg=args.poi_cell_deg,
        train=train,
        val=val,
        test=test,
        seed=args.seed,
        engine=args.engine,
        memory_limit=args.memory_limit,
        workers=args.workers,
        poi_sample=args.poi_sample,
    )
    result = prepare(source, args.out, config, read, pois_csv=args.pois, progress=not args.quiet)
    if result.skip_report.skipped or result.skip_report.warned:  # quotes bad values: printed escaped
        print(term_skip_summary(result.skip_report), file=sys.stderr)
    print(result.markdown, end="")
    print(f"\nwrote {args.out}/ (posts.jsonl, posts.parquet, pois.csv, hashtags.csv, summary.md, manifest.json)")
    for note in result.notes:
        print(f"note: {term(note)}", file=sys.stderr)
    return 0
