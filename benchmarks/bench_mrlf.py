"""MRLF's inference speed against tfidf-logreg: posts/s, FLOPs, the matmul roof, single-post latency (issue 14).

Run: ``PYTHONPATH=src python benchmarks/bench_mrlf.py`` (``--quick``: a smoke run). Writes
``benchmarks/results/mrlf-speed.{json,md}``; docs/mrlf.md ("Performance") quotes it.

On the embedded Dresden sample (hashtags only) and on SYNTHETIC caption posts of ~150
characters, MRLF and tfidf-logreg are trained for at most 2 epochs (speed, not accuracy, is
measured) in one fresh process per data set; then batch prediction (posts/s at batch 256), MRLF's
FLOPs per post against a fixed-width reference computation and against a 1024² matmul's GFLOP/s
on the same threads, and single-post latency p50/p99. MRLF's accuracy against the baselines is a
study, not a benchmark: studies/mrlf_vs_baselines/ (this script's default part until issue 30).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, machine, write_results

# --- inference speed: batch, FLOPs, roof, single post, epoch time (issue 14) -------------------


def matmul_roof(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """GFLOP/s of a ``size``² fp32 matmul in this process: the roof model FLOP/s are compared with."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def _flops_per_post(n_posts: int, fn, *args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() / n_posts


def _reference_forward(model, frame):
    """The unbucketed computation: full fixed-width padding, batches of 256 in input order.

    Autograd on selects the written-out attention. Inputs absent from a whole batch are still
    skipped (the network does that in every mode), so this is not the pre-issue-14 code: run
    this benchmark from a checkout of the older commit for that "before" column.
    """
    import torch

    data = model._encode(frame, np.full(len(frame), -1, dtype=np.int64))
    net = model.net.eval()
    out = []
    with torch.enable_grad():
        for start in range(0, len(frame), 256):
            idx = slice(start, start + 256)
            batch = {
                "text_chars": torch.from_numpy(data.text_chars[idx]).long(),
                "tag_chars": torch.from_numpy(data.tag_chars[idx]).long(),
                "text_words": torch.from_numpy(data.text_words[idx]).long(),
                "tags": torch.from_numpy(data.tags[idx]).long(),
                "image": torch.from_numpy(data.image[idx]),
                "image_present": torch.from_numpy(data.image_present[idx]),
            }
            out.append(torch.softmax(net(batch), dim=1).detach().double().numpy())
    return np.concatenate(out)


