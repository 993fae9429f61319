"""Benchmark of the image pipeline on this machine; writes JSON + Markdown to benchmarks/results/.

    PYTHONPATH=src python benchmarks/bench_images.py            # ~5-8 min on 2 cores
    PYTHONPATH=src python benchmarks/bench_images.py --quick    # ~1 min, smaller everything

Sections:

1. FLOP roof: best float32 matmul GFLOP/s (torch, 1 and all threads), the ceiling any CNN can reach here;
2. image features with the default backbone (efficientnet-lite0), in this process, next to the roof
   measured just before: the old path (network as loaded, micro-batches of 4) and the new one
   (BatchNorm folded, fused ReLU6 + padding, micro-batches of 2) timed in alternating rounds, 1 and
   all threads; then ``postloc images --image-noise keep`` end to end on SYNTHETIC phone-sized JPEGs
   (1080x1350): old path, new path (also: the decoding worker hands over 8 images at a time, not 32),
   new path + ``--draft-side 256``, with the split of serial time
   between decode + preprocessing and the forward pass, and how far the features moved;
3. backbones: images/s of the frozen forward pass (224x224, channels-last micro-batches) next to the
   roof, FLOPs per image measured with ``torch.utils.flop_counter`` (and the published multiply-add
   count), peak resident memory of a process that loads and runs it. Backbones without local
   weights (vgg19 & co.) are timed with random weights: speed does not depend on the values;
4. portrait ratio (mediapipe face + pose gate, selfie segmentation) and inpainting (PatchMatch, Telea)
   in ms per image;
5. ``postloc images`` end to end on a SYNTHETIC set (cold cache, then warm re-run);
6. a Table-III-style ablation on that SYNTHETIC set: an image-only classifier (standardised logistic
   regression on the cached features) trained and tested with all images kept, with portraits
   removed (ratio > 0.5), and with portraits removed + smaller persons inpainted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


# --- 1. roof --------------------------------------------------------------------------------


def matmul_roof(threads: int, n: int = 1536, repeats: int = 6) -> float:
    """Best-of float32 GFLOP/s of an n x n matmul (2 n^3 FLOPs)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


# --- 2. image features with the default backbone: old path vs new path ----------------------


