"""The training run folder: the one place that names its files, reads and writes them, and seals them.

Layout (``postloc train --out RUN``)::

    RUN/config.json        the run's manifest: RunConfig + which prepared data (path, fingerprint,
                           synthetic flag); the ownership marker (io.ownership); sealed: the SHA-256
                           of data.json, density.json and calibration.json, and its own
    RUN/data.json          POI table (names, centres) and the prepared hashtag vocabulary, so
                           prediction needs only the run folder
    RUN/density.json       where the training posts were made: post counts on a grid (training.density)
    RUN/checkpoints/epoch-NNNN/   newest epoch checkpoints (models trained in epochs; nn.checkpoints)
    RUN/best/              the best-on-validation model (a saved model folder: io.model_files)
    RUN/metrics.csv, metrics.jsonl, curves.png   per-epoch log and curves
    RUN/run.json           summary written when training ends; after a failure, its status and reason
    RUN/calibration.json   the temperature fitted on the val split (models.calibration)
    RUN/eval-<split>.json/.md/-per-poi.csv/-confusion.png/-reliability.png/-coverage.png
                           written by evaluate (metrics.write_report, under :func:`eval_stem`)

Why one owner: the run folder is written by training, the trainer, calibration and evaluate, and
read by prediction, the server, quickstart and the CLI. With the names and the sealing here, a
reader cannot look in a place the writer never writes (``best/`` or the run folder itself for
``data.json``), and a sealed file cannot be written without its digest being recorded.

Sealing: whoever writes one of :data:`SEALED_FILES` goes through :class:`RunFolder`, which
records the file's SHA-256 in ``config.json`` (:meth:`RunFolder.seal`); :meth:`RunFolder.verify`
refuses a run whose sealed file differs (an edited ``data.json`` answers with another POI's name
and place, an edited ``calibration.json`` with confidence 1.0).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from postloc.errors import ModelFileError, PostlocError
from postloc.io.atomic import atomic_open
from postloc.io.inputs import read_small_json
from postloc.io.model_files import (
    FILES_KEY,
    MODEL_FILE,
    SEAL_KEY,
    check_seal,
    file_digest,
    manifest_digest,
    read_json,
    verify_folder,
)

__all__ = [
    "BEST",
    "CALIBRATION",
    "CHECKPOINTS",
    "CURVES_PNG",
    "DATA",
    "DENSITY",
    "MANIFEST",
    "METRICS_CSV",
    "METRICS_JSONL",
    "METRIC_COLUMNS",
    "RUN_INFO",
    "SEALED_FILES",
    "RunFolder",
    "eval_stem",
    "json_safe",
    "record_run_files",
    "verify_run_files",
]

#: the manifest of a training run folder: its settings and its ownership marker (``io.ownership``),
#: and, sealed like ``model.json``, the SHA-256 of the files beside ``best/`` that prediction reads
MANIFEST = "config.json"
#: the POI table and the hashtag vocabulary of the prepared data the run trained on
DATA = "data.json"
#: the temperature fitted on the val split (``models.calibration``)
CALIBRATION = "calibration.json"
#: the training posts' coordinates as a coarse grid (``training.density``)
DENSITY = "density.json"
#: the summary written when training ends (or its failure)
RUN_INFO = "run.json"
#: the best-on-validation model, a saved model folder
BEST = "best"
#: the folder of the epoch checkpoints (``nn.checkpoints``)
CHECKPOINTS = "checkpoints"
#: the per-epoch log (every model: one row for a model fitted in one pass) and its curves
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
CURVES_PNG = "curves.png"
#: column order of metrics.csv (the order an epoch's row is built in); other keys follow
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "best")
#: the files of a run beside ``best/`` that prediction reads, sealed in the manifest
SEALED_FILES = (DATA, CALIBRATION, DENSITY)


def eval_stem(split: str) -> str:
    """The stem of ``evaluate``'s report files on ``split`` (``eval-test`` -> ``eval-test.json``, ``.md``, ...)."""
    return f"eval-{split}"


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: strict JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class RunFolder:
    """A training run folder (see the module docstring); every path and file of it is asked of this."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --- where things are ------------------------------------------------------------------

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def curves(self) -> Path:
        return self.path / CURVES_PNG

    def eval_file(self, split: str, suffix: str = ".json") -> Path:
        """One of ``evaluate``'s files on ``split`` (``.json``, ``.md``, ``-per-poi.csv``, ...)."""
        return self.path / f"{eval_stem(split)}{suffix}"

    def is_started(self) -> bool:
        """Whether training wrote the run's manifest here (the run exists, finished or not)."""
        return self.manifest_path.exists()

    def has_model(self) -> bool:
        """Whether training left a model to load (``best/``)."""
        return self.best.exists()

    def model_dir(self) -> Path:
        """The saved model of a run (``best/``), or the folder itself when it is a bare saved model folder."""
        return self.best if (self.best / MODEL_FILE).exists() else self.path

    # --- the manifest (config.json) ------------------------------------------------------

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """The run's manifest, keeping the digests recorded so far (a resumed run's ``calibration.json``)."""
        recorded = self.recorded_files()
        self._write_json(MANIFEST, {**manifest, FILES_KEY: recorded} if recorded else manifest)

    def read_manifest(self) -> dict[str, Any]:
        """``config.json`` as written by training; a folder without one is not a training run."""
        if not self.manifest_path.exists():
            raise PostlocError(f"{self.path} is not a training run (no {MANIFEST})")
        return read_small_json(self.manifest_path)

    def prepared_path(self) -> Path | None:
        """The prepared folder the run trained on, as its manifest records it (None when unreadable or absent)."""
        with contextlib.suppress(OSError, ValueError, PostlocError):
            data = read_small_json(self.manifest_path).get("data")
            return Path(data) if data else None
        return None

    def recorded_files(self) -> dict[str, str]:
        """The digests the run's manifest recorded so far (none for a new run or an older version's)."""
        if not self.manifest_path.is_file():
            return {}
        with contextlib.suppress(OSError, ValueError, PostlocError):
            files = read_small_json(self.manifest_path).get(FILES_KEY)
            if isinstance(files, dict):
                return {str(k): str(v) for k, v in files.items()}
        return {}

    def seal(self, names: Iterable[str]) -> None:
        """Record the SHA-256 of the run's files ``names`` (just written) in its manifest (:func:`record_run_files`)."""
        record_run_files(self.path, list(names))

    def verify(self) -> None:
        """Refuse a run whose sealed files differ from what its training wrote (:func:`verify_run_files`)."""
        verify_run_files(self.path)

    # --- the sealed side files -----------------------------------------------------------

    @property
    def data_path(self) -> Path:
        return self.path / DATA

    def write_data(self, info: dict[str, Any]) -> None:
        """``data.json`` (sealed by the caller's :meth:`seal`, together with the density)."""
        self._write_json(DATA, info)

    def read_data(self) -> dict[str, Any]:
        """``data.json`` (POI table, hashtag vocabulary); ``{}`` for a bare model folder or an older run."""
        return read_small_json(self.data_path) if self.data_path.is_file() else {}

    def write_density(self, grid: dict[str, Any]) -> None:
        """``density.json``, compact: thousands of [row, col, count] cells (sealed by the caller's :meth:`seal`)."""
        with atomic_open(self.density_path) as handle:
            handle.write(json.dumps(grid, separators=(",", ":")) + "\n")

    @property
    def density_path(self) -> Path:
        return self.path / DENSITY

    @property
    def calibration_path(self) -> Path:
        return self.path / CALIBRATION

    def write_calibration(self, record: dict[str, Any]) -> None:
        """``calibration.json``, sealed at once (``models.calibration.write_calibration`` checks the record)."""
        with atomic_open(self.calibration_path) as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        self.seal([CALIBRATION])

    # --- the training record -------------------------------------------------------------

    def write_run_info(self, summary: dict[str, Any]) -> None:
        """``run.json``: the summary of a finished training, or a failed one's status and reason."""
        self._write_json(RUN_INFO, summary)

    def read_run_info(self) -> dict[str, Any] | None:
        """``run.json`` as a dict; None when it is missing, unreadable or not an object."""
        with contextlib.suppress(OSError, ValueError, PostlocError):
            info = read_small_json(self.path / RUN_INFO) if (self.path / RUN_INFO).is_file() else None
            return info if isinstance(info, dict) else None
        return None

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """The per-epoch log as CSV and JSONL, rewritten whole (atomically) from the fit's history."""
        # a fixed order: rows read back from a checkpoint (JSON with sorted keys) must not reorder the file
        seen = {k for row in history for k in row}
        columns = [k for k in METRIC_COLUMNS if k in seen]
        for row in history:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        with atomic_open(self.path / METRICS_CSV) as handle:
            handle.write(buffer.getvalue())
        with atomic_open(self.path / METRICS_JSONL) as handle:
            for row in history:
                handle.write(json.dumps(json_safe(row), allow_nan=False) + "\n")

    def _write_json(self, name: str, data: Any) -> None:
        with atomic_open(self.path / name) as handle:
            handle.write(json.dumps(json_safe(data), indent=2, sort_keys=True, default=str) + "\n")


