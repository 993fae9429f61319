"""The experiments' user-disjoint folds as plain frames, for studies that score a model variant per fold.

``postloc crossval`` and ``postloc experiments`` run whole cells (train a run folder, score it,
store per-post outcomes). Some questions need less and more: fit a ``stack`` whose internals a
study changes, then re-weight its probabilities on the test posts (the scripts in
``studies/stack_*``). They iterate over the *same* folds as the experiments
(:mod:`postloc.data.folds`, seed 0), so that their rows pair with the fold reports of
docs/winning-model.md, through :func:`user_folds`; :func:`folds_parser` and
:func:`write_fold_report` give them one command line and one pair of report files.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd


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
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    classes: list[str]
    truth: np.ndarray  # the test posts' class indices


def user_folds(prepared: Path, n_folds: int) -> Iterator[FoldFrames]:
    """The experiments' user-disjoint folds (``postloc.data.folds``, seed 0), fold by fold.

    The classes are every POI of the prepared folder, sorted, so that every fold's model has the
    same columns whichever POIs its training users visited.
    """
    from postloc.data.folds import FoldConfig, assign_folds, fold_splits
    from postloc.data.labels import label_indices
    from postloc.data.prepared import load_prepared

    posts = load_prepared(prepared).posts
    config = FoldConfig(k=n_folds)
    folds = assign_folds(posts, config)
    classes = sorted(posts["poi"].astype(str).unique())
    for k in range(n_folds):
        split = fold_splits(posts, folds, k, config)
        train, val, test = (posts[split == s] for s in ("train", "val", "test"))
        yield FoldFrames(k, train, val, test, classes, label_indices(test["poi"], classes))


def write_fold_report(out: Path, stem: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """``out/STEM.md`` (the table) and ``out/STEM.json`` (the per-fold rows), and the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))