def default_backbone_paths(threads: int, images: int, rounds: int) -> dict:
    """img/s of the old and the new forward path in alternating rounds, with this thread count's roof."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from postloc.vision.backbones import FrozenBackbone, get_backbone
    from postloc.vision.preprocess import DEFAULT_BACKBONE

    roof = matmul_roof(threads)
    torch.set_num_threads(threads)
    new = get_backbone(DEFAULT_BACKBONE)
    old = FrozenBackbone(new.spec, new.net, new.weights_path, micro_batch=4)  # as loaded, previous micro-batch
    with FlopCounterMode(display=False) as counter:
        old(torch.randn(1, 3, 224, 224))
    flops = counter.get_total_flops()
    batch = torch.randn(images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a, b = old(batch), new(batch)
    rates: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(rounds):
        for name, model in (("old", old), ("new", new)):
            start = time.perf_counter()
            model(batch)
            rates[name].append(images / (time.perf_counter() - start))
    roof_after = matmul_roof(threads)
    # other processes share the cores: the higher of the two probes, so the fraction is not flattered
    ceiling = max(roof, roof_after)
    out = {
        "threads": threads,
        "roof_gflops": roof,
        "roof_after_gflops": roof_after,
        "gflops_per_image": flops / 1e9,
        "images": images,
        "rounds": rounds,
    }
    for name, values in rates.items():
        best = max(values)
        out[name] = {
            "images_per_s_best": best,
            "images_per_s_median": float(np.median(values)),
            "fraction_of_roof": best * flops / 1e9 / ceiling,
            "micro_batch": (old if name == "old" else new).micro_batch,
        }
    out["max_abs_diff_relative"] = float((a - b).abs().max() / a.abs().max())
    out["min_cosine"] = float(torch.nn.functional.cosine_similarity(a, b).min())
    return out


def stage_times(paths: list[Path], draft_side: int | None, threads: int) -> dict:
    """Serial ms/image of read + decode, preprocessing and the (new) forward pass on these JPEGs."""
    import torch

    from postloc.vision.backbones import get_backbone
    from postloc.vision.decode import DecodeConfig, decode_image

    torch.set_num_threads(threads)
    backbone = get_backbone()
    config = DecodeConfig(draft_side=draft_side)
    start = time.perf_counter()
    decoded = [decode_image(p, config).image for p in paths]
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    pixels = np.stack([backbone.preprocessing(im) for im in decoded])
    preprocess_s = time.perf_counter() - start
    batch = torch.from_numpy(pixels)
    backbone(batch[:4])
    start = time.perf_counter()
    backbone(batch)
    forward_s = time.perf_counter() - start
    n = len(paths)
    per = {"decode_ms": decode_s / n * 1e3, "preprocess_ms": preprocess_s / n * 1e3, "forward_ms": forward_s / n * 1e3}
    per["decode_fraction"] = (per["decode_ms"] + per["preprocess_ms"]) / sum(per.values())
    per["decoded_size"] = list(decoded[0].size) if decoded and decoded[0] is not None else None
    return {"draft_side": draft_side, "threads": threads, "images": n, **per}


def feature_extraction(work: Path, images: int, seed: int) -> dict:
    """``postloc images --image-noise keep`` on SYNTHETIC 1080x1350 JPEGs: old path, new path, new + draft."""
    from postloc.data.image_features import load_image_features
    from postloc.vision import pipeline
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.pipeline import ImagesConfig, extract_images

    per_poi = max(8, images // 4)
    prepared = synthetic_set(work / "phone", 4, per_poi, seed, size=(1080, 1350))
    photos = sorted((work / "phone" / "synthetic" / "images").glob("*.jpg"))
    out: dict = {"photos": len(photos), "size": "1080x1350", "synthetic": True, "runs": {}}
    out["stages"] = [stage_times(photos[:48], side, 1) for side in (640, 256)]
    variants = {
        "old": ImagesConfig(noise="keep", fold=False, micro_batch=4),
        "new": ImagesConfig(noise="keep"),
        "new_draft256": ImagesConfig(noise="keep", decode=DecodeConfig(draft_side=256)),
    }
    vectors = {}
    for name, config in variants.items():
        config = replace(config, cache_dir=str(prepared / f"cache-{name}"))
        handover = pipeline.LOADER_BATCH
        # the old path handed whole --batch-size batches from the worker to the backbone
        pipeline.LOADER_BATCH = config.batch_size if name == "old" else handover
        try:
            start = time.perf_counter()
            result = extract_images(prepared, config)
            seconds = time.perf_counter() - start
        finally:
            pipeline.LOADER_BATCH = handover
        summary = result.summary
        out["runs"][name] = {
            "seconds": seconds,
            "images": summary["computed"],
            "images_per_s": summary["computed"] / seconds,
            "compute_images_per_s": summary["images_per_second"],
            "workers": config.workers,
            "threads": summary["settings"]["threads"],
            "micro_batch": config.micro_batch,
            "loader_batch": config.batch_size if name == "old" else pipeline.LOADER_BATCH,
            "fold": config.fold,
            "draft_side": config.decode.draft_side,
        }
        vectors[name] = load_image_features(prepared)
        print("feature extraction", name, out["runs"][name], flush=True)
    out["equality"] = {
        "new_vs_old": _compare(vectors["old"], vectors["new"]),
        "draft256_vs_new": _compare(vectors["new"], vectors["new_draft256"]),
    }
    return out


def _compare(reference: tuple, other: tuple) -> dict:
    ids_a, a = reference
    ids_b, b = other
    assert list(ids_a) == list(ids_b)
    diff = np.abs(a - b).max()
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "posts": len(ids_a),
        "max_abs_diff": float(diff),
        "max_abs_diff_relative": float(diff / np.abs(a).max()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
    }


# --- 3. one backbone, in its own process (for its peak memory) -----------------------------


def measure_backbone(name: str, threads: int, images: int, micro_batch: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from postloc.vision.backbones import FrozenBackbone, backbone_spec, get_backbone, weights_available

    torch.set_num_threads(threads)
    spec = backbone_spec(name)
    real = weights_available(name)
    backbone = get_backbone(name) if real else FrozenBackbone(spec, spec.build(), None)
    backbone.micro_batch = micro_batch
    x = torch.randn(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter:
        backbone(x)
    flops = counter.get_total_flops()
    batch = torch.randn(images, 3, 224, 224)
    backbone(batch[: min(images, micro_batch * 2)])  # warm-up (oneDNN primitive creation)
    start = time.perf_counter()
    backbone(batch)
    seconds = time.perf_counter() - start
    return {
        "backbone": name,
        "weights": "ImageNet" if real else "random (timing only)",
        "threads": threads,
        "micro_batch": micro_batch,
        "images": images,
        "images_per_s": images / seconds,
        "ms_per_image": seconds / images * 1e3,
        "gflops_per_image": flops / 1e9,
        "published_gmacs": spec.gmacs,
        "dim": spec.dim,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_backbone_subprocess(name: str, threads: int, images: int, micro_batch: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        name,
        "--threads",
        str(threads),
        "--images",
        str(images),
        "--micro-batch",
        str(micro_batch),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- 4. portrait ratio and inpainting -------------------------------------------------------


def measure_noise_steps(photos: list[Path], repeats: int) -> dict:
    import torch

    from postloc.vision.decode import decode_image
    from postloc.vision.inpaint import InpaintConfig, inpaint_person
    from postloc.vision.portrait import PersonSegmenter

    torch.set_num_threads(1)
    images = [decode_image(p).image for p in photos]
    segmenter = PersonSegmenter()
    segmenter.measure(images[0])  # model start-up is not per image
    start = time.perf_counter()
    results = [segmenter.measure(im) for _ in range(repeats) for im in images]
    portrait_ms = (time.perf_counter() - start) / len(results) * 1e3
    with_person = [(im, r.mask) for im, r in zip(images, results[: len(images)], strict=True) if r.ratio > 0.01]
    out = {"portrait_ms_per_image": portrait_ms, "portrait_images": len(images), "inpaint_images": len(with_person)}
    for method in ("patchmatch", "telea"):
        config = InpaintConfig(method=method)
        start = time.perf_counter()
        for im, mask in with_person:
            inpaint_person(im, mask, config)
        out[f"inpaint_{method}_ms_per_image"] = (time.perf_counter() - start) / max(1, len(with_person)) * 1e3
    segmenter.close()
    return out


# --- 5 + 6. synthetic set: pipeline and Table-III-style ablation ----------------------------


def synthetic_set(work: Path, pois: int, posts_per_poi: int, seed: int, size: tuple[int, int] = (320, 240)) -> Path:
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    config = SyntheticPostsConfig(
        pois=pois,
        posts_per_poi=posts_per_poi,
        seed=seed,
        selfie_rate=0.15,
        tourist_rate=0.15,
        width=size[0],
        height=size[1],
    )
    generate(work / "synthetic", config)
    prepare(
        work / "synthetic" / "posts.jsonl",
        work / "prepared",
        PrepareConfig(min_hashtag_count=5, min_poi_posts=min(100, posts_per_poi // 2), min_poi_users=3),
        pois_csv=work / "synthetic" / "pois.csv",
    )
    return work / "prepared"


def run_modes(prepared: Path) -> tuple[dict, dict]:
    """Cold runs of keep, drop and inpaint (each with its own cache) and one warm re-run."""
    from postloc.data.image_features import load_image_features
    from postloc.vision.pipeline import ImagesConfig, extract_images

    timings, features = {}, {}
    for mode in ("keep", "drop", "inpaint"):
        config = ImagesConfig(noise=mode, cache_dir=str(prepared / f"cache-{mode}"))
        start = time.perf_counter()
        result = extract_images(prepared, config)
        seconds = time.perf_counter() - start
        timings[mode] = {
            "seconds": seconds,
            "images": result.summary["images"],
            "images_per_s": result.summary["images"] / seconds,
            "status": result.summary["status"],
            "workers": config.workers,
            "threads": result.summary["settings"]["threads"],
        }
        features[mode] = load_image_features(prepared)
        if mode == "drop":
            start = time.perf_counter()
            extract_images(prepared, config)
            timings["drop_warm_rerun_seconds"] = time.perf_counter() - start
    return timings, features


def ablation(prepared: Path, features: dict) -> list[dict]:
    """Image-only classifier per noise mode; posts without a kept image get the train majority POI."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from postloc.metrics import haversine_km

    posts = pd.read_parquet(prepared / "posts.parquet", columns=["id", "poi", "lat", "lon", "split"])
    pois = pd.read_csv(prepared / "pois.csv", dtype={"poi": str}).set_index("poi")
    rows = []
    for mode, (ids, matrix) in features.items():
        row_of = {i: k for k, i in enumerate(ids)}
        train = posts[(posts["split"] == "train") & posts["id"].isin(row_of)]
        test = posts[posts["split"] == "test"]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000))
        model.fit(matrix[[row_of[i] for i in train["id"]]], train["poi"])
        majority = train["poi"].mode().iloc[0]
        has = test["id"].isin(row_of).to_numpy()
        predicted = np.full(len(test), majority, dtype=object)
        if has.any():
            predicted[has] = model.predict(matrix[[row_of[i] for i in test["id"][has]]])
        truth = test["poi"].to_numpy()
        centre = pois.loc[predicted]
        km = haversine_km(test["lat"], test["lon"], centre["lat"].to_numpy(), centre["lon"].to_numpy())
        rows.append(
            {
                "mode": mode,
                "train_posts": len(train),
                "test_posts": len(test),
                "test_posts_with_image": int(has.sum()),
                "acc": float((predicted == truth).mean()),
                "mean_km": float(np.nanmean(km)),
                "acc_on_posts_with_image": float((predicted[has] == truth[has]).mean()) if has.any() else None,
            }
        )
    return rows


