"""Throughput of the local path against Ray Data with 1 and 2 workers, side by side in one run.

    PYTHONPATH=src python benchmarks/bench_ray.py [--copies 4] [--pois 4] [--posts-per-poi 40]

* Batch prediction (posts/s) on the embedded Dresden Flickr sample: prepared with the default
  settings, MRLF with its default (paper-sized) layers trained for one epoch (inference cost depends
  on the layer sizes, not on how well it learned), then every prepared post, repeated ``--copies``
  times with fresh ids, written as 8 Parquet files and predicted with ``postloc predict`` locally
  (one Parquet file in, one out) and with ``--engine ray --workers 1|2``.
* Image features (images/s) on a SYNTHETIC set rendered by ``postloc synthetic``: ``postloc images
  --image-noise keep`` (decode, preprocess, efficientnet-lite0) locally (1 DataLoader worker, cold
  cache) and with ``--engine ray --workers 1|2``.

Ray's start-up (``ray.init`` of a local Ray) is timed on its own; every Ray job time includes its
actors' start (each loads the model or the backbone once). Writes benchmarks/results/ray.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_results

WORKERS = (1, 2)


def train_dresden(tmp: Path) -> tuple[Path, Path, str]:
    from postloc import datasets
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.training import RunConfig, TrainerConfig, train

    prepared = tmp / "dresden"
    result = prepare(datasets.path("dresden"), prepared, PrepareConfig(), datasets.read_options("dresden"))
    note = f"{result.summary['all']['posts']:,} prepared posts, {result.summary['all']['pois']} POIs"
    train(prepared, tmp / "run", RunConfig("mrlf", {}, TrainerConfig(epochs=1, progress=False)))
    return prepared, tmp / "run", note


def write_inputs(prepared: Path, tmp: Path, copies: int) -> tuple[Path, Path, int]:
    """The prepared posts (id, text, hashtags) ``copies`` times: one Parquet file and a folder of 8."""
    import pandas as pd

    posts = pd.read_parquet(prepared / "posts.parquet", columns=["id", "text", "hashtags"])
    frames = [posts.assign(id=[f"{i}-{k}" for i in posts["id"]]) for k in range(copies)]
    table = pd.concat(frames, ignore_index=True)
    single = tmp / "posts.parquet"
    table.to_parquet(single, index=False)
    folder = tmp / "posts-parts"
    folder.mkdir()
    step = -(-len(table) // 8)
    for part in range(8):
        table.iloc[part * step : (part + 1) * step].to_parquet(folder / f"part-{part}.parquet", index=False)
    return single, folder, len(table)


def bench_predict(run: Path, single: Path, folder: Path, tmp: Path, batch_size: int) -> list[dict]:
    from postloc.inference import batch
    from postloc.scale import predict_ray

    rows = []
    start = time.perf_counter()
    counts = batch.predict_file(
        run, single, tmp / "local.parquet", top_k=5, batch_size=batch_size, images=False, progress=False
    )
    seconds = time.perf_counter() - start
    rows.append(
        {
            "engine": "local",
            "workers": "-",
            "threads": _torch_threads(),
            "posts": counts["posts"],
            "seconds": round(seconds, 2),
            "rate": round(counts["posts"] / seconds, 1),
            "files": 1,
        }
    )
    import pandas as pd

    for workers in WORKERS:
        threads = max(1, (os.cpu_count() or 1) // workers)
        # the fixed cost of a job: the same job on one batch per actor (actors start, load the run, predict once)
        tiny = tmp / f"tiny-{workers}.parquet"
        pd.read_parquet(single).head(batch_size * workers).to_parquet(tiny, index=False)
        small = predict_ray(
            run,
            tiny,
            tmp / f"ray-tiny-{workers}",
            workers=workers,
            top_k=5,
            batch_size=batch_size,
            images=False,
            threads=threads,
        )
        counts = predict_ray(
            run,
            folder,
            tmp / f"ray-{workers}",
            workers=workers,
            top_k=5,
            batch_size=batch_size,
            images=False,
            threads=threads,
        )
        rows.append(
            {
                "engine": "ray",
                "workers": workers,
                "threads": threads,
                "posts": counts["posts"],
                "seconds": counts["seconds"],
                "rate": round(counts["posts"] / counts["seconds"], 1),
                "files": counts["files"],
                **_steady(counts["posts"], counts["seconds"], small["posts"], small["seconds"]),
            }
        )
    return rows


def _steady(n: int, seconds: float, n_small: int, seconds_small: float) -> dict:
    """Fixed cost = the time of a job on one batch per actor; steady rate = the extra items over the extra time."""
    extra = seconds - seconds_small
    return {
        "small_job_items": n_small,
        "small_job_seconds": round(seconds_small, 2),
        "steady_rate": round((n - n_small) / extra, 1) if extra > 0 else None,
    }


def synthetic_prepared(tmp: Path, pois: int, per_poi: int) -> tuple[Path, int]:
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    raw = generate(tmp / "synthetic", SyntheticPostsConfig(pois=pois, posts_per_poi=per_poi, seed=0))
    prepared = tmp / "synthetic-prepared"
    prepare(raw.out_dir / "posts.jsonl", prepared, PrepareConfig(min_poi_posts=5, min_hashtag_count=2, languages=()))
    return prepared, raw.images


def bench_features(prepared: Path, tmp: Path, batch_size: int) -> list[dict]:
    from postloc.scale import extract_images_ray
    from postloc.vision.pipeline import ImagesConfig, extract_images

    rows = []
    local = tmp / "features-local"
    shutil.copytree(prepared, local)
    config = ImagesConfig(noise="keep", batch_size=batch_size, thumbnails=0)
    start = time.perf_counter()
    summary = extract_images(local, config).summary
    seconds = time.perf_counter() - start
    images = summary["images"]
    rows.append(
        {
            "engine": "local",
            "workers": f"{config.workers} loader",
            "threads": summary["settings"]["threads"],
            "images": images,
            "seconds": round(seconds, 2),
            "rate": round(images / seconds, 1),
        }
    )
    import pandas as pd

    for workers in WORKERS:
        threads = max(1, (os.cpu_count() or 1) // workers)
        tiny = tmp / f"features-tiny-{workers}"
        shutil.copytree(prepared, tiny)
        posts = pd.read_parquet(tiny / "posts.parquet")
        posts[posts["image"].map(len) > 0].head(batch_size * workers).to_parquet(tiny / "posts.parquet", index=False)
        start = time.perf_counter()
        small = extract_images_ray(tiny, config, workers=workers, threads=threads).summary
        small_seconds = time.perf_counter() - start
        copy = tmp / f"features-ray-{workers}"
        shutil.copytree(prepared, copy)
        start = time.perf_counter()
        summary = extract_images_ray(copy, config, workers=workers, threads=threads).summary
        seconds = time.perf_counter() - start
        rows.append(
            {
                "engine": "ray",
                "workers": workers,
                "threads": threads,
                "images": summary["images"],
                "seconds": round(seconds, 2),
                "rate": round(summary["images"] / seconds, 1),
                **_steady(summary["images"], seconds, small["images"], small_seconds),
            }
        )
    return rows


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def ray_start(cpus: int) -> dict:
    """``ray.init`` of a local Ray, and a first trivial job (workers spawned, Ray Data imported)."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init = time.perf_counter() - start
    from postloc.scale._ray import quiet_data

    quiet_data(False)
    start = time.perf_counter()
    ray.data.range(8).map_batches(lambda b: b).materialize()
    return {
        "init_seconds": round(init, 2),
        "first_job_seconds": round(time.perf_counter() - start, 2),
        "num_cpus": cpus,
    }


