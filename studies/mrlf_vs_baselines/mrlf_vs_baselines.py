"""MRLF vs the reference baselines, and the modality / fusion study on SYNTHETIC data.

Run: ``PYTHONPATH=src python studies/mrlf_vs_baselines/mrlf_vs_baselines.py`` (about 12 minutes on
a 2-core CPU). Writes ``studies/mrlf_vs_baselines/results/mrlf.{json,md}``; the numbers in
docs/mrlf.md come from there. The inference-speed figures are a benchmark of their own,
``benchmarks/bench_mrlf.py`` (this study was its default part until issue 30).

Part 1, real data: the embedded Dresden Flickr sample, prepared with the paper's defaults
(hashtags only: no captions, no images). MRLF, majority and tfidf-logreg, ``--seeds`` training
seeds each: test Acc, Acc@5, mean/median km (mean +- std over seeds), training seconds per
epoch, prediction throughput through the public API (posts/s at batch 256), single-post latency
p50/p99, and peak memory. Every (model, seed) runs in a fresh process, so its peak RSS is its own.

Part 2, SYNTHETIC DATA (``postloc.datasets.synthetic_features``): every modality subset of MRLF and
every fusion variant, to show that each branch learns and that the full model beats each
single modality. These numbers say the code learns what was planted, nothing about real posts.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # _common: the machine and the results files
from _common import cpu_model, machine, write_results  # noqa: E402

SYNTHETIC = "SYNTHETIC DATA"
METRICS = ("accuracy", "acc@5", "mean_km", "median_km", "macro_f1")


# --- one job, in its own process ------------------------------------------------------------


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train, evaluate on test, time prediction; returns numbers only (runs in a child process)."""
    from postloc.data.prepared import load_prepared
    from postloc.inference.predictor import load
    from postloc.training import RunConfig, TrainerConfig, evaluate, train

    trainer = TrainerConfig(epochs=job["epochs"], seed=job["seed"], progress=False, threads=job["threads"])
    config = RunConfig(job["model"], dict(job.get("params", {})), trainer)
    started = time.perf_counter()
    result = train(job["data"], job["run"], config)
    train_seconds = time.perf_counter() - started
    report = evaluate(job["run"], "test")
    out = {k: report[k] for k in METRICS}
    out.update(
        distance_reference=report["distance_reference"],
        test_posts=report["posts"],
        train_seconds=round(train_seconds, 2),
        epochs=result.summary["epochs_run"],
        best_epoch=result.summary["best_epoch"],
        seconds_per_epoch=round(result.summary["seconds_per_epoch"], 3),
    )
    if job.get("speed"):
        out.update(_speed(load(job["run"]), load_prepared(job["data"])))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _speed(predictor, prepared) -> dict[str, Any]:
    """Posts/s at batch 256 and single-post latency through the public prediction API."""
    import torch

    torch.set_num_threads(2)
    test = prepared.split("test")
    posts = [{"id": r.id, "text": r.text, "hashtags": list(r.hashtags)} for r in test.itertuples()]
    posts = (posts * (1 + 4096 // max(1, len(posts))))[:4096]
    predictor.predict(posts[:256], batch_size=256)  # warm-up
    started = time.perf_counter()
    predictor.predict(posts, batch_size=256)
    throughput = len(posts) / (time.perf_counter() - started)
    latencies = []
    for post in posts[:300]:
        t = time.perf_counter()
        predictor.predict([post], top_k=5)
        latencies.append((time.perf_counter() - t) * 1000)
    return {
        "posts_per_s": round(throughput),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2),
    }


def run_jobs(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One fresh spawned process per job, one at a time (timings must not share the 2 cores)."""
    results = []
    context = multiprocessing.get_context("spawn")
    for job in jobs:
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            started = time.perf_counter()
            result = pool.submit(run_job, job).result()
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(
            f"  {job['label']:<34} seed {job['seed']}: acc {result['accuracy']:.3f}  acc@5 {result['acc@5']:.3f}  "
            f"mean {result['mean_km']:.3f} km  epochs {result['epochs']}  {result['wall_seconds']} s",
            flush=True,
        )
        results.append({**{k: job[k] for k in ("label", "model", "seed")}, "params": job.get("params", {}), **result})
    return results


# --- aggregation and reporting ----------------------------------------------------------------


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std (population, over seeds) per label, in first-seen order."""
    out = []
    for label in dict.fromkeys(r["label"] for r in rows):
        group = [r for r in rows if r["label"] == label]
        summary: dict[str, Any] = {
            "label": label,
            "model": group[0]["model"],
            "params": group[0]["params"],
            "seeds": [r["seed"] for r in group],
        }
        numeric = [k for k, v in group[0].items() if isinstance(v, (int, float)) and k != "seed"]
        for key in numeric:
            values = np.array([r[key] for r in group if r.get(key) is not None], dtype=float)
            summary[key] = {"mean": float(values.mean()), "std": float(values.std())} if len(values) else None
        summary["distance_reference"] = group[0]["distance_reference"]
        out.append(summary)
    return out


def _pm(cell: dict | None, digits: int = 3) -> str:
    if cell is None:
        return "n/a"
    return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}"


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# MRLF benchmark",
        "",
        f"Command: `{payload['command']}`  ",
        f"Machine: {m['cpu_model']} ({m['cores']} cores), no GPU, "
        f"Python {m['python']}, torch {m['torch']}, {m['threads']} torch threads; "
        f"total {payload['total_seconds'] / 60:.1f} min; 1/5/15-min load average at start "
        f"{m['load_average_start']}, at end {m['load_average_end']} (other work on the machine slows timings).",
        "",
        "## Dresden Flickr sample (real data; hashtags only: no captions, no images)",
        "",
        f"Prepared with `PrepareConfig()` defaults: {payload['dresden']['data']}. Test split; "
        f"distances against: {payload['dresden']['rows'][0]['distance_reference']}. "
        f"Mean ± std over seeds {payload['dresden']['rows'][0]['seeds']}.",
        "",
        "| model | Acc | Acc@5 | mean km | median km | macro-F1 | train s/epoch | epochs | "
        "predict posts/s (batch 256) | latency p50 / p99 ms | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["dresden"]["rows"]:
        lines.append(
            f"| {r['label']} | {_pm(r['accuracy'])} | {_pm(r['acc@5'])} | {_pm(r['mean_km'])} | "
            f"{_pm(r['median_km'])} | {_pm(r['macro_f1'])} | {_pm(r['seconds_per_epoch'], 2)} | "
            f"{r['epochs']['mean']:.1f} | {r['posts_per_s']['mean']:.0f} | "
            f"{r['latency_ms_p50']['mean']:.2f} / {r['latency_ms_p99']['mean']:.2f} | "
            f"{r['peak_rss_mb']['mean']:.0f} |"
        )
    syn = payload["synthetic"]
    lines += [
        "",
        f"## {SYNTHETIC}: modality subsets and fusion variants",
        "",
        f"**{SYNTHETIC}** from `postloc.datasets.synthetic_features` ({syn['data']}). "
        f"Mean ± std over seeds {syn['rows'][0]['seeds']}; test split.",
        "",
        "| model (SYNTHETIC) | Acc | Acc@5 | mean km | median km | macro-F1 | train s/epoch | epochs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in syn["rows"]:
        lines.append(
            f"| {r['label']} | {_pm(r['accuracy'])} | {_pm(r['acc@5'])} | {_pm(r['mean_km'])} | "
            f"{_pm(r['median_km'])} | {_pm(r['macro_f1'])} | {_pm(r['seconds_per_epoch'], 2)} | "
            f"{r['epochs']['mean']:.1f} |"
        )
    lines += [
        "",
        f"Full model beats every single modality ({SYNTHETIC}): **{syn['full_beats_singles']}** "
        f"(full {syn['full_accuracy']:.3f} vs best single {syn['best_single_accuracy']:.3f}).",
    ]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model (default 3)")
    parser.add_argument("--synthetic-seeds", type=int, default=2, help="seeds per synthetic variant (default 2)")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (early stopping usually ends sooner)")
    parser.add_argument("--synthetic-posts", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="tiny smoke run (1 seed, 2 epochs, 600 posts); not for docs"
    )
    parser.add_argument("--name", default="mrlf", help="results file stem (default mrlf)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.synthetic_seeds, args.epochs, args.synthetic_posts = 1, 1, 2, 600
        args.name = args.name if args.name != "mrlf" else "mrlf-quick"

    from postloc import datasets
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    started = time.perf_counter()
    load_before = os.getloadavg()
    command = "PYTHONPATH=src python studies/mrlf_vs_baselines/mrlf_vs_baselines.py" + (
        "" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv or sys.argv[1:])
    )
    with tempfile.TemporaryDirectory(prefix="bench-mrlf-") as tmp_name:
        tmp = Path(tmp_name)
        print("preparing the Dresden sample ...", flush=True)
        dresden = tmp / "dresden"
        result = prepare(datasets.path("dresden"), dresden, PrepareConfig(), datasets.read_options("dresden"))
        split = result.summary
        data_note = (
            f"{split['all']['posts']:,} posts, {split['all']['pois']} POIs, "
            f"{split['train']['posts']:,}/{split['val']['posts']:,}/{split['test']['posts']:,} train/val/test"
        )
        jobs = []
        for model in ("mrlf", "majority", "tfidf-logreg"):
            for seed in range(args.seeds):
                jobs.append(
                    {
                        "label": model,
                        "model": model,
                        "seed": seed,
                        "data": str(dresden),
                        "run": str(tmp / f"dresden-{model}-{seed}"),
                        "epochs": args.epochs,
                        "threads": args.threads,
                        "speed": True,
                    }
                )
        print(f"Dresden: {len(jobs)} jobs", flush=True)
        dresden_rows = run_jobs(jobs)

        print(f"writing the {SYNTHETIC} set ...", flush=True)
        syn_config = SyntheticFeaturesConfig(n_posts=args.synthetic_posts)
        synthetic = write_synthetic_prepared(tmp / "synthetic", syn_config)
        variants = [
            ("MRLF text only", {"modalities": ["text"], "fusion": "concat"}),
            ("MRLF hashtags only", {"modalities": ["hashtags"], "fusion": "concat"}),
            ("MRLF image only", {"modalities": ["image"], "fusion": "concat"}),
            ("MRLF text+hashtags (mrlf fusion)", {"modalities": ["text", "hashtags"], "fusion": "mrlf"}),
            ("MRLF text+image (concat)", {"modalities": ["text", "image"], "fusion": "concat"}),
            ("MRLF hashtags+image (concat)", {"modalities": ["hashtags", "image"], "fusion": "concat"}),
            ("MRLF all, fusion mrlf (paper)", {"fusion": "mrlf"}),
            ("MRLF all, fusion text-tag-end", {"fusion": "text-tag-end"}),
            ("MRLF all, fusion concat", {"fusion": "concat"}),
            ("MRLF all, fusion image-text", {"fusion": "image-text"}),
            ("MRLF all, fusion image-hashtag", {"fusion": "image-hashtag"}),
        ]
        jobs = []
        for label, params in variants:
            for seed in range(args.synthetic_seeds):
                jobs.append(
                    {
                        "label": label,
                        "model": "mrlf",
                        "params": params,
                        "seed": seed,
                        "data": str(synthetic),
                        "run": str(tmp / f"syn-{len(jobs)}"),
                        "epochs": args.epochs,
                        "threads": args.threads,
                    }
                )
        for model in ("majority", "tfidf-logreg"):
            jobs.append(
                {
                    "label": f"{model} (text+hashtags; no image)" if model != "majority" else model,
                    "model": model,
                    "seed": 0,
                    "data": str(synthetic),
                    "run": str(tmp / f"syn-{model}"),
                    "epochs": 1,
                    "threads": args.threads,
                }
            )
        print(f"{SYNTHETIC}: {len(jobs)} jobs", flush=True)
        synthetic_rows = run_jobs(jobs)

    syn_summary = aggregate(synthetic_rows)
    by_label = {r["label"]: r for r in syn_summary}
    singles = [by_label[f"MRLF {m} only"]["accuracy"]["mean"] for m in ("text", "hashtags", "image")]
    full = by_label["MRLF all, fusion mrlf (paper)"]["accuracy"]["mean"]
    from postloc.datasets.synthetic_features import describe, make_synthetic

    syn_desc = describe(make_synthetic(syn_config))
    payload = {
        "command": command,
        "machine": {
            **machine(),
            "cpu_model": cpu_model(),
            "threads": args.threads,
            "load_average_start": [round(v, 2) for v in load_before],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
        },
        "total_seconds": round(time.perf_counter() - started, 1),
        "dresden": {"data": data_note, "rows": aggregate(dresden_rows), "runs": dresden_rows},
        "synthetic": {
            "label": SYNTHETIC,
            "data": (
                f"{syn_desc['posts']:,} posts, {syn_desc['pois']} POIs, "
                f"text {syn_desc['with_text']:.0%}, hashtags "
                f"{syn_desc['with_hashtags']:.0%}, image {syn_desc['with_image']:.0%} "
                f"of posts"
            ),
            "config": {k: v for k, v in vars(syn_config).items()},
            "rows": syn_summary,
            "runs": synthetic_rows,
            "full_accuracy": full,
            "best_single_accuracy": max(singles),
            "full_beats_singles": full > max(singles),
        },
    }
    json_path, md_path = write_results(args.name, payload, markdown(payload), folder=HERE / "results")
    print(markdown(payload))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
