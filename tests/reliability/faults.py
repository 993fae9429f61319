"""Fault-injection table: many seeded SIGKILLs per command, plus the full-disk cases.

    python tests/reliability/faults.py [--kills 20] [--seed 0] [--skip-full-disk]

For ``prepare``, ``images`` and ``train`` (SYNTHETIC data, small settings) the harness of
``tests/support/fault_harness.py`` kills the command with SIGKILL just before a seeded random file-system
event (every rename of the commit step is always included), then judges the output with the
project's own loaders against a clean run and re-runs (``--resume`` for training). The full-disk
cases run ``tests/reliability/test_full_disk.py`` (a small tmpfs; needs root or ``unshare``). Writes
tests/reliability/results/faults.{json,md}; "corrupt" must be 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # _common: the machine and the results files
sys.path.insert(0, str(ROOT / "tests" / "support"))  # fault_harness

from _common import machine, write_results  # noqa: E402
from fault_harness import ImagesScenario, PrepareScenario, TrainScenario, Zygote, kill_points  # noqa: E402


def suite_file(name: str) -> Path:
    """A file of the test suite: beside this driver (where the reliability tests are to move), else in tests/."""
    return HERE / name if (HERE / name).exists() else ROOT / "tests" / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="random kill points per command (plus the renames)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-full-disk", action="store_true")
    args = parser.parse_args()

    from tqdm import tqdm

    from postloc.datasets.synthetic import SyntheticPostsConfig, generate
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    load_before = machine()["load_average_1_5_15"]
    started = time.perf_counter()
    rows, trials = [], []
    with tempfile.TemporaryDirectory(prefix="postloc-faults-") as tmp, Zygote() as zygote:
        base = Path(tmp)
        generate(base / "syn", SyntheticPostsConfig(pois=3, posts_per_poi=8, seed=5, width=64, height=48))
        prepared = write_synthetic_prepared(
            base / "train-prepared",
            SyntheticFeaturesConfig(n_pois=3, n_posts=150, n_users=24, caption_words=(3, 6), image_dim=8, seed=7),
        )
        prep = PrepareScenario(zygote, base / "syn" / "posts.jsonl", base / "syn" / "pois.csv", base / "prep")
        scenarios = [
            prep,
            ImagesScenario(zygote, prep.ref_a, base / "images"),
            TrainScenario(zygote, prepared, base / "train", epochs=3),
        ]
        for number, scenario in enumerate(scenarios):
            points = sorted(
                set(scenario.interesting()) | set(kill_points(len(scenario.events), args.kills, args.seed + number))
            )
            outcome = [scenario.trial(n) for n in tqdm(points, desc=scenario.name, unit="kill")]
            trials += outcome
            states = Counter(t.state for t in outcome)
            rows.append(
                {
                    "command": scenario.name,
                    "events_in_clean_run": len(scenario.events),
                    "kills_injected": sum(t.killed for t in outcome),
                    "states": dict(states),
                    "rerun_ok": sum(t.rerun_ok for t in outcome),
                    "corrupt": sum(t.corrupt for t in outcome),
                    "problems": [f"{t.kill_at}: {t.state} {t.detail}" for t in outcome if t.corrupt],
                }
            )
    full_disk = None
    if not args.skip_full_disk:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(suite_file("test_full_disk.py")),
                "-rA",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith(("PASSED", "FAILED", "ERROR"))]
        full_disk = {
            "returncode": done.returncode,
            "cases": [{"case": line.split("::")[-1].split(" ")[0], "outcome": line.split(" ")[0]} for line in lines],
        }
    seconds = time.perf_counter() - started
    result = {
        "data": "SYNTHETIC posts with photos (3 POIs x 8 posts) and SYNTHETIC prepared features "
        "(3 POIs, 150 posts) for training",
        "seed": args.seed,
        "kills_per_command": args.kills,
        "rows": rows,
        "corrupt_total": sum(r["corrupt"] for r in rows),
        "full_disk": full_disk,
        "seconds": round(seconds, 1),
        "machine": {**machine(), "load_average_before": load_before},
        "command": "python tests/reliability/faults.py " + " ".join(sys.argv[1:]),
    }
    md = [
        "# Fault injection: SIGKILL at seeded file-system events, and a full disk",
        "",
        f"Command: `{result['command'].strip()}` ({result['seconds']:.0f} s). Data: {result['data']}. "
        f"Machine: {result['machine']['cores']}-core shared CPU, load average before "
        f"{load_before}, after {result['machine']['load_average_1_5_15']} (1/5/15 min).",
        "",
        "Each kill lands just before the N-th write-like file-system operation (open for writing, rename, "
        "mkdir, unlink, rmtree) under the output folder; N is seeded random over a clean run's events, "
        "and every rename of the commit step is always included. States: *previous* = the earlier complete "
        "output, *new* = the new complete output, *absent* = nothing yet, *partial-run* = complete "
        "checkpoints / cache shards of an unfinished run (what a re-run or `--resume` continues), "
        "*corrupt* = anything else or a failed re-run.",
        "",
        "| command | events in a clean run | kills injected | previous | new | absent | partial-run | "
        "re-run / resume OK | corrupt |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["states"]
        md.append(
            f"| {r['command']} | {r['events_in_clean_run']} | {r['kills_injected']} | {s.get('previous', 0)} | "
            f"{s.get('new', 0)} | {s.get('absent', 0)} | {s.get('partial-run', 0)} | {r['rerun_ok']} | "
            f"{r['corrupt']} |"
        )
    md.append("")
    md.append(
        "Training: every resumed run gave `best/` weights bit-identical to an uninterrupted run and the "
        "same validation accuracy (a trial counts as corrupt otherwise)."
    )
    if full_disk is not None:
        md += [
            "",
            "Full disk (a 16 MB tmpfs filled to a few KB, earlier outputs inside; "
            "`tests/reliability/test_full_disk.py`):",
            "",
            "| case | outcome |",
            "|---|---|",
        ]
        md += [f"| {c['case']} | {c['outcome']} |" for c in full_disk["cases"]]
    md.append("")
    write_results("faults", result, "\n".join(md), folder=HERE / "results")
    print("\n".join(md))
    if result["corrupt_total"] or (full_disk and full_disk["returncode"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
