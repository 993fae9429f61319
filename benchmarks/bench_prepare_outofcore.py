"""``prepare`` in memory vs out of core (DuckDB): wall time and peak memory on SYNTHETIC Parquet corpora.

``--format jsonl`` writes the same corpus as JSON Lines instead (the exchange format).

Run: ``.venv/bin/python benchmarks/bench_prepare_outofcore.py [--posts 1000000 --small 250000]``.
Writes ``benchmarks/results/prepare-outofcore.{json,md}``; docs/scale-prepare.md quotes it.
Use ``--posts 10000000`` on a bigger machine (``--engines duckdb`` to skip the in-memory engine).

The corpus is SYNTHETIC, generated on the fly from a seed, shaped like an Instagram location
crawl: captions of 0-60 words (log-normal length) with their hashtags written inline (so
``prepare`` extracts them), Zipf-distributed hashtags, users and places (2,000 labelled
places around 5 cities), 10% non-English captions, 2% reposts, 0-3 images per post.

Each engine runs as ``python -m postloc prepare ... --quiet`` in a fresh process, one run at
a time. Peak memory is reported two ways, both read from ``/proc`` every 0.1 s: the largest
single process's peak (``VmHWM``, kept by the kernel, so no spike is missed but the last 0.1 s)
and the largest sum of RSS over the whole process tree (that one counts ``--workers`` processes
too, and may miss a spike shorter than 0.1 s). Results before 2026-12-02's third round took the
first from ``wait4``'s ``ru_maxrss``, which also counts this script's own pages shared with the
child before ``exec``: that overstated runs made after the script had compared large outputs.
CPU time (user + system of the process and its workers) is reported next to wall time: on a
shared machine it moves much less with other people's load.

Old vs new side by side: ``--baseline OLD/src`` runs another checkout's code (e.g. from
``git worktree add --detach /tmp/old <commit>``) right after this tree's, on the same corpus,
and reports the speed-up and whether the two wrote byte-identical files. Quick check:
``--posts 100000 --small 0 --baseline OLD/src`` (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results

ENGLISH = [
    "the",
    "a",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "with",
    "for",
    "on",
    "at",
    "my",
    "this",
    "that",
    "we",
    "so",
    "just",
    "our",
    "day",
    "view",
    "from",
    "beautiful",
    "morning",
    "evening",
    "sunset",
    "sunrise",
    "light",
    "city",
    "old",
    "town",
    "river",
    "bridge",
    "walk",
    "trip",
    "friends",
    "family",
    "weekend",
    "summer",
    "winter",
    "coffee",
    "lunch",
    "dinner",
    "museum",
    "church",
    "tower",
    "square",
    "park",
    "garden",
    "lovely",
    "amazing",
    "great",
    "best",
    "little",
    "night",
    "lights",
    "street",
    "market",
    "visit",
    "favourite",
    "place",
    "again",
    "finally",
    "back",
    "home",
    "today",
    "love",
    "always",
    "never",
    "time",
    "first",
    "last",
    "best",
    "memories",
    "view",
    "photo",
]
GERMAN = [
    "der",
    "die",
    "das",
    "und",
    "ist",
    "ein",
    "eine",
    "mit",
    "auf",
    "dem",
    "den",
    "zu",
    "im",
    "nicht",
    "wir",
    "unser",
    "heute",
    "schöner",
    "abend",
    "morgen",
    "stadt",
    "brücke",
    "fluss",
    "kirche",
    "turm",
    "platz",
    "garten",
    "wunderbar",
    "wieder",
    "endlich",
    "zuhause",
]


def _zipf_choice(rng: np.random.Generator, n_items: int, size: int, a: float = 1.1) -> np.ndarray:
    """Zipf-like ranks in [0, n_items): a few items are very common, most are rare."""
    weights = 1.0 / np.arange(1, n_items + 1) ** a
    return rng.choice(n_items, size=size, p=weights / weights.sum())


def write_corpus(path: Path, n: int, seed: int = 0, chunk: int = 100_000) -> dict:
    """Write a SYNTHETIC Parquet corpus of ``n`` posts; returns a description of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_places, n_users, n_tags = 2_000, max(100, n // 10), 50_000
    cities = np.array([[51.05, 13.74], [48.86, 2.35], [40.71, -74.0], [35.68, 139.69], [-33.87, 151.21]])
    place_city = rng.integers(0, len(cities), n_places)
    place_xy = cities[place_city] + rng.normal(0, 0.03, (n_places, 2))
    place_tags = rng.integers(0, n_tags, (n_places, 3))  # each place has a few signature tags
    tag_names = np.array([f"tag{i}" for i in range(n_tags)], dtype=object)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("image", pa.list_(pa.string())),
            ("poi", pa.string()),
            ("poi_name", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("user", pa.string()),
            ("created", pa.string()),
        ]
    )
    previous = None
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            places = _zipf_choice(rng, n_places, m, 0.8)
            users = _zipf_choice(rng, n_users, m, 0.9)
            n_words = np.clip(rng.lognormal(2.3, 0.8, m).astype(int), 0, 60)
            n_words[rng.random(m) < 0.08] = 0  # photo-only posts
            n_hashtags = np.clip(rng.poisson(5, m), 0, 30)
            german = rng.random(m) < 0.10
            n_images = rng.choice(4, m, p=[0.1, 0.7, 0.15, 0.05])
            jitter = rng.normal(0, 0.0004, (m, 2))
            general = _zipf_choice(rng, n_tags, int(n_hashtags.sum()), 1.05)
            signature = rng.random(int(n_hashtags.sum())) < 0.3
            signature_pick = rng.integers(0, 3, m)
            word_ids = rng.integers(0, len(ENGLISH) * len(GERMAN), int(n_words.sum()))
            repost = rng.random(m) < 0.02
            rows, tag_at, word_at = [], 0, 0
            for i in range(m):
                k = start + i
                p = int(places[i])
                vocabulary = GERMAN if german[i] else ENGLISH
                words = [vocabulary[w % len(vocabulary)] for w in word_ids[word_at : word_at + n_words[i]]]
                word_at += n_words[i]
                h = n_hashtags[i]
                tags = np.where(
                    signature[tag_at : tag_at + h], place_tags[p, signature_pick[i]], general[tag_at : tag_at + h]
                )
                tag_at += h
                text = " ".join(words) + (" " if words and h else "") + " ".join("#" + tag_names[t] for t in tags)
                row = {
                    "id": f"syn-{k}",
                    "text": text,
                    "image": [f"img/{k}_{j}.jpg" for j in range(n_images[i])],
                    "poi": f"place{p}",
                    "poi_name": f"Place {p}",
                    "lat": float(place_xy[p, 0] + jitter[i, 0]),
                    "lon": float(place_xy[p, 1] + jitter[i, 1]),
                    "user": f"user{int(users[i])}",
                    "created": f"2023-{1 + k % 12:02d}-{1 + k % 28:02d}T12:00:00",
                }
                if previous is not None and repost[i]:  # a repost: same user, text, place
                    row.update({key: previous[key] for key in ("text", "poi", "poi_name", "lat", "lon", "user")})
                previous = row
                rows.append(row)
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return {
        "synthetic": True,
        "posts": n,
        "places": n_places,
        "users": n_users,
        "hashtag_pool": n_tags,
        "seed": seed,
        "size_mb": round(path.stat().st_size / 2**20, 1),
    }


