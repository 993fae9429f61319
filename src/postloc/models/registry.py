"""Model registry: one name -> one :class:`~postloc.models.base.Estimator` class.

A model's name is written once, on its class (``name = "mrlf"``); ``@register`` reads it.
Built-in models are found through :data:`BUILTIN`, which says in which module each name's class
lives, so that asking for ``majority`` does not import torch and importing this package imports
no model at all; a test checks that every entry's class carries the entry's name. Third-party
code adds its own models with :func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postloc.errors import ModelFileError, PostlocError

if TYPE_CHECKING:  # only for annotations: importing the registry imports no model code
    from postloc.models.base import Estimator

#: registry name -> "module:Class" of the built-in models (imported on first use)
BUILTIN = {
    "mrlf": "postloc.models.mrlf:MRLF",
    "majority": "postloc.models.majority:Majority",
    "tfidf-logreg": "postloc.models.tfidf_logreg:TfidfLogReg",
    # the baselines of the paper's Table II and strong simple references (see postloc.models.baselines)
    "tagvisor": "postloc.models.baselines.tagvisor:TagVisor",
    "deepgeo": "postloc.models.baselines.deepgeo:DeepGeo",
    "loctwi": "postloc.models.baselines.loctwi:LocTwi",
    "resnet50": "postloc.models.baselines.image_head:ResNet50Head",
    "resnet101": "postloc.models.baselines.image_head:ResNet101Head",
    "densenet121": "postloc.models.baselines.image_head:DenseNet121Head",
    "vgg16": "postloc.models.baselines.image_head:VGG16Head",
    "knn-image": "postloc.models.baselines.knn_image:KnnImage",
    "mrlf-plus": "postloc.models.baselines.mrlf_plus:MRLFPlus",  # an improved, separately named MRLF
    "stack": "postloc.models.stack:Stack",  # postloc's own: user-weighted per-modality regressions
}
_REGISTRY: dict[str, type[Estimator]] = {}


def register(target: type[Estimator] | str | None = None) -> Any:
    """Class decorator: ``@register`` makes ``get_model(cls.name)`` return the class.

    ``@register("other-name")`` (the older spelling) registers under that name instead.
    """
    if isinstance(target, type):
        return _add(target.name, target)
    return lambda cls: _add(target or cls.name, cls)


def _add(key: str, cls: type[Estimator]) -> type[Estimator]:
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls:
        raise ValueError(f"model name {key!r} is already registered by {existing.__qualname__}")
    _REGISTRY[key] = cls
    return cls


def list_models() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTRY))


def get_model(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``."""
    if name not in _REGISTRY and name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        getattr(importlib.import_module(module), attr)  # importing registers it
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PostlocError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def describe_models() -> list[dict[str, Any]]:
    """Name, the inputs it needs and whether it trains in epochs, for every model (imports them all)."""
    return [
        {"name": name, "requires": list(cls.requires), "epoch_based": bool(cls.epoch_based)}
        for name, cls in ((name, get_model(name)) for name in list_models())
    ]


def create_model(name: str, params: Mapping[str, Any] | None = None, trainer: Any = None):
    """An unfitted estimator from a name, its params (a dict) and trainer settings."""
    cls = get_model(name)
    return cls(dict(params or {}), trainer)


def load_model(directory: str | Path):
    """Load any saved model: ``model.json`` names the class."""
    from postloc.io.model_files import MODEL_FILE, read_manifest

    manifest = read_manifest(directory)
    try:
        cls = get_model(manifest["model"])
    except PostlocError as error:
        raise ModelFileError(f"{Path(directory) / MODEL_FILE}: {error}") from None
    return cls.load(directory)
