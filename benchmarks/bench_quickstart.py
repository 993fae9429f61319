"""``postloc quickstart`` on 5,000 posts with photos: does it finish in under 10 minutes on 2 cores?

Run: ``.venv/bin/python benchmarks/bench_quickstart.py [--posts 5000] [--pois 20]``. Writes
``benchmarks/results/quickstart.{json,md}``. Generates a SYNTHETIC set (``postloc synthetic``:
rendered photos, captions and hashtags at invented POIs; generation is not timed), then runs the
command a user runs, ``postloc quickstart POSTS --out DIR --no-serve``, in a fresh process, with
the default settings (the default model, 5-fold scores against tfidf-logreg and majority, image
features with the default backbone and portrait filter). Reports the wall-clock and the seconds
of each step from the quickstart manifest, then the time of a second, resumed run (all steps kept).

Also, side by side in the same run: the same command on the embedded Dresden set (real posts,
tags only, no photos).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timer, write_results

TARGET_SECONDS = 600


def run_quickstart(source: str, out: Path) -> dict:
    command = [sys.executable, "-m", "postloc", "quickstart", source, "--out", str(out), "--no-serve", "--quiet"]
    with timer() as t:
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"quickstart failed:\n{done.stderr[-3000:]}")
    manifest = json.loads((out / "quickstart.json").read_text())
    return {
        "seconds": round(t["seconds"], 1),
        "steps": manifest.get("step_seconds", {}),
        "scores": manifest.get("scores", {}),
        "prepared": manifest["steps"].get("prepare"),
        "images": manifest["steps"].get("images"),
        "choices": {c["name"]: c["value"] for c in manifest["choices"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--pois", type=int, default=20)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the stored .json")
    args = parser.parse_args()
    if args.markdown_only:
        from _common import RESULTS

        payload = json.loads((RESULTS / "quickstart.json").read_text())
        (RESULTS / "quickstart.md").write_text(markdown(payload, args))
        return
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    payload: dict = {"machine_at_start": machine(), "target_seconds": TARGET_SECONDS}
    with tempfile.TemporaryDirectory(prefix="postloc-bench-quickstart-") as tmp_name:
        tmp = Path(tmp_name)
        with timer() as t:
            generate(tmp / "syn", SyntheticPostsConfig(pois=args.pois, posts_per_poi=args.posts // args.pois))
        payload["generate_seconds"] = round(t["seconds"], 1)
        synthetic = run_quickstart(str(tmp / "syn" / "posts.jsonl"), tmp / "out")
        synthetic["resumed_seconds"] = run_quickstart(str(tmp / "syn" / "posts.jsonl"), tmp / "out")["seconds"]
        payload["synthetic"] = synthetic
        payload["dresden"] = run_quickstart("dresden", tmp / "dresden")
    payload["machine_at_end"] = machine()
    write_results("quickstart", payload, markdown(payload, args))
    print(markdown(payload, args))


def markdown(p: dict, args: argparse.Namespace) -> str:
    m0, m1 = p["machine_at_start"], p["machine_at_end"]
    lines = [
        "# quickstart benchmark",
        "",
        f"Command: `python benchmarks/bench_quickstart.py --posts {args.posts} --pois {args.pois}`  ",
        f"Machine: {m0['cpu']}, {m0['cores']} cores, no GPU, torch {m0['torch']}, Python {m0['python']}; "
        f"load average at start {m0['load_average_1_5_15'][0]}, at end {m1['load_average_1_5_15'][0]} "
        "(other processes share these cores).",
        "",
        "| data | posts kept | POIs | photos | wall-clock s | target s | resumed run s |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for key, label in (
        ("synthetic", f"SYNTHETIC, {args.posts:,} posts with photos"),
        ("dresden", "Dresden (real, tags only)"),
    ):
        r = p[key]
        images = "features computed" if (r["images"] or {}).get("computed") else "none"
        lines.append(
            f"| {label} | {r['prepared']['posts']:,} | {r['prepared']['pois']} | {images} | {r['seconds']:.0f} | "
            f"{TARGET_SECONDS if key == 'synthetic' else '–'} | {r.get('resumed_seconds', '–')} |"
        )
    lines += ["", "Seconds per step (from the quickstart manifest):", ""]
    steps = sorted({s for key in ("synthetic", "dresden") for s in p[key]["steps"]})
    lines += ["| data | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for key in ("synthetic", "dresden"):
        lines.append(f"| {key} | " + " | ".join(str(p[key]["steps"].get(s, "–")) for s in steps) + " |")
    lines += ["", "Scores on user-disjoint folds (as many as quickstart chose; the synthetic set is easy):"]
    lines += ["", "| data | folds | model | accuracy | mean km |", "|---|---:|---|---:|---:|"]
    for key in ("synthetic", "dresden"):
        for model, s in sorted(p[key]["scores"].items(), key=lambda kv: -(kv[1]["accuracy"] or 0)):
            folds = p[key]["choices"].get("folds")
            lines.append(f"| {key} | {folds} | {model} | {s['accuracy']:.3f} | {s['mean_km']:.2f} |")
    lines += ["", f"Generating the synthetic set (not part of the timing): {p['generate_seconds']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
