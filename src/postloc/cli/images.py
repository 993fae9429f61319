"""``postloc images`` and ``postloc synthetic``: the command-line side of :mod:`postloc.vision`.

``cli.py`` registers them with ``images_cli.add_parsers(sub)``; each subcommand parses its
options into the API's config dataclasses and calls one function, like the other subcommands.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from postloc.errors import PostlocError


def _defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 320x240, got {text!r}") from None
    return width, height


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_parsers(sub) -> None:
    """Add ``images`` and ``synthetic`` to the ``postloc`` subparsers."""
    _add_images(sub)
    _add_synthetic(sub)


def _add_images(sub) -> None:
    from postloc.vision.preprocess import DEFAULT_BACKBONE
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.pipeline import ImagesConfig
    from postloc.vision.portrait import PortraitConfig

    run, portrait, inpaint, decode = (_defaults(c) for c in (ImagesConfig, PortraitConfig, InpaintConfig, DecodeConfig))
    p = sub.add_parser(
        "images", help="portrait ratio, inpainting and frozen-backbone features for a prepared dataset",
        description="Compute one image vector per post of PREPARED (mean of its kept images) into "
                    "PREPARED/image_features.parquet, with a per-image status table and a cache keyed by content.")
    p.add_argument("prepared", nargs="?", type=Path, help="a folder written by `postloc prepare`")
    p.add_argument("--list-backbones", action="store_true", help="list the backbones and whether their weights are here")
    g = p.add_argument_group("backbone")
    g.add_argument("--backbone", default=DEFAULT_BACKBONE,
                   help="efficientnet-lite0 (default, offline), mobilenet-v2 (offline), vgg19 (the paper's), "
                        "vgg16, resnet50, resnet101, densenet121 (need torchvision's weight files)")
    g.add_argument("--weights", type=Path, help="weight file to load instead of the one found automatically")
    g = p.add_argument_group("portrait noise (paper Sec. IV-E)")
    g.add_argument("--image-noise", choices=("drop", "inpaint", "keep"), default=run["noise"],
                   help="drop: images with portrait ratio > threshold are removed; inpaint: also fill smaller "
                        "persons; keep: no segmentation (default %(default)s)")
    g.add_argument("--portrait-threshold", type=_fraction, default=portrait["threshold"],
                   help="person area / image area above which an image is noise (default %(default)s)")
    g.add_argument("--person-gate", choices=("face+pose", "face", "none"), default=portrait["gate"],
                   help="detection required before the person mask counts (default %(default)s)")
    g.add_argument("--face-confidence", type=_fraction, default=portrait["face_confidence"],
                   help="(default %(default)s)")
    g.add_argument("--inpaint", dest="inpaint_method", choices=("patchmatch", "telea"), default=inpaint["method"],
                   help="filling method for --image-noise inpaint (default %(default)s; telea is ~20x faster)")
    g.add_argument("--patch-size", type=int, default=inpaint["patch_size"], help="PatchMatch radius (default %(default)s)")
    g.add_argument("--inpaint-min-ratio", type=_fraction, default=inpaint["min_ratio"],
                   help="smaller persons are left alone (default %(default)s)")
    g.add_argument("--thumbnails", type=int, default=run["thumbnails"],
                   help="before/mask/after strips written to CACHE/thumbnails per run (default %(default)s)")
    g = p.add_argument_group("resources")
    g.add_argument("--batch-size", type=int, default=run["batch_size"], help="(default %(default)s)")
    g.add_argument("--workers", type=int, default=run["workers"],
                   help="processes decoding/segmenting/inpainting; 0 = none (default %(default)s)")
    g.add_argument("--threads", type=int, help="torch threads for the backbone (default: all cores)")
    g.add_argument("--cache", type=Path, help="cache folder (default PREPARED/image_cache); may be shared")
    g.add_argument("--max-pixels", type=int, default=decode["max_pixels"],
                   help="larger images are refused as decompression bombs (default %(default)s)")
    g = p.add_argument_group("scaling out (docs/scale-ray.md)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process and its DataLoader workers (default); ray: a Ray Data job whose "
                        "--workers actors each hold the backbone; per-image rows go to PREPARED/image_vectors/ "
                        "(needs pip install 'postloc[ray]')")
    g.add_argument("--ray-address", help="--engine ray: join this cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_images)


def _run_images(args) -> int:
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.pipeline import ImagesConfig, extract_images
    from postloc.vision.portrait import PortraitConfig

    if args.list_backbones:
        print(backbones_table(), end="")
        return 0
    if args.prepared is None:
        raise PostlocError("give the prepared folder: postloc images PREPARED (or --list-backbones)")
    for name in ("batch_size", "patch_size"):
        if getattr(args, name) < 1:
            raise PostlocError(f"--{name.replace('_', '-')} must be at least 1")
    config = ImagesConfig(
        backbone=args.backbone, weights=str(args.weights) if args.weights else None, noise=args.image_noise,
        portrait=PortraitConfig(threshold=args.portrait_threshold, gate=args.person_gate,
                                face_confidence=args.face_confidence),
        inpaint=InpaintConfig(method=args.inpaint_method, patch_size=args.patch_size, min_ratio=args.inpaint_min_ratio),
        decode=DecodeConfig(max_pixels=args.max_pixels), batch_size=args.batch_size, workers=max(0, args.workers),
        threads=args.threads, cache_dir=str(args.cache) if args.cache else None, thumbnails=max(0, args.thumbnails),
        progress=not args.quiet and sys.stderr.isatty())
    if args.engine == "ray":
        from postloc.scale import RaySettings, extract_images_ray

        if args.workers < 1:
            raise PostlocError("--workers must be at least 1 with --engine ray (it is the number of actors)")
        result = extract_images_ray(args.prepared, config, workers=args.workers,
                                    settings=RaySettings(address=args.ray_address, progress=config.progress))
    else:
        result = extract_images(args.prepared, config)
    print(result.text, end="")
    extra = ", image_vectors/ (one row per image)" if args.engine == "ray" else ""
    print(f"wrote {args.prepared}/ (image_features.parquet, image_status.csv, image_summary.json{extra})")
    return 0


def backbones_table() -> str:
    """Markdown table of the registry: dimension, weights found here or not, role in the paper."""
    from postloc.vision.backbones import backbone_spec, list_backbones, weights_available

    lines = ["| backbone | dim | weights here | role | weights from |", "|---|---:|---|---|---|"]
    for name in list_backbones():
        spec = backbone_spec(name)
        lines.append(f"| {name} | {spec.dim} | {'yes' if weights_available(name) else 'no'} | {spec.role} | {spec.source} |")
    return "\n".join(lines) + "\n"


def _add_synthetic(sub) -> None:
    from postloc.datasets.synthetic import SyntheticPostsConfig

    d = _defaults(SyntheticPostsConfig)
    p = sub.add_parser("synthetic", help="write a SYNTHETIC multimodal data set (images, captions, hashtags)",
                       description="Generate labelled synthetic posts at invented POIs, ready for `postloc prepare`. "
                                   "Every output says it is synthetic (ids syn-*, \"synthetic\": true, README).")
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    p.add_argument("--pois", type=int, default=d["pois"], help="(default %(default)s)")
    p.add_argument("--posts-per-poi", type=int, default=d["posts_per_poi"], help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--size", type=_size, default=(d["width"], d["height"]), help="image size WxH (default 320x240)")
    p.add_argument("--users", type=int, help="number of users (default: posts / 6)")
    for name in ("selfie_rate", "tourist_rate", "missing_image_rate", "missing_text_rate", "missing_hashtags_rate",
                 "second_image_rate", "typo_rate"):
        p.add_argument(f"--{name.replace('_', '-')}", type=_fraction, default=d[name], help="(default %(default)s)")
    p.set_defaults(run=_run_synthetic)


def _run_synthetic(args) -> int:
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    width, height = args.size
    config = SyntheticPostsConfig(
        pois=args.pois, posts_per_poi=args.posts_per_poi, seed=args.seed, width=width, height=height, users=args.users,
        selfie_rate=args.selfie_rate, tourist_rate=args.tourist_rate, missing_image_rate=args.missing_image_rate,
        missing_text_rate=args.missing_text_rate, missing_hashtags_rate=args.missing_hashtags_rate,
        second_image_rate=args.second_image_rate, typo_rate=args.typo_rate)
    result = generate(args.out, config)
    counts = result.manifest["counts"]
    print(f"wrote SYNTHETIC data to {result.out_dir}/: {result.posts} posts at {result.pois} POIs, "
          f"{result.images} images ({counts['selfie']} selfies, {counts['tourist']} tourists pasted in)")
    print(f"next: postloc prepare {result.out_dir}/posts.jsonl --pois {result.out_dir}/pois.csv --out PREPARED")
    return 0
