"""Checkpoints as plain files: safetensors for tensors, JSON for everything else, no pickle.

``torch.save`` pickles, and unpickling a downloaded checkpoint can run arbitrary code; a
safetensors file holds only named arrays. The optimizer's state (nested dicts of tensors and
numbers) is therefore flattened into ``state.<param>.<key>`` tensors plus a JSON file for the
non-tensor parts.

Every checkpoint is a folder written under a temporary name and renamed into place, so a run
killed at any moment leaves only complete checkpoints (a rename is atomic on one file system).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file


CHECKPOINTS = "checkpoints"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAINER_STATE = "trainer_state.json"


# --- state dicts <-> files -------------------------------------------------------------------

def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """safetensors needs contiguous tensors that share no memory; copies make that so."""
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


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
    meta = {"param_groups": [_jsonable(g) for g in state["param_groups"]], "scalars": scalars,
            "params": sorted({int(k.split(".")[1]) for k in tensors} | {int(k) for k in scalars})}
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
    np_state = np.random.get_state()
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

def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8")


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
    meta = json.loads((folder / OPTIMIZER_META).read_text())
    optimizer.load_state_dict(unflatten_optimizer(tensors, meta))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


