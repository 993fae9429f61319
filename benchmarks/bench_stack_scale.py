"""Training time and peak memory of the default model (``stack``) against ``tfidf-logreg``, by posts and POIs.

Run: ``.venv/bin/python benchmarks/bench_stack_scale.py [--grid 10000x40,100000x40,137676x40]
[--name stack-scale]``. Writes ``benchmarks/results/NAME.{json,md}``.

For each ``POSTSxPOIS`` cell it writes a SYNTHETIC corpus of the paper's New York shape
(``paper_corpus.py``: captions and hashtags, Zipf-like users, seed 0), prepares it as a user
would (``postloc prepare --languages any --min-hashtag-count 10``), then runs ``postloc train``
with ``tfidf-logreg`` and with the default model, one after the other in fresh processes on the
same prepared posts: wall time (start-up included), the child's peak resident memory, and each
run's accuracy and mean error on the test split's users (``postloc evaluate --split test``, not
timed; the val score of ``stack`` is in-sample, since it also trains on the val posts). The ratio
``stack / tfidf-logreg`` is the number to read:
both share the machine's load at that moment, so it moves far less than the seconds do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results
from paper_corpus import write_paper_corpus

BUILD = Path("build/bench-stack-scale")


def timed(command: list[str], log: Path) -> dict:
    """Run ``command``; its wall seconds, peak RSS (its own, from wait4) and its ``stack:`` progress lines.

    Each line of its output goes to ``log`` behind the seconds since the start, and the lines of
    ``stack``'s progress (one per finished step: features, inner folds, refits) are returned with
    theirs, so a results file says where a fit's time went.
    """
    start = time.perf_counter()
    steps = []
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            elapsed = round(time.perf_counter() - start, 1)
            handle.write(f"[{elapsed:8.1f} s] {line}")
            handle.flush()  # a long run's log can be followed while it runs
            if line.startswith("stack: "):
                steps.append([elapsed, line[len("stack: ") :].strip()])
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    result = {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 0)}
    return {**result, "steps": steps} if steps else result


def cell(
    posts: int, pois: int, keep: bool, models: list[str], stack_set: list[str] | None = None, ray: bool = False
) -> dict:
    root = BUILD / f"{posts}x{pois}"
    corpus, prepared = root / "corpus", root / "prepared"
    if not (prepared / "manifest.json").exists():
        write_paper_corpus(corpus, posts, pois, seed=0)
        command = [sys.executable, "-m", "postloc", "prepare", str(corpus / "posts.jsonl"), "--pois"]
        command += [str(corpus / "pois.csv"), "--out", str(prepared), "--languages", "any"]
        command += ["--min-hashtag-count", "10", "--quiet"]
        timed(command, root / "prepare.log")
    result: dict = {"posts_written": posts, "pois": pois}
    summary = json.loads((prepared / "summary.json").read_text())
    result["posts_prepared"] = summary["all"]["posts"]
    for name in models:
        # stack: what `postloc train` trains by default, with the settings asked for (--set)
        # and, with ray, its regressions as tasks of a local Ray cluster (one worker per core)
        model = [arg for item in stack_set or [] for arg in ("--set", item)] if name == "stack" else ["--model", name]
        model += ["--engine", "ray"] if ray and name == "stack" else []
        out = root / f"run-{name}{'-ray' if ray and name == 'stack' else ''}"  # a Ray run beside the local one
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "postloc", "train", "--data", str(prepared), "--out", str(out), *model]
        result[name] = timed(command, root / f"train-{out.name[len('run-') :]}.log")
        evaluate = [sys.executable, "-m", "postloc", "evaluate", str(out), "--split", "test"]
        subprocess.run(evaluate, check=True, capture_output=True)
        scores = json.loads((out / "eval-test.json").read_text())
        result[name]["test_acc"] = round(float(scores["accuracy"]), 4)
        result[name]["test_mean_km"] = round(float(scores["mean_km"]), 3)
        print(f"{posts:,} posts x {pois} POIs: {name} {result[name]}", flush=True)
    if "stack" in result and "tfidf-logreg" in result:
        result["ratio"] = round(result["stack"]["seconds"] / result["tfidf-logreg"]["seconds"], 2)
    if not keep:
        shutil.rmtree(root / "corpus", ignore_errors=True)
    return result


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        "# stack against tfidf-logreg by posts and POIs (SYNTHETIC, the paper's New York shape)",
        "",
        f"Command: `python benchmarks/bench_stack_scale.py --grid {payload['grid']} --models {payload['models']}"
        f"{''.join(f' --set {item}' for item in payload.get('stack_set', []))}"
        f"{' --ray' if payload.get('ray') else ''}`; "
        f"commit {payload['commit']}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU {m['gpu']}; load average before "
        f"{m['load_average_1_5_15']}, after {payload['load_after']}.",
        "",
        "| posts written | prepared | POIs | tfidf-logreg s | stack s | stack / tfidf | peak MB (tfidf / stack) "
        "| test acc (tfidf / stack) | test mean km (tfidf / stack) |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    missing = {"seconds": "-", "peak_rss_mb": float("nan"), "test_acc": "-", "test_mean_km": "-"}
    for r in payload["cells"]:
        t, s = r.get("tfidf-logreg", missing), r.get("stack", missing)
        lines.append(
            f"| {r['posts_written']:,} | {r['posts_prepared']:,} | {r['pois']} | {t['seconds']} | {s['seconds']} | "
            f"{r.get('ratio', '-')} | {t['peak_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} | "
            f"{t['test_acc']} / {s['test_acc']} | "
            f"{t['test_mean_km']} / {s['test_mean_km']} |"
        )
    for r in payload["cells"]:
        steps = r.get("stack", {}).get("steps")
        if steps:
            lines += ["", f"stack's steps on {r['posts_written']:,} x {r['pois']} (seconds since the start):", ""]
            lines += [f"- {seconds:.1f} s: {step}" for seconds, step in steps]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="10000x40,100000x40,137676x40,100000x500")
    parser.add_argument("--name", default="stack-scale")
    parser.add_argument("--keep-corpus", action="store_true")
    parser.add_argument("--models", default="tfidf-logreg,stack", help="comma-separated (default both)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for stack's train")
    parser.add_argument("--ray", action="store_true", help="train stack with --engine ray (a local Ray cluster)")
    args = parser.parse_args()
    BUILD.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "grid": args.grid, "models": args.models, "synthetic": True, "cells": []}
    payload["stack_set"], payload["ray"] = args.set, args.ray
    payload["commit"] = git_commit()
    for item in args.grid.split(","):
        posts, pois = (int(v) for v in item.split("x"))
        payload["cells"].append(cell(posts, pois, args.keep_corpus, args.models.split(","), args.set, args.ray))
        payload["cells"][-1]["commit"] = git_commit()  # the code may change between long cells
        payload["load_after"] = [round(x, 2) for x in os.getloadavg()]
        write_results(args.name, payload, markdown(payload))


if __name__ == "__main__":
    main()