def _fixed(row: dict) -> str:
    if "small_job_seconds" not in row:
        return "-"
    return f"{row['small_job_seconds']} ({row['small_job_items']})"


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# Ray Data engine against the local path",
        "",
        f"Command: `{payload['command']}`  ",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other work), torch {m['torch']}, Ray "
        f"{payload['ray_version']}, Python {m['python']}; load average at start "
        f"{' / '.join(str(x) for x in payload['load_start'])}, at end "
        f"{' / '.join(str(x) for x in payload['load_end'])} (1/5/15 min).  ",
        f"Total time: {payload['seconds']} s.",
        "",
        f"Ray start-up (local, {payload['ray_start']['num_cpus']} logical CPUs): `ray.init` "
        f"{payload['ray_start']['init_seconds']} s, "
        f"then a first trivial job {payload['ray_start']['first_job_seconds']} s. "
        "Not included below; every Ray job time below includes its actors' start (model or backbone loaded "
        "once per actor).",
        "",
        f"## Batch prediction: {payload['predict']['data']}",
        "",
        f"MRLF, default layers, 1 training epoch; {payload['predict']['posts']:,} posts "
        f"(the prepared posts x{payload['predict']['copies']}, text + hashtags), top-5, batch size "
        f"{payload['predict']['batch_size']}. Local: one Parquet file in and out; Ray: 8 Parquet files in, "
        "a folder of Parquet files out.",
        "",
        "| engine | workers | torch threads each | posts | seconds | posts/s | fixed cost s (small job) | "
        "steady posts/s | output files |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["predict"]["rows"]:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['threads']} | {r['posts']:,} | {r['seconds']} | "
            f"{r['rate']} | {_fixed(r)} | {r.get('steady_rate') or '-'} | {r['files']} |"
        )
    f = payload["features"]
    lines += [
        "",
        f"## Image features: {f['data']}",
        "",
        "`postloc images --image-noise keep` (decode, preprocess, efficientnet-lite0 at 224x224, no "
        f"segmentation), batch size {f['batch_size']}, cold cache. SYNTHETIC images: this measures the code, not "
        "real photos (real photos are larger to decode).",
        "",
        "| engine | workers | torch threads each | images | seconds | images/s | fixed cost s (small job) | "
        "steady images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in f["rows"]:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['threads']} | {r['images']} | {r['seconds']} | "
            f"{r['rate']} | {_fixed(r)} | {r.get('steady_rate') or '-'} |"
        )
    lines += [
        "",
        "Fixed cost: the same Ray job on one batch per actor (actors start, load the model or backbone, "
        "run one batch, write). Steady rate: (items - small-job items) / (seconds - small-job seconds), "
        "the rate once the actors are up; it is what the cluster projection scales.",
    ]
    lines += ["", "The projection to a cluster drawn from these numbers is in docs/scale-ray.md.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="times the Dresden posts are repeated (default 4)")
    parser.add_argument("--pois", type=int, default=8, help="SYNTHETIC POIs (default 8)")
    parser.add_argument("--posts-per-poi", type=int, default=50, help="SYNTHETIC posts per POI (default 50)")
    parser.add_argument("--batch-size", type=int, default=1024, help="posts per prediction batch (default 1024)")
    parser.add_argument("--image-batch-size", type=int, default=32, help="images per backbone batch (default 32)")
    args = parser.parse_args(argv)
    import ray

    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    command = "PYTHONPATH=src python benchmarks/bench_ray.py" + (
        "" if not (argv or sys.argv[1:]) else " " + " ".join(argv or sys.argv[1:])
    )
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as name:
        tmp = Path(name)
        print("preparing Dresden and training MRLF (1 epoch) ...", flush=True)
        prepared, run, note = train_dresden(tmp)
        single, folder, n_posts = write_inputs(prepared, tmp, args.copies)
        print(f"rendering the SYNTHETIC image set ({args.pois} x {args.posts_per_poi} posts) ...", flush=True)
        synthetic, n_images = synthetic_prepared(tmp, args.pois, args.posts_per_poi)
        start_info = ray_start(max(os.cpu_count() or 1, max(WORKERS) + 1))
        try:
            print(f"predict: {n_posts} posts ...", flush=True)
            predict_rows = bench_predict(run, single, folder, tmp, args.batch_size)
            print("features ...", flush=True)
            feature_rows = bench_features(synthetic, tmp, args.image_batch_size)
        finally:
            ray.shutdown()
    payload = {
        "command": command,
        "machine": machine(),
        "ray_version": ray.__version__,
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "ray_start": start_info,
        "predict": {
            "data": f"Dresden Flickr sample, {note}",
            "posts": n_posts,
            "copies": args.copies,
            "batch_size": args.batch_size,
            "rows": predict_rows,
        },
        "features": {
            "data": f"SYNTHETIC, postloc synthetic --pois {args.pois} --posts-per-poi "
            f"{args.posts_per_poi} --seed 0 ({n_images} rendered 320x240 JPEGs)",
            "batch_size": args.image_batch_size,
            "rows": feature_rows,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    json_path, md_path = write_results("ray", payload, markdown(payload))
    print(markdown(payload))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
