"""``postloc images``: the command-line side of :mod:`postloc.vision` (portrait filter, inpainting,
frozen-backbone features for a prepared dataset).

Parses its options into ``ImagesConfig`` and its parts (the flags, their defaults and help are their
fields, which also check the values) and calls ``extract_images``, or the Ray engine's
``extract_images_ray`` with ``--engine ray``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from postloc.cli._args import add_flags, from_args
from postloc.errors import PostlocError
from postloc.io.escape import term_lines


def add_parser(sub) -> None:
    """Register ``images``."""
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.pipeline import ImagesConfig
    from postloc.vision.portrait import PortraitConfig

    p = sub.add_parser(
        "images",
        help="portrait ratio, inpainting and frozen-backbone features for a prepared dataset",
        description="Compute one image vector per post of PREPARED (mean of its kept images) into "
        "PREPARED/image_features.parquet, with a per-image status table and a cache keyed by content.",
    )
    p.add_argument("prepared", nargs="?", type=Path, help="a folder written by `postloc prepare`")
    p.add_argument(
        "--list-backbones", action="store_true", help="list the backbones and whether their weights are here"
    )
    # the files are paths on the command line, text in the settings
    add_flags(p.add_argument_group("backbone"), ImagesConfig, "backbone", "weights", weights={"type": Path})
    g = p.add_argument_group("portrait noise (paper Sec. IV-E)")
    add_flags(g, ImagesConfig, "noise")
    add_flags(g, PortraitConfig, *PORTRAIT)
    add_flags(g, InpaintConfig, *INPAINT)
    add_flags(g, ImagesConfig, "thumbnails")
    g = p.add_argument_group("resources")
    add_flags(g, ImagesConfig, "batch_size", "workers", "threads", "cache_dir", cache_dir={"type": Path})
    add_flags(g, DecodeConfig, *DECODE)
    g = p.add_argument_group("scaling out (docs/scale-ray.md)")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process and its DataLoader workers (default); ray: a Ray Data job whose "
        "--workers actors each hold the backbone; per-image rows go to PREPARED/image_vectors/ "
        "(needs pip install 'postloc[ray]')",
    )
    g.add_argument("--ray-address", help="--engine ray: join this cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


#: the flags of each part of ``ImagesConfig``, in ``--help``'s order
PORTRAIT = ("threshold", "gate", "face_confidence")
INPAINT = ("method", "patch_size", "min_ratio")
DECODE = ("max_pixels", "draft_side")


def run(args) -> int:
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.pipeline import ImagesConfig, extract_images
    from postloc.vision.portrait import PortraitConfig

    if args.list_backbones:
        print(backbones_table(), end="")
        return 0
    if args.prepared is None:
        raise PostlocError("give the prepared folder: postloc images PREPARED (or --list-backbones)")
    config = from_args(
        ImagesConfig,
        args,
        "backbone",
        "noise",
        "batch_size",
        "threads",
        weights=str(args.weights) if args.weights else None,
        portrait=from_args(PortraitConfig, args, *PORTRAIT),
        inpaint=from_args(InpaintConfig, args, *INPAINT),
        decode=from_args(DecodeConfig, args, "max_pixels", draft_side=args.draft_side or None),  # 0: full size
        workers=max(0, args.workers),
        cache_dir=str(args.cache) if args.cache else None,
        thumbnails=max(0, args.thumbnails),
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if args.engine == "ray":
        from postloc.scale import RaySettings, extract_images_ray

        if args.workers < 1:
            raise PostlocError("--workers must be at least 1 with --engine ray (it is the number of actors)")
        result = extract_images_ray(
            args.prepared,
            config,
            workers=args.workers,
            settings=RaySettings(address=args.ray_address, progress=config.progress),
        )
    else:
        result = extract_images(args.prepared, config)
    print(term_lines(result.text), end="")
    extra = ", image_vectors/ (one row per image)" if args.engine == "ray" else ""
    print(f"wrote {args.prepared}/ (image_features.parquet, image_status.csv, image_summary.json{extra})")
    return 0


def backbones_table() -> str:
    """Markdown table of the registry: dimension, weights found here or not, role in the paper."""
    from postloc.vision.backbones import backbone_spec, list_backbones, weights_available

    lines = ["| backbone | dim | weights here | role | weights from |", "|---|---:|---|---|---|"]
    for name in list_backbones():
        spec = backbone_spec(name)
        lines.append(
            f"| {name} | {spec.dim} | {'yes' if weights_available(name) else 'no'} | {spec.role} | {spec.source} |"
        )
    return "\n".join(lines) + "\n"
