"""Typed settings from plain mappings (TOML, JSON, ``key=value`` overrides), with errors users can act on.

Every config dataclass of postloc (a model's hyperparameters, the trainer's settings, a run's
config) is built through :func:`make_dataclass_config`, so an unknown key or a value of the wrong
type is always one line naming the key and the valid alternatives, never a ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from postloc.errors import PostlocError


def make_dataclass_config(cls, values: Mapping[str, Any], section: str):
    """``cls(**values)`` with a PostlocError naming the unknown keys and their valid alternatives."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PostlocError(f"unknown {section} setting(s) {unknown}; valid: {', '.join(sorted(names))}")
    coerced = {}
    for f in fields(cls):
        if f.name in values:
            coerced[f.name] = _coerce(values[f.name], f.type, f"{section}.{f.name}")
    try:
        return cls(**coerced)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise PostlocError(f"bad {section} settings: {error}") from None


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Light type checking of config values (TOML and JSON only know a few types)."""
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    kind = kind.replace(" ", "")
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "str":
            return str(value)
        if kind.startswith("tuple[str"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if kind.startswith("tuple[float"):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise PostlocError(f"{where}: expected {kind}, got {value!r}") from None
    return value


def check_ranges(config: Any, ranges: Mapping[str, tuple[float, float]], section: str = "params") -> None:
    """Refuse a setting outside its range, naming it: a config file (or an edited ``model.json``) with
    ``heads: 0`` or ``max_text_words: 1e15`` must fail when read, not divide by zero or try to
    allocate petabytes when the first post arrives."""
    for name, (low, high) in ranges.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not low <= value <= high:
            raise PostlocError(f"{section}.{name} must be between {low:,} and {high:,}, got {value!r}")
