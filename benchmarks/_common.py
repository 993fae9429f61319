"""Shared bits of the benchmarks: machine description and JSON + Markdown output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": "none" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        # other work on the machine slows every timing: say how busy it was
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size so far (Linux reports KiB)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path


def folds_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the scripts that score models on a prepared folder's user-disjoint folds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("prepared", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    return parser


class FoldFrames(NamedTuple):
    """One fold of a prepared folder's user-disjoint folds: its three splits, the classes, the test labels."""

    k: int
    train: Any
    val: Any
    test: Any
    classes: list[str]
    truth: Any  # the test posts' class indices


def user_folds(prepared: Path, n_folds: int) -> Iterator[FoldFrames]:
    """The experiments' user-disjoint folds (``postloc.data.folds``, seed 0), as the stack_* scripts score them."""
    from postloc.data.folds import FoldConfig, assign_folds, fold_splits
    from postloc.data.prepared import load_prepared

    posts = load_prepared(prepared).posts
    config = FoldConfig(k=n_folds)
    folds = assign_folds(posts, config)
    classes = sorted(posts["poi"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    for k in range(n_folds):
        split = fold_splits(posts, folds, k, config)
        train, val, test = (posts[split == s] for s in ("train", "val", "test"))
        yield FoldFrames(k, train, val, test, classes, test["poi"].astype(str).map(index).to_numpy())


def write_fold_report(out: Path, stem: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """``out/STEM.md`` (the table) and ``out/STEM.json`` (the per-fold rows), and the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))
