"""Data-parallel MRLF training: 1 process vs 2 processes (torchrun, gloo) on the same SYNTHETIC data.

Run: ``PYTHONPATH=src python benchmarks/bench_distributed.py`` (about 3 minutes on 2 idle cores, 8 on the busy
shared 2-core CPU).
Writes ``benchmarks/results/distributed.{json,md}``; the numbers in docs/scale-training.md and
the tolerance of tests/nn/test_distributed.py come from there.

Part 1, speed and accuracy: MRLF with its default parameters on a SYNTHETIC set
(``postloc.datasets.synthetic_features``, 1,500 posts, 10 POIs), global batch 64, a fixed number of
epochs, in three layouts side by side: 1 process x 2 threads (the default), 1 process x 1
thread, and ``torchrun --nproc_per_node 2`` x 1 thread each (per-rank batch 32). Reported:
training seconds per epoch (rank 0's clock, validation excluded), the whole command's wall time
(process start, data loading and validation included), and best-epoch validation accuracy.

Part 2, seed noise of the test setting: the exact setting of tests/nn/test_distributed.py, trained
in 1 process over seeds 0-4 and in 2 processes over seeds 0-2, so that the test's tolerance
rests on a measured spread.

Every run is a fresh ``postloc train`` command (``python -m postloc`` or ``python -m
torch.distributed.run ... -m postloc``), the way a user starts one. SYNTHETIC DATA: these
numbers say that the 2-process path learns what the 1-process path learns and how long it
takes here, nothing about real posts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results

SYNTHETIC = "SYNTHETIC DATA"
SPEED_DATA = {"n_pois": 10, "n_posts": 1500, "n_users": 200, "seed": 0}
# Part 2 mirrors tests/nn/test_distributed.py (DATA, TRAINER) and tests/support/tiny_models.py (SMALL):
# keep them in step.
TEST_DATA = {
    "n_pois": 4,
    "n_posts": 500,
    "n_users": 80,
    "train": 0.6,
    "val": 0.3,
    "text_signal": 0.3,
    "tag_signal": 0.5,
    "image_separation": 1.2,
    "caption_words": (3, 8),
    "image_dim": 8,
    "seed": 5,
}
TEST_SETTINGS = {
    "filters": 16,
    "heads": 2,
    "char_dim": 8,
    "word_dim": 8,
    "hidden": 16,
    "max_text_chars": 64,
    "max_hashtag_chars": 48,
    "max_text_words": 16,
    "batch_size": 32,
    "lr": 0.003,
    "early_stopping": 0,
    "threads": 1,
}
TEST_EPOCHS = 6


def run_train(
    data: Path, out: Path, processes: int, threads: int, epochs: int, seed: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """One ``postloc train`` command; returns wall time and run.json's numbers."""
    args = [
        "-m",
        "postloc",
        "train",
        "--model",
        "mrlf",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quiet",
        "--epochs",
        str(epochs),
        "--seed",
        str(seed),
        "--set",
        f"threads={threads}",
    ]
    for key, value in settings.items():
        if key != "threads":
            args += ["--set", f"{key}={value}"]
    launcher = [sys.executable]
    if processes > 1:  # CPU against CPU: gloo even where GPUs exist (the 1-process path stays on the CPU)
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        args += ["--backend", "gloo"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(launcher + args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"training failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    summary = json.loads((out / "run.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "processes": processes,
        "threads_per_process": threads,
        "seed": seed,
        "wall_seconds": round(wall, 2),
        "seconds_per_epoch": round(summary["seconds_per_epoch"], 3),
        "epochs": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "val_acc": summary["val_acc"],
        "val_loss": summary["val_loss"],
        "val_acc_per_epoch": [round(r["val_acc"], 4) for r in rows],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the part-1 runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the part-1 runs")
    parser.add_argument("--name", default="distributed", help="results file name (benchmarks/results/NAME.json/.md)")
    args = parser.parse_args()

    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    info = machine()
    info["cpus_usable"] = len(os.sched_getaffinity(0))  # fewer than cores under taskset / a cgroup CPU set
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        base = Path(tmp)
        speed_data = write_synthetic_prepared(base / "speed", SyntheticFeaturesConfig(**SPEED_DATA))
        test_data = write_synthetic_prepared(base / "test", SyntheticFeaturesConfig(**TEST_DATA))
        speed = []
        for seed in args.seeds:
            for processes, threads in ((1, 2), (1, 1), (2, 1)):
                row = run_train(
                    speed_data,
                    base / f"speed-{processes}x{threads}-{seed}",
                    processes,
                    threads,
                    args.epochs,
                    seed,
                    {"early_stopping": 0},
                )
                print(row, flush=True)
                speed.append(row)
        noise = []
        for processes, seeds in ((1, range(5)), (2, range(3))):
            for seed in seeds:
                row = run_train(
                    test_data, base / f"noise-{processes}-{seed}", processes, 1, TEST_EPOCHS, seed, TEST_SETTINGS
                )
                print(row, flush=True)
                noise.append(row)
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    payload = {
        "data": SYNTHETIC,
        "machine": info,
        "total_seconds": round(time.perf_counter() - started, 1),
        "speed": {"data": SPEED_DATA, "epochs": args.epochs, "batch_size": 64, "runs": speed},
        "seed_noise": {
            "data": TEST_DATA,
            "settings": TEST_SETTINGS,
            "epochs": TEST_EPOCHS,
            "runs": noise,
            "summary": _noise_summary(noise),
        },
    }
    json_path, md_path = write_results(args.name, payload, _markdown(payload))
    print(f"wrote {json_path} and {md_path}")
    return 0


def _noise_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for processes in sorted({r["processes"] for r in runs}):
        acc = [r["val_acc"] for r in runs if r["processes"] == processes]
        out[f"{processes}_process"] = {
            "val_acc": acc,
            "min": min(acc),
            "max": max(acc),
            "mean": round(statistics.mean(acc), 4),
            "std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
        }
    return out


def _markdown(p: dict[str, Any]) -> str:
    m = p["machine"]
    lines = [
        "# Data-parallel training: 1 vs 2 processes",
        "",
        "Command: `PYTHONPATH=src python benchmarks/bench_distributed.py`  ",
        f"Machine: {m['cpu']} ({m['cores']} cores, {m.get('cpus_usable', m['cores'])} usable by this run; "
        f"shared), GPU: {m['gpu']} (not used), Python {m['python']}, torch {m['torch']}; "
        f"total {p['total_seconds'] / 60:.1f} min; 1/5/15-min load average at start {m['load_average_1_5_15']}, "
        f"at end {m['load_average_end']} (other work on the machine slows timings).",
        "",
        f"**{SYNTHETIC}** from `postloc.datasets.synthetic_features`: the numbers show that the 2-process path learns "
        "what the 1-process path learns, nothing about real posts.",
        "",
        "## Speed and accuracy, same data, side by side",
        "",
        f"MRLF, default parameters; synthetic set {p['speed']['data']}; global batch {p['speed']['batch_size']} "
        f"(2 processes: 32 each); {p['speed']['epochs']} epochs, no early stopping. Each row is one `postloc train` "
        "command; s/epoch is rank 0's training time per epoch (validation excluded), wall is the whole command.",
        "",
        "| layout | seed | s/epoch | wall s | best epoch | val acc |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in p["speed"]["runs"]:
        layout = (
            f"{r['processes']} process{'es' if r['processes'] > 1 else ''} x {r['threads_per_process']} thread"
            f"{'s' if r['threads_per_process'] > 1 else ''}"
        )
        lines.append(
            f"| {layout} | {r['seed']} | {r['seconds_per_epoch']:.2f} | {r['wall_seconds']:.1f} | "
            f"{r['best_epoch']} | {r['val_acc']:.3f} |"
        )
    lines += ["", "Means over seeds:", "", "| layout | s/epoch | wall s | val acc |", "|---|---:|---:|---:|"]
    for processes, threads in ((1, 2), (1, 1), (2, 1)):
        rows = [r for r in p["speed"]["runs"] if (r["processes"], r["threads_per_process"]) == (processes, threads)]
        if rows:
            lines.append(
                f"| {processes} x {threads} | {statistics.mean(r['seconds_per_epoch'] for r in rows):.2f} | "
                f"{statistics.mean(r['wall_seconds'] for r in rows):.1f} | "
                f"{statistics.mean(r['val_acc'] for r in rows):.3f} |"
            )
    lines += [
        "",
        "On 2 shared cores there is little to gain: one process already uses both cores through its "
        "2 intra-op threads, and 2 processes add a gradient all-reduce per step (gloo), the DDP bookkeeping and "
        "a second Python interpreter. Data parallelism pays off with more cores or machines than one "
        "process can use, or with GPUs.",
        "",
        "## Seed noise of the test setting (tests/nn/test_distributed.py)",
        "",
        f"Synthetic set {p['seed_noise']['data']}; settings {p['seed_noise']['settings']}; "
        f"{p['seed_noise']['epochs']} epochs. Best-epoch validation accuracy:",
        "",
        "| processes | seeds | val acc per seed | min | max | mean | std |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for key, s in p["seed_noise"]["summary"].items():
        runs = [r for r in p["seed_noise"]["runs"] if f"{r['processes']}_process" == key]
        lines.append(
            f"| {key.split('_')[0]} | {[r['seed'] for r in runs]} | "
            f"{', '.join(f'{a:.3f}' for a in s['val_acc'])} | {s['min']:.3f} | {s['max']:.3f} | "
            f"{s['mean']:.3f} | {s['std']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