def record_run_files(run_dir: str | Path, names: list[str]) -> None:
    """Record the SHA-256 of the run's files ``names`` (just written) in its manifest, and reseal it.

    Whoever writes one of :data:`SEALED_FILES` calls this right after (through :class:`RunFolder`),
    so that the run's reader (:func:`verify_run_files`) refuses any other change to it. Digests
    recorded before for other files are kept. The manifest is replaced atomically.
    """
    run = Path(run_dir)
    path = run / MANIFEST
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    files = manifest.get(FILES_KEY)
    files = dict(files) if isinstance(files, dict) else {}
    files.update({name: file_digest(run / name) for name in names})
    manifest[FILES_KEY] = dict(sorted(files.items()))
    manifest[SEAL_KEY] = manifest_digest(manifest)
    with atomic_open(path) as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True) + "\n")


def verify_run_files(run_dir: str | Path) -> None:
    """Refuse a run whose ``data.json`` or ``calibration.json`` differs from what its training wrote.

    The digests are in the run manifest (:func:`record_run_files`). A run saved before they were
    recorded (no ``"files"`` in its manifest; or a folder without a manifest) still loads: its side
    files are read unchecked, with a warning saying so, so that runs of older versions need not
    be retrained. A recorded file that is missing, and a side file the manifest does not record,
    are refused.
    """
    run = Path(run_dir)
    present = [name for name in SEALED_FILES if (run / name).exists()]
    path = run / MANIFEST
    manifest = read_json(path) if path.is_file() else None
    if manifest is not None and not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if manifest is None or FILES_KEY not in manifest:
        if present:
            warnings.warn(
                f"{run}: {' and '.join(present)} carry no recorded SHA-256 (a run saved by an older "
                f"postloc, or without its {MANIFEST}), so edits to them are not checked; retrain "
                f"the run to seal them",
                stacklevel=3,
            )
        return
    check_seal(manifest, path)
    verify_folder(run, manifest, MANIFEST)
    unrecorded = [name for name in present if name not in manifest[FILES_KEY]]
    if unrecorded:
        raise ModelFileError(
            f"{run / unrecorded[0]}: the run's {MANIFEST} records no SHA-256 for it, so this run's "
            f"training did not write it; remove it, or retrain (or resume) the run"
        )
