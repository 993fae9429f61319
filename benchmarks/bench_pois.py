"""HDBSCAN POIs at scale: scikit-learn's HDBSCAN (old) vs fast_hdbscan (new), time, memory and clusters.

Run: ``.venv/bin/python benchmarks/bench_pois.py`` (about 10 CPU-minutes on 2 cores; ``--sizes 10000,100000``
for a quick one). Writes ``benchmarks/results/pois.{json,md}``; docs/scale-prepare.md ("POI clustering at
scale") quotes it.

The points are SYNTHETIC, generated from a seed (:func:`synthetic_points`): a city whose side grows
with the number of points (12 km at 100k), places of Pareto-distributed sizes and 10-250 m spreads
(40 % of them packed into a central tenth, like an old town), 30 % of a place's posts at one of its
three venue coordinates (a location tag: exact repeats), 25 % uniform noise of which a fifth repeats
a few home coordinates, every coordinate rounded to 6 decimals as GPS tags are. The embedded Dresden
sample (real Flickr posts) is compared too.

Each clustering runs in a fresh process (``--child``) so that its peak RSS (``VmHWM``, the kernel's
high-water mark since ``exec``, so imports count) and CPU time are its own; wall time moves with the
shared machine's load, recorded with each row. scikit-learn's spanning tree is O(n^2): above
``--old-max`` points (100,000) it is not run, and its time is extrapolated from the largest run as n^2.

Clusters are compared as partitions: adjusted Rand index, cluster counts, and the points whose cluster
differs once clusters are matched one to one (noise to noise). scikit-learn's own result depends on the
input order wherever edges of equal length meet (common: every neighbour inside a point's core distance
is at mutual-reachability distance equal to it), so each comparison has a floor: scikit-learn against
itself on a shuffled copy of the same points.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results

M_PER_DEG = 111_194.9
ROOT = Path(__file__).resolve().parent.parent


def synthetic_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SYNTHETIC geotagged posts over a city (see the module docstring); shuffled."""
    rng = np.random.default_rng(seed)
    lat0, lon0 = 51.05, 13.74
    side_m = 12_000 * np.sqrt(max(n, 10_000) / 100_000)
    n_places = max(10, n // 1500)
    central = rng.random(n_places) < 0.4
    half = np.where(central, side_m / 10, side_m / 2)
    px, py = rng.uniform(-1, 1, n_places) * half, rng.uniform(-1, 1, n_places) * half
    sigma = np.exp(rng.uniform(np.log(10), np.log(250), n_places))
    share = rng.pareto(1.2, n_places) + 1
    n_noise = int(0.25 * n)
    n_place = n - n_noise
    place = rng.choice(n_places, size=n_place, p=share / share.sum())
    x = px[place] + rng.normal(0, 1, n_place) * sigma[place]
    y = py[place] + rng.normal(0, 1, n_place) * sigma[place]
    venue = rng.random(n_place) < 0.3
    which = rng.integers(0, 3, n_place)
    x = np.where(venue, px[place] + (which - 1) * sigma[place] * 0.3, x)
    y = np.where(venue, py[place], y)
    nx, ny = rng.uniform(-side_m / 2, side_m / 2, (2, n_noise))
    home = rng.random(n_noise) < 0.2
    source = rng.integers(0, max(1, n_noise // 20), n_noise)
    nx, ny = np.where(home, nx[source], nx), np.where(home, ny[source], ny)
    x, y = np.r_[x, nx], np.r_[y, ny]
    lat = np.round(lat0 + y / M_PER_DEG, 6)
    lon = np.round(lon0 + x / (M_PER_DEG * np.cos(np.radians(lat0))), 6)
    order = rng.permutation(n)
    return lat[order], lon[order]


def dresden_points() -> tuple[np.ndarray, np.ndarray]:
    """The coordinates of the embedded Dresden sample, in file order."""
    from postloc import datasets

    posts = [p for p in datasets.load("dresden") if p.lat is not None and p.lon is not None]
    return np.array([p.lat for p in posts], dtype=float), np.array([p.lon for p in posts], dtype=float)


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(engine: str, points: Path, out: Path, shuffle: int) -> None:
    """Cluster ``points`` (npz: lat, lon) with one engine; write labels and the measurements."""
    from postloc.data.pois import PoiConfig, cluster_coordinates

    data = np.load(points)
    lat, lon = data["lat"], data["lon"]
    order = np.random.default_rng(shuffle).permutation(len(lat)) if shuffle >= 0 else np.arange(len(lat))
    rss_before = vm_hwm_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    labels = cluster_coordinates(lat[order], lon[order], PoiConfig(hdbscan_engine=engine))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    restored = np.empty_like(labels)
    restored[order] = labels
    np.save(out.with_suffix(".npy"), restored)
    out.write_text(
        json.dumps(
            {"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": vm_hwm_mb(), "rss_before_mb": rss_before, "n": len(lat)}
        )
    )


def run_child(engine: str, points: Path, work: Path, tag: str, shuffle: int = -1, env: dict | None = None) -> dict:
    out = work / f"{tag}.json"
    command = [sys.executable, __file__, "--child", engine, str(points), str(out), str(shuffle)]
    load_before = os.getloadavg()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{tag} failed:\n{done.stderr[-3000:]}")
    row = json.loads(out.read_text())
    row.update(
        engine=engine,
        tag=tag,
        shuffled=shuffle >= 0,
        load_before=[round(x, 2) for x in load_before],
        load_after=[round(x, 2) for x in os.getloadavg()],
    )
    row["labels"] = np.load(work / f"{tag}.npy")
    row["clusters"] = int(row["labels"].max() + 1)
    row["clustered"] = int((row["labels"] >= 0).sum())
    print(
        f"{tag}: {row['cpu_s']:.1f} s CPU, {row['wall_s']:.1f} s wall, {row['peak_rss_mb']:.0f} MB, "
        f"{row['clusters']} clusters, load {row['load_after'][0]}",
        flush=True,
    )
    return row


def compare(ref: np.ndarray, new: np.ndarray) -> dict[str, Any]:
    """Adjusted Rand index, counts, and points whose cluster differs after one-to-one matching."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    table = np.zeros((ref.max() + 2, new.max() + 2), dtype=np.int64)
    np.add.at(table, (ref + 1, new + 1), 1)
    clusters = table[1:, 1:]
    rows, cols = linear_sum_assignment(-clusters)
    moved = int(len(ref) - table[0, 0] - clusters[rows, cols].sum())
    return {
        "ari": round(float(adjusted_rand_score(ref, new)), 5),
        "clusters": [int(ref.max() + 1), int(new.max() + 1)],
        "clustered": [int((ref >= 0).sum()), int((new >= 0).sum())],
        "points_moved": moved,
        "points_moved_share": round(moved / len(ref), 5),
    }


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src/postloc/data/pois.py", "benchmarks/bench_pois.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return done.stdout.strip() + (" + uncommitted pois.py/bench_pois.py" if dirty else "")


def measure(name: str, lat: np.ndarray, lon: np.ndarray, work: Path, old_max: int) -> dict[str, Any]:
    """New engine, old engine (if small enough), old engine on a shuffled copy: timings and comparisons."""
    points = work / f"{name}.npz"
    np.savez(points, lat=lat, lon=lon)
    n = len(lat)
    entry: dict[str, Any] = {
        "data": name,
        "n": n,
        "unique_coordinates": int(len(np.unique(np.c_[lat, lon], axis=0))),
        "runs": [],
    }
    new = run_child("fast", points, work, f"{name}-fast")
    runs = [new]
    if n <= old_max:
        old = run_child("sklearn", points, work, f"{name}-sklearn")
        floor = run_child("sklearn", points, work, f"{name}-sklearn-shuffled", shuffle=1)
        runs += [old, floor]
        entry["new_vs_old"] = compare(old["labels"], new["labels"])
        entry["old_vs_old_shuffled"] = compare(old["labels"], floor["labels"])
    entry["runs"] = [{k: v for k, v in r.items() if k != "labels"} for r in runs]
    return entry


def first_use(work: Path) -> dict[str, Any]:
    """fast_hdbscan compiles its numba functions on first use and caches them: time one cold start."""
    lat, lon = synthetic_points(10_000, seed=7)
    points = work / "cold.npz"
    np.savez(points, lat=lat, lon=lon)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba-cold"))
    cold = run_child("fast", points, work, "cold-cache", env=env)
    warm = run_child("fast", points, work, "warm-cache", env=env)
    return {
        k: {"cpu_s": r["cpu_s"], "wall_s": r["wall_s"], "load_after": r["load_after"]}
        for k, r in (("cold", cold), ("warm", warm))
    }


def markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    lines = [
        "# POIs from coordinates: scikit-learn HDBSCAN (old) vs fast_hdbscan (new)",
        "",
        f"`{payload['command']}` at commit `{payload['commit']}`, {payload['date']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average (1/5/15 min) at the start "
        f"{m['load_average_1_5_15']}, at the end {payload['load_average_end']}. Shared machine: wall times carry "
        "the others' load (recorded per run); CPU time is the steadier figure.",
        "",
        "Data: **SYNTHETIC** city points (`synthetic_points`, seed 0) and the embedded Dresden sample (real). "
        "Each run is a fresh process; peak RSS is its VmHWM, imports included.",
        "",
        "| data | points | unique coords | engine | CPU s | wall s | peak RSS MB | clusters | clustered | load 1 min |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in payload["results"]:
        for r in entry["runs"]:
            engine = {"fast": "new: fast_hdbscan", "sklearn": "old: scikit-learn"}[r["engine"]]
            engine += ", shuffled input" if r["shuffled"] else ""
            lines.append(
                f"| {entry['data']} | {entry['n']:,} | {entry['unique_coordinates']:,} | {engine} | {r['cpu_s']:.1f} | "
                f"{r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['clusters']:,} | {r['clustered']:,} | "
                f"{r['load_after'][0]} |"
            )
        if "old_extrapolated_cpu_s" in entry:
            lines.append(
                f"| {entry['data']} | {entry['n']:,} | | old: scikit-learn, not run | "
                f"~{entry['old_extrapolated_cpu_s']:,.0f} (n^2 from the largest run) | | | | | |"
            )
    lines += [
        "",
        "Clusters (old = scikit-learn on the points in order; moved = points whose cluster differs after "
        "matching clusters one to one, noise to noise):",
        "",
        "| data | comparison | ARI | clusters | clustered | points moved |",
        "|---|---|---:|---|---|---:|",
    ]
    for entry in payload["results"]:
        for key, label in (("new_vs_old", "new vs old"), ("old_vs_old_shuffled", "old vs old on shuffled input")):
            if key in entry:
                c = entry[key]
                lines.append(
                    f"| {entry['data']} | {label} | {c['ari']} | {c['clusters'][0]} / {c['clusters'][1]} | "
                    f"{c['clustered'][0]:,} / {c['clustered'][1]:,} | {c['points_moved']:,} "
                    f"({100 * c['points_moved_share']:.2f} %) |"
                )
    if payload.get("first_use"):
        f = payload["first_use"]
        lines += [
            "",
            f"First use of fast_hdbscan (numba compiles, then caches): 10,000 points took {f['cold']['cpu_s']:.1f} s "
            f"CPU with an empty cache and {f['warm']['cpu_s']:.1f} s with it.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--old-max", type=int, default=100_000, help="largest size scikit-learn runs at")
    parser.add_argument("--no-dresden", action="store_true")
    parser.add_argument("--no-first-use", action="store_true")
    parser.add_argument("--name", default="pois")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, points, out, shuffle = args.child
        child(engine, Path(points), Path(out), int(shuffle))
        return
    command = "python benchmarks/bench_pois.py " + " ".join(sys.argv[1:])
    start = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pois-") as tmp:
        work = Path(tmp)
        if not args.no_dresden:
            results.append(measure("dresden", *dresden_points(), work, args.old_max))
        for n in (int(s) for s in args.sizes.split(",")):
            entry = measure(f"synthetic-{n // 1000}k", *synthetic_points(n), work, args.old_max)
            if n > args.old_max:
                old = [e for e in results if e["data"].startswith("synthetic") and "new_vs_old" in e]
                if old:
                    base = old[-1]
                    cpu = next(r["cpu_s"] for r in base["runs"] if r["engine"] == "sklearn")
                    entry["old_extrapolated_cpu_s"] = round(cpu * (n / base["n"]) ** 2)
            results.append(entry)
        first = None if args.no_first_use else first_use(work)
    payload = {
        "command": command.strip(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "data_note": "SYNTHETIC city points (benchmarks/bench_pois.py:synthetic_points, seed 0) and the real "
        "embedded Dresden sample",
        "results": results,
        "first_use": first,
    }
    json_path, md_path = write_results(args.name, payload, markdown(payload))
    print(markdown(payload))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
