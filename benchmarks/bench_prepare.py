"""Speed and memory of data preparation; the numbers quoted in docs/data.md come from here.

Run: ``.venv/bin/python benchmarks/bench_prepare.py [--scale 200000]``. Writes
``benchmarks/results/prepare.{json,md}``. Measures, side by side in one run:

* ``postloc prepare dresden`` wall-clock as a user runs it (a subprocess, start-up included);
* language identification throughput (py3langid) on short captions;
* HDBSCAN on unit-sphere xyz with a k-d tree vs on radians with a haversine ball tree, and
  the largest DBSCAN cluster (the chaining that made HDBSCAN the default);
* our user-disjoint split vs scikit-learn's StratifiedGroupKFold on the same synthetic users;
* streaming: peak memory of ``prepare`` on SYNTHETIC JSONL files of 1x and 4x ``--scale``
  posts, each in a fresh process, to show memory grows far slower than the input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timer, write_results
from postloc import datasets
from postloc.data.pois import EARTH_RADIUS_KM, to_unit_xyz
from postloc.data.splits import SplitConfig, user_disjoint_split
from postloc.text.language import detect_language


def bench_cli_dresden(tmp: Path) -> dict:
    with timer() as t:
        subprocess.run(
            [sys.executable, "-m", "postloc", "prepare", "dresden", "--out", str(tmp / "dresden"), "--quiet"],
            check=True,
            capture_output=True,
        )
    summary = json.loads((tmp / "dresden/summary.json").read_text())
    return {
        "seconds": round(t["seconds"], 2),
        "posts": summary["all"]["posts"],
        "users": summary["all"]["users"],
        "pois": summary["all"]["pois"],
    }


def bench_language(n: int = 5000) -> dict:
    rng = np.random.default_rng(0)
    words = [
        "sunset",
        "bridge",
        "friends",
        "lovely",
        "evening",
        "walk",
        "city",
        "lights",
        "coffee",
        "view",
        "skyline",
        "park",
        "river",
    ]
    texts = [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(n)]
    detect_language(texts[0])  # load the model outside the timing
    with timer() as t:
        langs = [detect_language(text)[0] for text in texts]
    return {
        "texts": n,
        "seconds": round(t["seconds"], 3),
        "texts_per_s": round(n / t["seconds"]),
        "share_en": sum(lang == "en" for lang in langs) / n,
    }


def bench_clustering() -> dict:
    from sklearn.cluster import DBSCAN, HDBSCAN
    from sklearn.metrics import adjusted_rand_score

    frame = pd.read_csv(datasets.path("dresden"), usecols=["lat", "lng"])
    lat, lon = frame["lat"].to_numpy(), frame["lng"].to_numpy()
    with timer() as t_xyz:
        xyz = (
            HDBSCAN(min_cluster_size=100, min_samples=10, algorithm="kd_tree", copy=True)
            .fit(to_unit_xyz(lat, lon))
            .labels_
        )
    with timer() as t_hav:
        hav = (
            HDBSCAN(min_cluster_size=100, min_samples=10, metric="haversine", algorithm="ball_tree", copy=True)
            .fit(np.radians(np.c_[lat, lon]))
            .labels_
        )
    dbscan = {}
    for eps_m, min_samples in ((50, 20), (100, 50)):
        labels = (
            DBSCAN(
                eps=eps_m / 1000 / EARTH_RADIUS_KM, min_samples=min_samples, metric="haversine", algorithm="ball_tree"
            )
            .fit(np.radians(np.c_[lat, lon]))
            .labels_
        )
        sizes = np.bincount(labels[labels >= 0])
        dbscan[f"eps{eps_m}m_min{min_samples}"] = {"clusters": int(len(sizes)), "largest": int(sizes.max())}
    return {
        "posts": len(lat),
        "hdbscan_xyz_kdtree": {"seconds": round(t_xyz["seconds"], 2), "clusters": int(xyz.max() + 1)},
        "hdbscan_haversine_balltree": {"seconds": round(t_hav["seconds"], 2), "clusters": int(hav.max() + 1)},
        "adjusted_rand_index": round(float(adjusted_rand_score(xyz, hav)), 4),
        "dbscan": dbscan,
    }


def bench_splits(n: int = 200_000, n_users: int = 20_000) -> dict:
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(0)
    users = pd.Series(rng.integers(0, n_users, n).astype(str))
    pois = pd.Series(rng.integers(0, 40, n).astype(str))
    with timer() as ours:
        split = user_disjoint_split(users, pois, SplitConfig())
    with timer() as sgkf:
        next(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(n), pois, users))
    return {
        "posts": n,
        "users": n_users,
        "ours_seconds": round(ours["seconds"], 2),
        "stratified_group_kfold_seconds": round(sgkf["seconds"], 2),
        "shares": split.value_counts(normalize=True).round(4).to_dict(),
    }


def write_synthetic_jsonl(path: Path, n: int, seed: int = 0) -> None:
    """SYNTHETIC posts at 50 POIs with English captions, tags and coordinates."""
    rng = np.random.default_rng(seed)
    centres = np.c_[40.7 + rng.uniform(-0.05, 0.05, 50), -73.95 + rng.uniform(-0.05, 0.05, 50)]
    words = [
        "what",
        "a",
        "lovely",
        "evening",
        "walk",
        "with",
        "friends",
        "near",
        "the",
        "water",
        "and",
        "the",
        "old",
        "town",
        "lights",
    ]
    with open(path, "w") as handle:
        for i in range(n):
            k = int(rng.integers(0, 50))
            record = {
                "id": f"syn-{i}",
                "text": " ".join(rng.choice(words, 9)) + f" #place{k} #city",
                "poi": f"p{k}",
                "lat": float(centres[k, 0]),
                "lon": float(centres[k, 1]),
                "user": f"u{int(rng.integers(0, n // 20))}",
            }
            handle.write(json.dumps(record) + "\n")


def bench_streaming(tmp: Path, scale: int) -> dict:
    code = (
        "import resource, sys, time; from postloc import prepare, PrepareConfig; t=time.perf_counter(); "
        "r = prepare(sys.argv[1], sys.argv[2], PrepareConfig(min_poi_users=1)); "
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, "
        "r.summary['all']['posts'])"
    )
    rows = {}
    for factor in (1, 4):
        n = scale * factor
        path = tmp / f"synthetic-{n}.jsonl"
        write_synthetic_jsonl(path, n)
        out = subprocess.run(
            [sys.executable, "-c", code, str(path), str(tmp / f"out-{n}")], check=True, capture_output=True, text=True
        ).stdout.split()
        rows[n] = {
            "input_mb": round(path.stat().st_size / 2**20, 1),
            "seconds": round(float(out[0]), 1),
            "posts_per_s": round(n / float(out[0])),
            "peak_rss_mb": round(float(out[1])),
            "kept": int(out[2]),
        }
    small, large = rows[scale], rows[scale * 4]
    return {
        "synthetic": True,
        "runs": rows,
        "input_ratio": round(large["input_mb"] / small["input_mb"], 2),
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000, help="synthetic posts in the small streaming run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {
            "machine": machine(),
            "cli_prepare_dresden": bench_cli_dresden(tmp),
            "language_id": bench_language(),
            "clustering_dresden": bench_clustering(),
            "splits_synthetic": bench_splits(),
            "streaming_prepare_synthetic": bench_streaming(tmp, args.scale),
        }
    d, lang, cl, sp, st = (
        results[k]
        for k in (
            "cli_prepare_dresden",
            "language_id",
            "clustering_dresden",
            "splits_synthetic",
            "streaming_prepare_synthetic",
        )
    )
    m = results["machine"]
    lines = [
        "# Data preparation benchmark",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), GPU: {m['gpu']}, Python {m['python']}, torch {m['torch']}; "
        f"load average at start {m['load_average_1_5_15']} (other work slows timings).",
        "Command: `python benchmarks/bench_prepare.py`",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| `postloc prepare dresden` (subprocess, start-up included) | {d['seconds']} s -> {d['posts']:,} posts, "
        f"{d['users']} users, {d['pois']} POIs |",
        f"| language id (py3langid), short captions | {lang['texts_per_s']:,} texts/s ({lang['texts']} texts) |",
        f"| HDBSCAN, xyz + k-d tree (Dresden, {cl['posts']:,} posts) | {cl['hdbscan_xyz_kdtree']['seconds']} s, "
        f"{cl['hdbscan_xyz_kdtree']['clusters']} clusters |",
        f"| HDBSCAN, haversine + ball tree | {cl['hdbscan_haversine_balltree']['seconds']} s, "
        f"{cl['hdbscan_haversine_balltree']['clusters']} clusters (adjusted Rand index vs xyz: "
        f"{cl['adjusted_rand_index']}) |",
    ]
    for key, value in cl["dbscan"].items():
        lines.append(f"| DBSCAN {key} | {value['clusters']} clusters, largest {value['largest']:,} posts |")
    lines += [
        f"| user-disjoint split, {sp['posts']:,} posts / {sp['users']:,} users (synthetic) | "
        f"ours {sp['ours_seconds']} s, "
        f"StratifiedGroupKFold (one fold) {sp['stratified_group_kfold_seconds']} s |",
    ]
    for n, row in st["runs"].items():
        lines.append(
            f"| prepare, {n:,} SYNTHETIC posts ({row['input_mb']} MB JSONL) | {row['seconds']} s, "
            f"{row['posts_per_s']:,} posts/s, peak RSS {row['peak_rss_mb']} MB |"
        )
    lines += [
        "",
        f"Streaming: input x{st['input_ratio']} -> peak memory x{st['peak_rss_ratio']} (each run in a fresh process).",
    ]
    json_path, md_path = write_results("prepare", results, "\n".join(lines) + "\n")
    print(md_path.read_text())


if __name__ == "__main__":
    main()