def _tree_memory_kb(root: int) -> tuple[int, int]:
    """Over ``root`` and its descendants (Linux /proc): the sum of VmRSS, and the largest VmHWM.

    VmHWM is a process's peak RSS since its ``exec``. The kernel's ``ru_maxrss`` (from ``wait4``)
    is not used: it also counts the pages the child shared with this script between ``fork`` and
    ``exec``, so after the script has held a large output in memory it reports the script's size.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, largest, stack = 0, 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        largest = max(largest, int(line.split()[1]))
                    elif line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total, largest


SRC = Path(__file__).resolve().parent.parent / "src"


def parquet_to_jsonl(source: Path, target: Path) -> None:
    """The same posts as JSON Lines (the exchange format; nulls left out), batch by batch."""
    import json

    import pyarrow.parquet as pq

    with open(target, "w", encoding="utf-8") as handle:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=50_000):
            for row in batch.to_pylist():
                handle.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")


def run_prepare(corpus: Path, out: Path, engine: str, extra: list[str], src: Path = SRC) -> dict:
    """One ``postloc prepare`` in a fresh process: wall time, peak RSS (largest process and tree sum).

    ``src`` is the source tree whose ``postloc`` runs (``--baseline`` gives another checkout's).
    """
    command = [
        sys.executable,
        "-m",
        "postloc",
        "prepare",
        str(corpus),
        "--out",
        str(out),
        "--engine",
        engine,
        "--quiet",
        *extra,
    ]
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0, 0]  # process tree's RSS sum, largest process's high-water mark (KB)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree, largest = _tree_memory_kb(child.pid)
            peak[0], peak[1] = max(peak[0], tree), max(peak[1], largest)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read()
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "engine": engine,
        "options": extra,
        "seconds": round(seconds, 1),
        "posts_per_s": round(summary["funnel"]["read"] / seconds),
        # CPU time of the child and its waited-for children: less sensitive than wall time to a busy machine
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "posts_per_cpu_s": round(summary["funnel"]["read"] / max(usage.ru_utime + usage.ru_stime, 1e-9)),
        "peak_rss_mb": round(peak[1] / 1024),
        "peak_tree_rss_mb": round(peak[0] / 1024),
        "kept": summary["all"]["posts"],
        "pois": summary["all"]["pois"],
        "users": summary["all"]["users"],
    }


def same_outputs(a: Path, b: Path) -> dict:
    """Which output files two runs wrote byte-identically (manifest.json differs by design: engine)."""
    return {
        p.name: p.read_bytes() == (b / p.name).read_bytes() for p in sorted(a.iterdir()) if p.name != "manifest.json"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts in the large corpus")
    parser.add_argument("--small", type=int, default=250_000, help="posts in the small corpus (0: skip)")
    parser.add_argument("--engines", default="memory,duckdb", help="comma-separated engines to run")
    parser.add_argument("--memory-limit", default="1GB", help="duckdb engine's --memory-limit")
    parser.add_argument("--workers", type=int, default=1, help="--workers for every run")
    parser.add_argument(
        "--format", choices=("parquet", "jsonl"), default="parquet", help="the corpus's file format (default parquet)"
    )
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: the system's temp)")
    parser.add_argument("--name", default="prepare-outofcore", help="results file name under benchmarks/results/")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the src/ folder of another checkout (e.g. a `git worktree` of an older commit): each engine "
        "runs it right after this tree's code on the same corpus; ratios and byte-identity are reported",
    )
    args = parser.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    local = {"--tmp", "--baseline", str(args.tmp), str(args.baseline)}
    shown = [a for a in sys.argv[1:] if a not in local]  # no local paths
    if args.baseline is not None:
        shown.append("--baseline OLD/src")
    results: dict = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/bench_prepare_outofcore.py", *shown]),
        "memory_limit": args.memory_limit,
        "format": args.format,
        "workers": args.workers,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        for n in sorted({args.small, args.posts} - {0}):
            corpus = tmp / f"synthetic-{n}.parquet"
            t = time.perf_counter()
            description = write_corpus(corpus, n)
            if args.format == "jsonl":
                parquet, corpus = corpus, corpus.with_suffix(".jsonl")
                parquet_to_jsonl(parquet, corpus)
                parquet.unlink()
                description["format"] = "jsonl"
                description["size_mb"] = round(corpus.stat().st_size / 2**20, 1)
            description["generate_seconds"] = round(time.perf_counter() - t, 1)
            runs = {}
            for engine in engines:
                extra = ["--workers", str(args.workers)]
                if engine == "duckdb":
                    extra += ["--memory-limit", args.memory_limit]
                runs[engine] = run_prepare(corpus, tmp / f"out-{n}-{engine}", engine, extra)
                runs[engine]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                print(n, runs[engine], flush=True)
                if args.baseline is not None:
                    old = tmp / f"out-{n}-{engine}-baseline"
                    base = run_prepare(corpus, old, engine, extra, src=args.baseline)
                    base["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                    base["speedup"] = round(base["seconds"] / runs[engine]["seconds"], 2)
                    base["identical_to_new"] = same_outputs(tmp / f"out-{n}-{engine}", old)
                    runs[f"{engine} (baseline)"] = base
                    print(n, base, flush=True)
            entry = {"corpus": description, "runs": runs}
            if len(engines) > 1:
                entry["identical_outputs"] = same_outputs(tmp / f"out-{n}-{engines[0]}", tmp / f"out-{n}-{engines[1]}")
            results["sizes"][n] = entry
            for engine in engines:
                import shutil

                shutil.rmtree(tmp / f"out-{n}-{engine}", ignore_errors=True)
                shutil.rmtree(tmp / f"out-{n}-{engine}-baseline", ignore_errors=True)
            corpus.unlink()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(args.name, results, markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# `prepare`: in-memory vs out-of-core (DuckDB) engine",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), shared with other work; Python {m['python']}; load average at "
        f"start {m['load_average_1_5_15']}, at end {m.get('load_average_at_end')} (other work slows timings).",
        f"Command: `{results['command']}`; duckdb `--memory-limit {results['memory_limit']}`, "
        f"`--workers {results['workers']}`. Data: SYNTHETIC {results.get('format', 'parquet')} corpora "
        "(seeded; see the script's docstring).",
        "",
        "| posts (synthetic) | engine | wall time | posts/s | CPU time | posts/CPU-s | peak RSS, largest process | "
        "peak RSS, process tree | kept posts | POIs | load avg after |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n, entry in results["sizes"].items():
        for engine, run in entry["runs"].items():
            lines.append(
                f"| {int(n):,} ({entry['corpus']['size_mb']} MB) | {engine} | {run['seconds']} s | "
                f"{run['posts_per_s']:,} | {run.get('cpu_seconds', '-')} s | {run.get('posts_per_cpu_s', 0):,} | "
                f"{run['peak_rss_mb']:,} MB | {run['peak_tree_rss_mb']:,} MB | "
                f"{run['kept']:,} | {run['pois']:,} | {run['load_average_after']} |"
            )
    lines.append("")
    for n, entry in results["sizes"].items():
        for name, run in entry["runs"].items():
            if "speedup" in run:
                same = "byte-identical" if all(run["identical_to_new"].values()) else "DIFFERENT"
                lines.append(
                    f"- {int(n):,} posts, {name}: this tree is {run['speedup']}x faster than the baseline "
                    f"(same corpus, run back to back); outputs (manifest aside) {same}."
                )
        if "identical_outputs" in entry:
            same = entry["identical_outputs"]
            verdict = (
                "all byte-identical"
                if all(same.values())
                else "differ: " + ", ".join(k for k, v in same.items() if not v)
            )
            lines.append(f"- {int(n):,} posts: output files of the two engines (manifest aside): {verdict}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