# --- report -------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Image pipeline benchmark",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}; "
        f"load average at start {m['loadavg_start'][0]:.2f}, at end {report['loadavg_end'][0]:.2f} "
        "(other processes share these cores).",
        "",
        "## FLOP roof (float32 matmul probe, same run)",
        "",
        "| threads | GFLOP/s |",
        "|---:|---:|",
    ]
    lines += [f"| {t} | {g:.1f} |" for t, g in report["roof_gflops"].items()]
    lines += features_markdown(report)
    lines += [
        "",
        "## Backbones: frozen forward pass, 224x224, channels-last, micro-batches",
        "",
        "| backbone | weights | dim | threads | images/s | ms/image | GFLOP/image (measured) | GMAC/image (published) "
        "| GFLOP/s reached | fraction of roof | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["backbones"]:
        roof = report["roof_gflops"][str(r["threads"])]
        reached = r["gflops_per_image"] * r["images_per_s"]
        lines.append(
            f"| {r['backbone']} | {r['weights']} | {r['dim']} | {r['threads']} | {r['images_per_s']:.1f} | "
            f"{r['ms_per_image']:.0f} | {r['gflops_per_image']:.2f} | {r['published_gmacs']:.2f} | "
            f"{reached:.1f} | {reached / roof:.0%} | {r['peak_rss_mb']:.0f} |"
        )
    n = report["noise_steps"]
    lines += [
        "",
        "## Portrait ratio and inpainting (per image, model start-up excluded)",
        "",
        f"- portrait ratio (face + pose gate, selfie segmentation): {n['portrait_ms_per_image']:.1f} ms/image "
        f"over {n['portrait_images']} photos",
        f"- PatchMatch inpainting (patch 3, short side 320): {n['inpaint_patchmatch_ms_per_image']:.0f} ms/image "
        f"over {n['inpaint_images']} photos with a person",
        f"- OpenCV Telea inpainting: {n['inpaint_telea_ms_per_image']:.0f} ms/image",
        "",
        f"## `postloc images` end to end on the SYNTHETIC set ({report['synthetic']['posts']} posts, "
        f"{report['synthetic']['pois']} POIs; default settings: efficientnet-lite0, 1 worker)",
        "",
        "| mode | images | seconds (cold cache) | images/s | statuses |",
        "|---|---:|---:|---:|---|",
    ]
    for mode in ("keep", "drop", "inpaint"):
        t = report["pipeline"][mode]
        lines.append(
            f"| {mode} | {t['images']} | {t['seconds']:.1f} | {t['images_per_s']:.1f} | "
            + ", ".join(f"{k} {v}" for k, v in t["status"].items())
            + " |"
        )
    lines += [
        "",
        f"Warm re-run (drop mode, everything cached): {report['pipeline']['drop_warm_rerun_seconds']:.1f} s.",
        "",
        "## Table-III-style ablation on the SYNTHETIC set (not the paper's data)",
        "",
        "Image-only classifier: standardised logistic regression on the efficientnet-lite0 post vectors, "
        "trained on the train split; every test post is scored (posts whose images were all removed get the "
        "train majority POI, as an image-only model has nothing else). Mean = km between the predicted POI "
        "centre and the post's coordinates.",
        "",
        "| method | Acc | Mean (km) | test posts with an image | Acc on those |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"keep": "Image (all)", "drop": "Image (remove, ratio > 0.5)", "inpaint": "Image (remove + inpaint)"}
    for r in report["ablation"]:
        with_image = "" if r["acc_on_posts_with_image"] is None else f"{r['acc_on_posts_with_image']:.3f}"
        lines.append(
            f"| {names[r['mode']]} | {r['acc']:.3f} | {r['mean_km']:.3f} | "
            f"{r['test_posts_with_image']}/{r['test_posts']} | {with_image} |"
        )
    lines += ["", f"Total benchmark time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def features_markdown(report: dict) -> list[str]:
    lines = [
        "",
        "## Image features, default backbone (efficientnet-lite0): old path vs new path, same process",
        "",
        "Old: the network as loaded, micro-batches of 4. New: BatchNorm folded into the convolutions, "
        "ReLU6 in place and fused with the stride-2 padding, micro-batches of 2. Both 224x224, channels-last, "
        "inference_mode; timed in alternating rounds (best of the rounds, median in brackets); the roof is "
        "measured in this process just before and after the rounds, and % of roof uses the higher of the two. "
        "GFLOP/image counted by torch.utils.flop_counter on the network as loaded.",
        "",
        "| threads | roof GFLOP/s (before / after) | old images/s | old % of roof | new images/s | new % of roof "
        "| speed-up | max rel. diff | min cosine |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["default_backbone"]:
        o, n = r["old"], r["new"]
        lines.append(
            f"| {r['threads']} | {r['roof_gflops']:.1f} / {r['roof_after_gflops']:.1f} | "
            f"{o['images_per_s_best']:.1f} ({o['images_per_s_median']:.1f}) | {o['fraction_of_roof']:.0%} | "
            f"{n['images_per_s_best']:.1f} ({n['images_per_s_median']:.1f}) | {n['fraction_of_roof']:.0%} | "
            f"{n['images_per_s_best'] / o['images_per_s_best']:.2f}x | {r['max_abs_diff_relative']:.1e} | "
            f"{r['min_cosine']:.7f} |"
        )
    f = report.get("features")
    if not f:
        return lines
    lines += [
        "",
        f"### `postloc images --image-noise keep` end to end: {f['runs']['new']['images']} SYNTHETIC "
        f"{f['size']} JPEGs (phone size), 1 worker decoding, 1 backbone thread (the 2-core defaults)",
        "",
        "| path | seconds (whole command, cold cache) | images/s | images/s (compute phase) "
        "| micro-batch | worker hand-over | draft side |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in f["runs"].items():
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | {r['compute_images_per_s']} | "
            f"{r['micro_batch']} | {r['loader_batch']} | {r['draft_side']} |"
        )
    lines += [
        "",
        "Serial time per image on the same JPEGs (1 thread): where the time goes.",
        "",
        "| draft side | decoded size | read + decode ms | preprocess ms | forward ms (new) "
        "| decode + preprocess share |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for st in f["stages"]:
        size = "x".join(str(v) for v in st["decoded_size"]) if st["decoded_size"] else ""
        lines.append(
            f"| {st['draft_side']} | {size} | {st['decode_ms']:.1f} | {st['preprocess_ms']:.1f} | "
            f"{st['forward_ms']:.1f} | {st['decode_fraction']:.0%} |"
        )
    e = f["equality"]
    lines += [
        "",
        "Post vectors compared (`image_features.parquet`): new vs old max |diff| "
        f"{e['new_vs_old']['max_abs_diff']:.1e} ({e['new_vs_old']['max_abs_diff_relative']:.1e} of the largest "
        f"feature), min cosine {e['new_vs_old']['min_cosine']:.7f}; `--draft-side 256` vs default max |diff| "
        f"{e['draft256_vs_new']['max_abs_diff']:.3f} ({e['draft256_vs_new']['max_abs_diff_relative']:.1e}), "
        f"cosine min {e['draft256_vs_new']['min_cosine']:.4f}, mean {e['draft256_vs_new']['mean_cosine']:.4f} "
        f"over {e['draft256_vs_new']['posts']} posts.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller synthetic set and fewer timed images")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--pois", type=int, default=8)
    parser.add_argument("--posts-per-poi", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_backbone(args.one, args.threads, args.images, args.micro_batch)))
        return 0

    from postloc.vision.backbones import list_backbones

    started = time.perf_counter()
    report: dict = {
        "command": "PYTHONPATH=src python benchmarks/bench_images.py" + (" --quick" if args.quick else ""),
        "machine": machine(),
    }
    cores = os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    report["roof_gflops"] = {str(t): matmul_roof(t) for t in thread_counts}
    print("roof", report["roof_gflops"], flush=True)
    report["default_backbone"] = [
        default_backbone_paths(t, 16 if args.quick else 32, 3 if args.quick else 4) for t in thread_counts
    ]
    for r in report["default_backbone"]:
        print("default backbone", r, flush=True)
    heavy = {"vgg19": 4, "vgg16": 4, "resnet101": 8, "resnet50": 8, "densenet121": 8}
    report["backbones"] = []
    for name in list_backbones():
        images = heavy.get(name, 32)
        if args.quick:
            images = max(2, images // 4)
        for threads in thread_counts if name in ("efficientnet-lite0", "mobilenet-v2") else [cores]:
            result = run_backbone_subprocess(name, threads, images, args.micro_batch)
            report["backbones"].append(result)
            print(name, threads, f"{result['images_per_s']:.1f} img/s", flush=True)
    photos = sorted((ROOT / "tests" / "data").glob("*.jpg"))
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        report["features"] = feature_extraction(work, 32 if args.quick else 64, args.seed)
        pois, per_poi = (4, 24) if args.quick else (args.pois, args.posts_per_poi)
        prepared = synthetic_set(work, pois, per_poi, args.seed)
        synthetic_photos = sorted((work / "synthetic" / "images").glob("*.jpg"))[:24]
        report["noise_steps"] = measure_noise_steps(photos + synthetic_photos, 1 if args.quick else 3)
        print("noise steps", report["noise_steps"], flush=True)
        manifest = json.loads((work / "synthetic" / "manifest.json").read_text())
        report["synthetic"] = {
            "pois": pois,
            "posts": manifest["counts"]["posts"],
            "counts": manifest["counts"],
            "synthetic": True,
        }
        report["pipeline"], features = run_modes(prepared)
        print("pipeline", report["pipeline"], flush=True)
        report["ablation"] = ablation(prepared, features)
        print("ablation", report["ablation"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "images-quick" if args.quick else "images"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
