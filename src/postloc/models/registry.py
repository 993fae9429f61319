"""Model registry: one name -> one :class:`~postloc.models.base.Estimator` class.

Built-in models are imported on first use (``torch`` is only loaded when a neural model is
asked for), and third-party code can add its own with :func:`register`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Mapping

from postloc.errors import PostlocError

_BUILTIN = {
    "mrlf": "postloc.models.mrlf:MRLF",
    "majority": "postloc.models.majority:Majority",
    "tfidf-logreg": "postloc.models.tfidf_logreg:TfidfLogReg",
}
from postloc.models.baselines import BASELINES as _BASELINES  # noqa: E402  (issue 6 baselines)

_BUILTIN.update(_BASELINES)
_REGISTRY: dict[str, type] = {}


def register(name: str | None = None) -> Callable[[type], type]:
    """Class decorator: ``@register("mine")`` makes ``get_model("mine")`` return the class."""

    def decorate(cls: type) -> type:
        key = name or cls.name
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(f"model name {key!r} is already registered by {existing.__qualname__}")
        _REGISTRY[key] = cls
        return cls

    return decorate


def list_models() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def get_model(name: str) -> type:
    """The estimator class registered as ``name``."""
    if name not in _REGISTRY and name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        getattr(importlib.import_module(module), attr)  # importing registers it
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PostlocError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, params: Mapping[str, Any] | None = None, trainer: Any = None):
    """An unfitted estimator from a name, its params (a dict) and trainer settings."""
    cls = get_model(name)
    return cls(dict(params or {}), trainer)


def load_model(directory: str | Path):
    """Load any saved model: ``model.json`` names the class."""
    from postloc.models.base import read_manifest

    from postloc.errors import ModelFileError
    from postloc.models.base import MODEL_FILE

    manifest = read_manifest(directory)
    try:
        cls = get_model(manifest["model"])
    except PostlocError as error:
        raise ModelFileError(f"{Path(directory) / MODEL_FILE}: {error}") from None
    return cls.load(directory)
