"""``postloc quickstart`` on SYNTHETIC posts of the paper's New York shape (captions and hashtags, no
photos): how long does the one command take on a small set with captions (issue 27: 1,000 posts in
at most 2 minutes on 2 cores)?

Run: ``.venv/bin/python benchmarks/bench_quickstart_captions.py [--posts 1000] [--pois 40]``. Writes
``benchmarks/results/quickstart-captions-<posts>.{json,md}``. The posts come from
``paper_corpus.write_paper_corpus`` (Zipfian heavy and light users; generation is not timed); the
command is the one a user runs, ``postloc quickstart POSTS --out DIR --no-serve``, in a fresh process,
with the default settings: the default model's cross-validated scores against tfidf-logreg and the
majority class, then the final training. The seconds of each step come from the quickstart manifest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timer, write_results
from bench_quickstart import run_quickstart
from paper_corpus import write_paper_corpus

TARGET_SECONDS = 120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--pois", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    payload: dict = {"machine_at_start": machine(), "target_seconds": TARGET_SECONDS, "synthetic": True}
    with tempfile.TemporaryDirectory(prefix="postloc-bench-quickstart-captions-") as tmp_name:
        tmp = Path(tmp_name)
        with timer() as t:
            write_paper_corpus(tmp / "corpus", posts=args.posts, pois=args.pois, seed=args.seed)
        payload["generate_seconds"] = round(t["seconds"], 1)
        payload["run"] = run_quickstart(str(tmp / "corpus" / "posts.jsonl"), tmp / "out")
    payload["machine_at_end"] = machine()
    text = markdown(payload, args)
    write_results(f"quickstart-captions-{args.posts}", payload, text)
    print(text)


def markdown(p: dict, args: argparse.Namespace) -> str:
    m0, m1, r = p["machine_at_start"], p["machine_at_end"], p["run"]
    steps = r["steps"]
    lines = [
        "# quickstart on SYNTHETIC posts with captions (the paper's New York shape)",
        "",
        f"Command: `python benchmarks/bench_quickstart_captions.py --posts {args.posts} --pois {args.pois} "
        f"--seed {args.seed}`  ",
        f"Machine: {m0['cpu']}, {m0['cores']} cores, no GPU, torch {m0['torch']}, Python {m0['python']}; "
        f"load average at start {m0['load_average_1_5_15'][0]}, at end {m1['load_average_1_5_15'][0]} "
        "(other processes share these cores).",
        "",
        "| data | posts kept | POIs | wall-clock s | target s |",
        "|---|---:|---:|---:|---:|",
        f"| SYNTHETIC, {args.posts:,} posts written | {r['prepared']['posts']:,} | {r['prepared']['pois']} | "
        f"{r['seconds']:.0f} | {TARGET_SECONDS} |",
        "",
        "Seconds per step (from the quickstart manifest):",
        "",
        "| " + " | ".join(steps) + " |",
        "|" + "---:|" * len(steps),
        "| " + " | ".join(str(v) for v in steps.values()) + " |",
        "",
        f"Scores on user-disjoint folds ({r['choices'].get('folds')} folds, as quickstart chose):",
        "",
        "| model | accuracy | mean km |",
        "|---|---:|---:|",
    ]
    for model, s in sorted(r["scores"].items(), key=lambda kv: -(kv[1]["accuracy"] or 0)):
        lines.append(f"| {model} | {s['accuracy']:.3f} | {s['mean_km']:.2f} |")
    lines += ["", f"Generating the posts (not part of the timing): {p['generate_seconds']:.1f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
