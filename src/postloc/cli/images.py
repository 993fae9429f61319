"""``postloc images``: the command-line side of :mod:`postloc.vision` (portrait filter, inpainting,
frozen-backbone features for a prepared dataset).

Parses its options into ``ImagesConfig`` and its parts (their defaults are the flags' defaults) and
calls ``extract_images``, or the Ray engine's ``extract_images_ray`` with ``--engine ray``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from postloc.cli._args import defaults, fraction
from postloc.errors import PostlocError
from postloc.io.escape import term_lines


def add_parser(sub) -> None:
    """Register ``images``."""
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.pipeline import ImagesConfig
    from postloc.vision.portrait import PortraitConfig
    from postloc.vision.preprocess import DEFAULT_BACKBONE

    images, portrait, inpaint, decode = (
        defaults(c) for c in (ImagesConfig, PortraitConfig, InpaintConfig, DecodeConfig)
    )
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
    g = p.add_argument_group("backbone")
    g.add_argument(
        "--backbone",
        default=DEFAULT_BACKBONE,
        help="efficientnet-lite0 (default, offline), mobilenet-v2 (offline), vgg19 (the paper's), "
        "vgg16, resnet50, resnet101, densenet121 (need torchvision's weight files)",
    )
    g.add_argument("--weights", type=Path, help="weight file to load instead of the one found automatically")
    g = p.add_argument_group("portrait noise (paper Sec. IV-E)")
    g.add_argument(
        "--image-noise",
        choices=("drop", "inpaint", "keep"),
        default=images["noise"],
        help="drop: images with portrait ratio > threshold are removed; inpaint: also fill smaller "
        "persons; keep: no segmentation (default %(default)s)",
    )
    g.add_argument(
        "--portrait-threshold",
        type=fraction,
        default=portrait["threshold"],
        help="person area / image area above which an image is noise (default %(default)s)",
    )
    g.add_argument(
        "--person-gate",
        choices=("face+pose", "face", "none"),
        default=portrait["gate"],
        help="detection required before the person mask counts (default %(default)s)",
    )
    g.add_argument(
        "--face-confidence", type=fraction, default=portrait["face_confidence"], help="(default %(default)s)"
    )
    g.add_argument(
        "--inpaint",
        dest="inpaint_method",
        choices=("patchmatch", "telea"),
        default=inpaint["method"],
        help="filling method for --image-noise inpaint (default %(default)s; telea is ~20x faster)",
    )
    g.add_argument(
        "--patch-size", type=int, default=inpaint["patch_size"], help="PatchMatch radius (default %(default)s)"
    )
    g.add_argument(
        "--inpaint-min-ratio",
        type=fraction,
        default=inpaint["min_ratio"],
        help="smaller persons are left alone (default %(default)s)",
    )
    g.add_argument(
        "--thumbnails",
        type=int,
        default=images["thumbnails"],
        help="before/mask/after strips written to CACHE/thumbnails per run (default %(default)s)",
    )
    g = p.add_argument_group("resources")
    g.add_argument("--batch-size", type=int, default=images["batch_size"], help="(default %(default)s)")
    g.add_argument(
        "--workers",
        type=int,
        default=images["workers"],
        help="processes decoding/segmenting/inpainting; 0 = none (default %(default)s)",
    )
    g.add_argument("--threads", type=int, help="torch threads for the backbone (default: all cores)")
    g.add_argument("--cache", type=Path, help="cache folder (default PREPARED/image_cache); may be shared")
    g.add_argument(
        "--max-pixels",
        type=int,
        default=decode["max_pixels"],
        help="larger images are refused as decompression bombs (default %(default)s)",
    )
    g.add_argument(
        "--draft-side",
        type=int,
        default=decode["draft_side"],
        help="JPEGs whose short side is at least twice this are decoded at 1/2, 1/4 or 1/8 scale, keeping at "
        "least this many pixels (default %(default)s; 256 is the least a 224 crop needs: large photos decode "
        "several times faster, features change slightly, see docs/images.md; 0 = full size)",
    )
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
    if args.draft_side < 0:
        raise PostlocError("--draft-side must be 0 (full size) or a number of pixels")
    for name in ("batch_size", "patch_size"):
        if getattr(args, name) < 1:
            raise PostlocError(f"--{name.replace('_', '-')} must be at least 1")
    config = ImagesConfig(
        backbone=args.backbone,
        weights=str(args.weights) if args.weights else None,
        noise=args.image_noise,
        portrait=PortraitConfig(
            threshold=args.portrait_threshold, gate=args.person_gate, face_confidence=args.face_confidence
        ),
        inpaint=InpaintConfig(method=args.inpaint_method, patch_size=args.patch_size, min_ratio=args.inpaint_min_ratio),
        decode=DecodeConfig(max_pixels=args.max_pixels, draft_side=args.draft_side or None),
        batch_size=args.batch_size,
        workers=max(0, args.workers),
        threads=args.threads,
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
