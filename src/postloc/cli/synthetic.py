"""``postloc synthetic``: write a SYNTHETIC multimodal data set (:mod:`postloc.datasets.synthetic`).

Parses its options into ``SyntheticPostsConfig`` (whose defaults are the flags' defaults) and calls
``generate``; the output is ready for ``postloc prepare``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from postloc.cli._args import defaults, fraction


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 320x240, got {text!r}") from None
    return width, height


def add_parser(sub) -> None:
    """Register ``synthetic``."""
    from postloc.datasets.synthetic import SyntheticPostsConfig

    d = defaults(SyntheticPostsConfig)
    p = sub.add_parser(
        "synthetic",
        help="write a SYNTHETIC multimodal data set (images, captions, hashtags)",
        description="Generate labelled synthetic posts at invented POIs, ready for `postloc prepare`. "
        'Every output says it is synthetic (ids syn-*, "synthetic": true, README).',
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    p.add_argument("--pois", type=int, default=d["pois"], help="(default %(default)s)")
    p.add_argument("--posts-per-poi", type=int, default=d["posts_per_poi"], help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--size", type=_size, default=(d["width"], d["height"]), help="image size WxH (default 320x240)")
    p.add_argument("--users", type=int, help="number of users (default: posts / 6)")
    for name in (
        "selfie_rate",
        "tourist_rate",
        "missing_image_rate",
        "missing_text_rate",
        "missing_hashtags_rate",
        "second_image_rate",
        "typo_rate",
    ):
        p.add_argument(f"--{name.replace('_', '-')}", type=fraction, default=d[name], help="(default %(default)s)")
    p.set_defaults(run=run)


def run(args) -> int:
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    width, height = args.size
    config = SyntheticPostsConfig(
        pois=args.pois,
        posts_per_poi=args.posts_per_poi,
        seed=args.seed,
        width=width,
        height=height,
        users=args.users,
        selfie_rate=args.selfie_rate,
        tourist_rate=args.tourist_rate,
        missing_image_rate=args.missing_image_rate,
        missing_text_rate=args.missing_text_rate,
        missing_hashtags_rate=args.missing_hashtags_rate,
        second_image_rate=args.second_image_rate,
        typo_rate=args.typo_rate,
    )
    result = generate(args.out, config)
    counts = result.manifest["counts"]
    print(
        f"wrote SYNTHETIC data to {result.out_dir}/: {result.posts} posts at {result.pois} POIs, "
        f"{result.images} images ({counts['selfie']} selfies, {counts['tourist']} tourists pasted in)"
    )
    print(f"next: postloc prepare {result.out_dir}/posts.jsonl --pois {result.out_dir}/pois.csv --out PREPARED")
    return 0
