"""The experiment folder (``postloc experiments --out``, ``postloc crossval --out``, a quickstart's ``cv/``).

The one module that names its files and folders; the runner, the studies, the report, the verdict
and the quickstart ask it where things are::

    experiment.json         the marker, written when a run starts (:data:`REPORT`)
    results.json, report.md the results and their report, rewritten at the end of every run
    STUDY.png               one plot per study that has one
    folds.parquet           user -> fold, with the fold settings (cross-validation)
    cells/KEY.json          one finished cell each (:class:`postloc.experiments.cells.CellStore`)
    predictions/KEY.parquet a cell's per-post outcomes (paired comparisons, the quickstart's report)
    runs/KEY/               a cell's run folder while it trains (kept with ``keep_runs``)
    data/VARIANT/           data variants (Fig. 4's thresholds: ``variant.json`` says how each was made)
    data/table3/            Table III's image variants (``table3.json``)
    data/folds/VARIANT/fold-K/  a variant's prepared folder with fold K's splits (``fold.json``)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from postloc.io.inputs import read_small_json
from postloc.io.ownership import FolderKind

MARKER = "experiment.json"
RESULTS = "results.json"
REPORT_MD = "report.md"
FOLDS = "folds.parquet"
CELLS = "cells"
PREDICTIONS = "predictions"
RUNS = "runs"
DATA = "data"
#: the marker of a fold's prepared copy (written last: present means complete)
FOLD_INFO = "fold.json"
#: how a data variant was made (written last: present means complete)
VARIANT_INFO = "variant.json"
#: Table III's image variants and how they were made
TABLE3_INFO = "table3.json"
#: the key of ``experiment.json`` that says postloc wrote the folder
MARKER_KEY = "postloc_experiments"

#: which output folders ``experiments`` and ``crossval`` may replace or resume; folders of versions
#: before ``experiment.json`` are recognised by their ``results.json``
REPORT = FolderKind(
    "experiment report",
    (
        (MARKER, lambda m: MARKER_KEY in m),
        (RESULTS, lambda m: isinstance(m.get("rows"), list) and "config" in m),
    ),
)


def mark(out: Path, prepared: Path) -> None:
    """Write the marker when the folder is new (a resumed folder keeps the one it has)."""
    marker = out / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({MARKER_KEY: 1, "prepared": str(prepared)}) + "\n")


def marker_text(out: Path) -> str:
    """The marker's text, which a cell run elsewhere compares with its own view of the folder
    (:func:`check_reachable`); empty when the folder has no marker."""
    marker = out / MARKER
    return marker.read_text() if marker.is_file() else ""


def check_reachable(out: Path, marker: str, prepared: str | Path) -> None:
    """Refuse, in one line, to run a cell where the experiment folder is not the head's ``out``.

    A cell sent to another machine (``--engine ray`` on a cluster) reads its fold's prepared folder
    and writes its run and outcomes into ``out``, so that machine must see the folder the head wrote
    at the same path (a shared filesystem): the marker's text ``marker`` (the head's) and the cell's
    prepared folder must be there. Without this check the cell would fail later on some missing file,
    or write its results where the head never reads them.
    """
    import socket

    from postloc.errors import PostlocError

    if not marker or marker_text(out) != marker or not Path(prepared).is_dir():
        raise PostlocError(
            f"{socket.gethostname()} cannot see the experiment folder {out} (or its data {prepared}) as the "
            "head wrote it: with workers on other machines, --out must be on a filesystem every node mounts "
            "at the same path"
        )


def results_path(out: Path) -> Path:
    return out / RESULTS


def report_path(out: Path) -> Path:
    """``report.md``, the file the commands point people to."""
    return out / REPORT_MD


def plot_path(out: Path, study: str) -> Path:
    return out / f"{study}.png"


def read_results(out: Path) -> Mapping[str, Any] | None:
    """``results.json`` when the folder has one (None: no finished run, or not a JSON object)."""
    path = results_path(out)
    results = read_small_json(path) if path.is_file() else None
    return results if isinstance(results, dict) else None


def folds_path(out: Path) -> Path:
    return out / FOLDS


def cells_dir(out: Path) -> Path:
    return out / CELLS


def outcomes_path(out: Path, key: str) -> Path:
    """The per-post outcomes of the cell ``key``."""
    return out / PREDICTIONS / f"{key}.parquet"


def run_dir(out: Path, key: str) -> Path:
    """Where the cell ``key`` trains its run."""
    return out / RUNS / key


def variant_dir(out: Path, variant: str) -> Path:
    """A data variant's prepared folder (``tags-min5``) or work folder (``table3``)."""
    return out / DATA / variant


def fold_root(out: Path) -> Path:
    """``data/folds``: the variants' prepared folders with each fold's splits."""
    return out / DATA / "folds"
