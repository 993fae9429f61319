"""``postloc synthetic``: write a SYNTHETIC multimodal data set (:mod:`postloc.datasets.synthetic`).

Its flags are ``SyntheticPostsConfig``'s fields (name, default and help from the class, which also checks
the values) and calls ``generate``; the output is ready for ``postloc prepare``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from postloc.cli._args import add_flags, from_args
from postloc.settings import flag_of


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 320x240, got {text!r}") from None
    return width, height


def add_parser(sub) -> None:
    """Register ``synthetic``."""
    from postloc.datasets.synthetic import SyntheticPostsConfig

    default = SyntheticPostsConfig()
    p = sub.add_parser(
        "synthetic",
        help="write a SYNTHETIC multimodal data set (images, captions, hashtags)",
        description="Generate labelled synthetic posts at invented POIs, ready for `postloc prepare`. "
        'Every output says it is synthetic (ids syn-*, "synthetic": true, README).',
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    add_flags(p, SyntheticPostsConfig, "pois", "posts_per_poi", "seed")
    p.add_argument(
        "--size",
        type=_size,
        default=(default.width, default.height),
        help=f"image size WxH (default {default.width}x{default.height})",
    )
    add_flags(p, SyntheticPostsConfig, "users", *_rates())
    p.set_defaults(run=run)


def _rates() -> tuple[str, ...]:
    """The generator's shares that are flags, in ``--help``'s order (``other_poi_word_rate`` is a knob of
    the planted confusion, not a flag). Imported when used: the generator is heavy to import."""
    from postloc.datasets.synthetic import RATES, SyntheticPostsConfig

    return tuple(name for name in RATES if flag_of(SyntheticPostsConfig, name))


def run(args) -> int:
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    width, height = args.size
    config = from_args(
        SyntheticPostsConfig, args, "pois", "posts_per_poi", "seed", "users", *_rates(), width=width, height=height
    )
    result = generate(args.out, config)
    counts = result.manifest["counts"]
    print(
        f"wrote SYNTHETIC data to {result.out_dir}/: {result.posts} posts at {result.pois} POIs, "
        f"{result.images} images ({counts['selfie']} selfies, {counts['tourist']} tourists pasted in)"
    )
    print(f"next: postloc prepare {result.out_dir}/posts.jsonl --pois {result.out_dir}/pois.csv --out PREPARED")
    return 0
