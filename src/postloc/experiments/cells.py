"""Cells: one (model, params, data variant, seed[, fold]) run, keyed by a hash, stored as one JSON file each.

Studies share cells (MRLF with all modalities is a Table II row, the Fig. 2 "all" bar and the
Fig. 3 "mrlf" bar): the key hashes only what changes the result, so each is trained once. A
cell file is written atomically after the cell finished, so "exists" means "done" and a re-run
skips it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postloc.experiments.folder import cells_dir
from postloc.io.inputs import read_small_json


@dataclass
class Cell:
    study: str
    row: str  # display label of the method / setting
    model: str
    params: dict[str, Any]
    variant: str  # data variant name ("base", "tags-min5", "images-drop", ...)
    seed: int
    column: str = ""  # the study's x value where it has one (threshold, noise mode)
    trainer: dict[str, Any] = field(default_factory=dict)
    fold: int = -1  # cross-validation: the test fold (-1: the prepared folder's own split)
    folds: dict[str, Any] = field(default_factory=dict)  # the fold settings (k, seed, val_fraction)

    @property
    def key(self) -> str:
        spec = {
            "model": self.model,
            "params": self.params,
            "variant": self.variant,
            "seed": self.seed,
            "trainer": self.trainer,
        }
        if self.fold >= 0:  # only then: the keys of single-split cells stay as they were
            spec.update(fold=self.fold, folds=self.folds)
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> str:
        where = f" [{self.variant}]" if self.variant != "base" else ""
        fold = f" fold {self.fold}" if self.fold >= 0 else ""
        return f"{self.study}: {self.row}{where}{fold} seed {self.seed}"


class CellStore:
    """``out/cells/<key>.json`` per finished cell."""

    def __init__(self, root: Path):
        self.root = cells_dir(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        return read_small_json(path) if path.exists() else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        from postloc.io.atomic import atomic_open

        with atomic_open(self.path(key)) as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