def speed_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train MRLF and tfidf-logreg on ``data``; time batch predict, FLOPs, roof, latency (child process)."""
    import torch

    from postloc.data.prepared import load_prepared
    from postloc.inference.predictor import load
    from postloc.training import RunConfig, TrainerConfig, train

    threads = job["threads"]
    out: dict[str, Any] = {}
    prepared = load_prepared(job["data"])
    test = prepared.split(job.get("split", "test"))
    if job.get("captions_only"):
        test = test[test["text"].fillna("").str.len() > 0]
    records = [{"id": r.id, "text": r.text, "hashtags": list(r.hashtags)} for r in test.itertuples()]
    if "image_vector" in test:
        for rec, vec in zip(records, test["image_vector"], strict=True):
            rec["image_vector"] = None if vec is None else list(vec)
    posts = (records * (1 + job["posts"] // max(1, len(records))))[: job["posts"]]
    for model in ("tfidf-logreg", "mrlf"):
        trainer = TrainerConfig(epochs=job["epochs"], seed=0, progress=False, threads=threads)
        run = str(Path(job["run"]) / model)
        result = train(job["data"], run, RunConfig(model, dict(job.get("params", {})), trainer))
        predictor = load(run)
        torch.set_num_threads(threads)
        predictor.predict(posts[:256], batch_size=256)  # warm-up
        started = time.perf_counter()
        # the network's own softmax (uncalibrated): what the fixed-width reference below computes too
        proba = predictor.predict_proba(posts, batch_size=256, calibrated=False)
        seconds = time.perf_counter() - started
        row = {"posts_per_s": round(len(posts) / seconds), "seconds_per_epoch": result.summary["seconds_per_epoch"]}
        if model == "mrlf":
            frame = predictor.frame(posts)
            n = min(1024, len(posts))
            row["mflop_per_post"] = round(_flops_per_post(n, predictor.predict_proba, posts[:n]) / 1e6, 3)
            row["model_gflop_per_s"] = round(row["mflop_per_post"] * row["posts_per_s"] / 1e3, 2)
            ref_frame = frame.iloc[:n].reset_index(drop=True)
            row["reference_mflop_per_post"] = round(
                _flops_per_post(n, _reference_forward, predictor.model, ref_frame) / 1e6, 3
            )
            started = time.perf_counter()
            reference = _reference_forward(predictor.model, ref_frame)
            row["reference_posts_per_s"] = round(n / (time.perf_counter() - started))
            row["max_abs_dp_vs_reference"] = float(np.abs(reference - proba[:n]).max())
        latencies = []
        for post in posts[:300]:
            t = time.perf_counter()
            predictor.predict([post], top_k=5)
            latencies.append((time.perf_counter() - t) * 1000)
        row["latency_ms_p50"] = round(float(np.percentile(latencies, 50)), 2)
        row["latency_ms_p99"] = round(float(np.percentile(latencies, 99)), 2)
        out[model] = row
    out["roof_gflop_per_s"] = round(matmul_roof(threads), 2)
    mrlf = out["mrlf"]
    mrlf["percent_of_roof"] = round(100 * mrlf["model_gflop_per_s"] / out["roof_gflop_per_s"], 1)
    mrlf["ratio_to_tfidf_logreg"] = round(mrlf["posts_per_s"] / out["tfidf-logreg"]["posts_per_s"], 3)
    return out


def speed(args: argparse.Namespace) -> int:
    """Issue 14's inference figures on Dresden posts and on ~150-character caption posts."""
    from postloc import datasets
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    started, load_before = time.perf_counter(), os.getloadavg()
    context = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mrlf-speed-") as tmp_name:
        tmp = Path(tmp_name)
        dresden = tmp / "dresden"
        prepare(datasets.path("dresden"), dresden, PrepareConfig(), datasets.read_options("dresden"))
        captions = write_synthetic_prepared(
            tmp / "captions", SyntheticFeaturesConfig(n_posts=args.synthetic_posts, caption_words=(18, 24))
        )
        jobs = {
            "dresden": {"data": str(dresden), "posts": 4096},
            "captions": {"data": str(captions), "posts": 1024, "captions_only": True},
        }
        for name, job in jobs.items():
            job.update(run=str(tmp / f"run-{name}"), epochs=args.epochs, threads=args.threads)
            with cf.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                results[name] = pool.submit(speed_job, job).result()
            print(name, results[name], flush=True)
    payload = {
        "command": "PYTHONPATH=src python benchmarks/bench_mrlf.py" + (" --quick" if args.quick else ""),
        "machine": {
            **machine(),
            "cpu_model": cpu_model(),
            "threads": args.threads,
            "load_average_start": [round(v, 2) for v in load_before],
            "load_average_end": [round(v, 2) for v in os.getloadavg()],
        },
        "epochs": args.epochs,
        "total_seconds": round(time.perf_counter() - started, 1),
        **results,
    }
    json_path, md_path = write_results(args.name, payload, speed_markdown(payload))
    print(speed_markdown(payload))
    print(f"wrote {json_path} and {md_path}")
    return 0


def speed_markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# MRLF inference speed (issue 14)",
        "",
        f"Command: `{payload['command']}`  ",
        f"Machine: {m['cpu_model']} ({m['cores']} cores), torch {m['torch']}, {m['threads']} torch threads; "
        f"load average at start {m['load_average_start']}, at end {m['load_average_end']}. "
        f"All figures of a row come from one process; ratios are the comparable numbers.",
        "",
        "| data | MRLF posts/s (batch 256) | tfidf-logreg posts/s | ratio | MFLOP/post (fixed-width reference → now) | "
        "fixed-width reference posts/s | model GFLOP/s | roof GFLOP/s (1024² matmul) | % of roof | "
        "single post p50 / p99 ms | train s/epoch | max abs Δp vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in (("dresden", "Dresden (hashtags only)"), ("captions", "SYNTHETIC captions ~150 chars")):
        r = payload[name]
        x, t = r["mrlf"], r["tfidf-logreg"]
        lines.append(
            f"| {label} | {x['posts_per_s']} | {t['posts_per_s']} | {x['ratio_to_tfidf_logreg']} | "
            f"{x['reference_mflop_per_post']} → {x['mflop_per_post']} | {x['reference_posts_per_s']} | "
            f"{x['model_gflop_per_s']} | {r['roof_gflop_per_s']} | {x['percent_of_roof']} | "
            f"{x['latency_ms_p50']} / {x['latency_ms_p99']} | {x['seconds_per_epoch']} | "
            f"{x['max_abs_dp_vs_reference']:.1e} |"
        )
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per model (at most 2; default 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (1 epoch, 600 posts); not for docs")
    parser.add_argument("--name", default="mrlf-speed", help="results file stem (default mrlf-speed)")
    parser.add_argument(
        "--speed", action="store_true", help="no effect: speed is all this benchmark measures (kept for old commands)"
    )
    args = parser.parse_args(argv)
    args.epochs = 1 if args.quick else min(args.epochs, 2)
    args.synthetic_posts = 600 if args.quick else 1200
    return speed(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
