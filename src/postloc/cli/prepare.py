"""``postloc prepare``: the command-line side of :mod:`postloc.data.prepare`.

Parses the reading options, the paper's filters, the POI and split settings and the engine into
``ReadOptions`` and ``PrepareConfig`` (the flags, their defaults and help are ``PrepareConfig``'s fields, which
also check the values) and calls ``prepare``.
An embedded data set name (``dresden``) is read with its own reading options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from postloc.cli._args import add_flags, from_args


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
    from postloc.data.prepare import PrepareConfig, ReadOptions

    defaults = PrepareConfig()
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
    add_flags(g, ReadOptions, *READING, columns={"type": _columns})
    g.add_argument(
        "--pois", type=Path, help="POI table CSV poi,lat,lon[,name] giving POI centres (a name also names the POI)"
    )
    g = p.add_argument_group("filters (defaults follow the paper)")
    # --languages is one comma-separated text on the command line
    add_flags(
        g,
        PrepareConfig,
        *FILTERS,
        languages={"type": str, "default": ",".join(defaults.languages)},
    )
    g.add_argument("--keep-duplicates", action="store_true", help="do not drop same user + text + place repeats")
    g.add_argument("--keep-empty", action="store_true", help="keep posts left with no text, hashtag or image")
    g = p.add_argument_group("POIs")
    add_flags(g, PrepareConfig, *POIS)
    g = p.add_argument_group("splits")
    g.add_argument(
        "--split",
        type=_fractions,
        default=(defaults.train, defaults.val, defaults.test),
        help=f"train,val,test shares of posts (default {defaults.train:g},{defaults.val:g},{defaults.test:g})",
    )
    add_flags(g, PrepareConfig, "seed")
    add_flags(p.add_argument_group("engine (docs/scale-prepare.md)"), PrepareConfig, *ENGINE)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


#: ``ReadOptions``' flags and ``PrepareConfig``'s in each group, in ``--help``'s order
READING = ("format", "columns", "list_sep", "skip_bad")
FILTERS = ("min_hashtag_count", "languages", "min_language_letters")
POIS = ("poi_method", "min_poi_posts", "min_poi_users", "poi_min_samples", "poi_eps_m", "poi_cell_m", "poi_cell_deg")
ENGINE = ("engine", "memory_limit", "workers", "poi_sample")


def run(args) -> int:
    from postloc import datasets
    from postloc.data.prepare import PrepareConfig, ReadOptions, prepare
    from postloc.io.escape import term, term_skip_summary

    source = Path(args.input)
    read = from_args(ReadOptions, args, *READING)
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
    config = from_args(
        PrepareConfig,
        args,
        "min_hashtag_count",
        "min_language_letters",
        *POIS,
        "seed",
        *ENGINE,
        languages=languages,
        drop_duplicates=not args.keep_duplicates,
        drop_empty=not args.keep_empty,
        train=train,
        val=val,
        test=test,
    )
    result = prepare(source, args.out, config, read, pois_csv=args.pois, progress=not args.quiet)
    if result.skip_report.skipped or result.skip_report.warned:  # quotes bad values: printed escaped
        print(term_skip_summary(result.skip_report), file=sys.stderr)
    print(result.markdown, end="")
    print(f"\nwrote {args.out}/ (posts.jsonl, posts.parquet, pois.csv, hashtags.csv, summary.md, manifest.json)")
    for note in result.notes:
        print(f"note: {term(note)}", file=sys.stderr)
    return 0
