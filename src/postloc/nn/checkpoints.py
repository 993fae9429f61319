"""Checkpoints as plain files: safetensors for tensors, JSON for everything else, no pickle.

A checkpoint folder is an exported model (written by the model, through
:mod:`postloc.io.model_files`) plus the trainer's part kept here: the optimizer, the RNG states
and the epoch counters, and the folder logic (list, latest, prune, recover, verify).

``torch.save`` pickles, and unpickling a downloaded checkpoint can run arbitrary code; a
safetensors file holds only named arrays. The optimizer's state (nested dicts of tensors and
numbers) is therefore flattened into ``state.<param>.<key>`` tensors plus a JSON file for the
non-tensor parts.

Every checkpoint is a folder written under a temporary name and renamed into place, so a run
killed at any moment leaves only complete checkpoints (a rename is atomic on one file system).
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from postloc.errors import ModelFileError
from postloc.io.model_files import load_tensors, read_json, save_tensors, write_json
from postloc.io.run_folder import BEST, CHECKPOINTS

OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAINER_STATE = "trainer_state.json"


# --- optimizer and RNG state <-> files -------------------------------------------------------


def verify_checkpoint(folder: str | Path) -> None:
    """Read every file of a checkpoint folder before resuming from it: a damaged one stops the resume.

    The message says which file and that deleting the folder resumes from the previous checkpoint.
    """
    folder = Path(folder)
    try:
        for name in (TRAINER_STATE, OPTIMIZER_META):
            read_json(folder / name)
        for file in sorted(folder.glob("*.json")):
            read_json(file)
        for file in [folder / OPTIMIZER_TENSORS, *sorted(folder.glob("*.safetensors"))]:
            load_tensors(file)
    except ModelFileError as error:
        raise ModelFileError(
            f"cannot resume from {folder}: {error}. Delete that folder to resume from the "
            f"previous checkpoint, or start a new run"
        ) from None


def flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors, JSON metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{param_id}.{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    meta = {
        "param_groups": [_jsonable(g) for g in state["param_groups"]],
        "scalars": scalars,
        "params": sorted({int(k.split(".")[1]) for k in tensors} | {int(k) for k in scalars}),
    }
    return tensors, meta


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, entries in meta.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": [dict(g) for g in meta["param_groups"]]}


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON lists (restored on resume, so dropout continues identically)."""
    np_state = np.random.get_state(legacy=True)  # the default, spelled out (the stubs' no-argument overload is wrong)
    assert isinstance(np_state, tuple)  # the global RandomState is MT19937: the legacy tuple
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# --- folders ---------------------------------------------------------------------------------


def checkpoint_dir(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"epoch-{epoch:04d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete epoch checkpoints, oldest first (temporary folders start with '.' and are skipped)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("epoch-") and (p / TRAINER_STATE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def recover_run(run_dir: str | Path) -> None:
    """Before resuming: put back folders a killed run had moved aside mid-swap (``best/``, checkpoints).

    :func:`~postloc.io.atomic.write_folder_atomically` renames the old folder aside, then the
    new one in; a SIGKILL between the two leaves the old one under ``.NAME.old-PID``.
    """
    from postloc.io.atomic import recover_folder

    run_dir = Path(run_dir)
    recover_folder(run_dir / BEST)
    folder = run_dir / CHECKPOINTS
    if folder.is_dir():
        for aside in folder.glob(".epoch-*.old-*"):
            recover_folder(folder / aside.name[1:].rsplit(".old-", 1)[0])


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    folder = Path(run_dir) / CHECKPOINTS
    for stale in folder.glob(".epoch-*"):  # leftovers of a run killed mid-write
        shutil.rmtree(stale, ignore_errors=True)


def write_optimizer(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    tensors, meta = flatten_optimizer(optimizer.state_dict())
    save_tensors(tensors, folder / OPTIMIZER_TENSORS)
    write_json(folder / OPTIMIZER_META, meta)


def read_optimizer(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    tensors = load_tensors(folder / OPTIMIZER_TENSORS)
    meta = read_json(folder / OPTIMIZER_META)
    try:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta))
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise ModelFileError(
            f"{folder / OPTIMIZER_META}: the optimizer state does not fit the model ({error})"
        ) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
