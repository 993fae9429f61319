"""MRLF epoch time by torch thread count, on an idle machine and beside two busy loops (issue 14, target 5).

Run: ``PYTHONPATH=src python benchmarks/bench_threads.py [--quick]`` (about a minute and a half on
2 cores; ``--quick`` about half). Writes ``benchmarks/results/threads.{json,md}``.

Why: OpenMP threads that share a core with other busy work spin at every barrier, so the
thread count that is fastest on an idle machine can be several times slower on a loaded one.
``trainer.threads = auto`` (the default) takes the cores free when the run starts
(:func:`postloc.nn.config.free_cores`). Each cell trains MRLF for a few epochs in a fresh
process on SYNTHETIC DATA (``postloc.datasets.synthetic_features``, captions and hashtags);
the load is two processes running ``while True: pass``. Conditions and thread settings are
interleaved in one run, so the ratios compare like with like. Every cell's weights are hashed:
equal hashes for one explicit thread count show that the load changes the time, not the result.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results

SETTINGS: tuple[int | str, ...] = (1, 2, "auto")


def _spin() -> None:
    while True:
        pass


def _cell(job: dict[str, Any]) -> dict[str, Any]:
    """Train in this (fresh) process; epoch seconds, the thread count used and a hash of the weights."""
    import os as _os

    from postloc.nn.config import busy_cores
    from postloc.training import RunConfig, TrainerConfig, train

    busy = busy_cores()
    trainer = TrainerConfig(
        epochs=job["epochs"], batch_size=64, early_stopping=0, progress=False, seed=0, threads=job["threads"]
    )
    result = train(job["data"], job["run"], RunConfig("mrlf", {}, trainer))
    weights = hashlib.sha256()
    for path in sorted(Path(job["run"], "best").glob("*.safetensors")):
        weights.update(path.read_bytes())
    seconds = [row["seconds"] for row in result.summary.get("history", [])] or _epoch_seconds(job["run"])
    return {
        "setting": job["threads"],
        "threads": trainer.threads,
        "busy_cores_seen": round(busy, 2),
        "epoch_seconds": seconds,
        "weights_sha256": weights.hexdigest()[:16],
        "load_average_1": round(_os.getloadavg()[0], 2),
    }


def _epoch_seconds(run: str) -> list[float]:
    import json

    return [json.loads(line)["seconds"] for line in Path(run, "metrics.jsonl").read_text().splitlines()]


def _run(job: dict[str, Any]) -> dict[str, Any]:
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_cell, job).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer posts and epochs")
    parser.add_argument("--posts", type=int, help="synthetic posts (default 1200, --quick 600)")
    parser.add_argument("--epochs", type=int, help="epochs per cell (default 3, --quick 2); the first is dropped")
    parser.add_argument("--busy", type=int, default=2, help="busy-loop processes for the loaded condition")
    args = parser.parse_args()
    posts = args.posts or (600 if args.quick else 1200)
    epochs = args.epochs or (2 if args.quick else 3)
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic_prepared(Path(tmp) / "syn", SyntheticFeaturesConfig(n_posts=posts, image_dim=8))
        for condition in ("idle", "loaded"):
            spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
            if condition == "loaded":
                for s in spinners:
                    s.start()
                time.sleep(1.0)
            try:
                for setting in SETTINGS:
                    run = Path(tmp) / f"{condition}-{setting}"
                    row = _run({"data": str(data), "run": str(run), "epochs": epochs, "threads": setting})
                    timed = row["epoch_seconds"][1:] or row["epoch_seconds"]  # the first epoch warms up
                    row.update(condition=condition, seconds_per_epoch=round(statistics.median(timed), 3))
                    rows.append(row)
                    print(row, flush=True)
            finally:
                for s in spinners:
                    if s.is_alive():
                        s.terminate()
                        s.join()
    base = {
        r["condition"]: next(x["seconds_per_epoch"] for x in rows if x["condition"] == r["condition"]) for r in rows
    }
    for r in rows:
        r["vs_threads_1"] = round(r["seconds_per_epoch"] / base[r["condition"]], 2)
    payload = {
        "benchmark": "threads",
        "data": f"SYNTHETIC DATA: {posts} posts (synthetic_features, image_dim 8), MRLF default params, batch 64",
        "epochs_per_cell": epochs,
        "busy_loops": args.busy,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine": machine(),
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        "# Training threads under contention (issue 14, target 5)",
        "",
        f"Command: `PYTHONPATH=src python benchmarks/bench_threads.py{' --quick' if args.quick else ''}`. "
        f"{payload['data']}; {epochs} epochs per cell in a fresh process, median epoch time without the first. "
        f"Loaded: {args.busy} processes of `while True: pass`. One run, cells interleaved; "
        f"machine {payload['machine']['cpu']}, {payload['cores_usable']} usable cores, "
        f"load average (1/5/15 min) at the end {payload['machine']['load_average_1_5_15']}.",
        "",
        "| condition | trainer.threads | threads used | busy cores seen | s/epoch | vs threads=1 | weights (sha256) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['condition']} | {r['setting']} | {r['threads']} | {r['busy_cores_seen']} | "
            f"{r['seconds_per_epoch']:.2f} | {r['vs_threads_1']:.2f}x | `{r['weights_sha256']}` |"
        )
    lines += [
        "",
        "Same thread count, same hash: the load changes the time, never the weights. "
        "`auto` resolves to a number when the config is made; the run's config.json and model.json keep that number.",
    ]
    json_path, md_path = write_results("threads", payload, "\n".join(lines) + "\n")
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
