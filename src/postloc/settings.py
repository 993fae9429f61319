"""Typed settings from plain mappings (TOML, JSON, ``key=value`` overrides), with errors users can act on.

Every config dataclass of postloc (a model's hyperparameters, the trainer's settings, a run's
config) is built through :func:`make_dataclass_config`, so an unknown key or a value of the wrong
type is always one line naming the key and the valid alternatives, never a ``TypeError``.

A field that is also a command-line flag is declared with :func:`setting`: its flag name, ``--help``
text and choices live beside its default, ``postloc.cli._args.add_flags`` derives the flag from them,
and the class's ``__post_init__`` is the one place its value is checked (:func:`setting_error` names
the flag for CLI users and the field for API users).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, field, fields
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


def setting(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    help: str | None = None,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag: the default, the flag's name (default
    ``--field-name``), its ``--help`` text (an argparse format string: ``%(default)s`` is the default) and
    its choices are written once, here, so that the flag can never disagree with the Python API."""
    metadata = {"setting": True, "flag": flag, "help": help, "choices": choices, "metavar": metavar}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def setting_field(owner: Any, name: str) -> Field:
    """The :class:`dataclasses.Field` ``name`` of a settings class (or instance); KeyError when there is none."""
    for f in fields(owner):
        if f.name == name:
            return f
    raise KeyError(f"{type(owner).__name__ if not isinstance(owner, type) else owner.__name__} has no field {name!r}")


def flag_of(owner: Any, name: str) -> str | None:
    """The command-line flag of the field ``name`` (``--batch-rows``), None for a field no flag sets."""
    try:
        metadata = setting_field(owner, name).metadata
    except KeyError:
        return None
    if not metadata.get("setting"):
        return None
    return metadata.get("flag") or "--" + name.replace("_", "-")


def setting_error(owner: Any, name: str, rule: str, value: Any) -> PostlocError:
    """``--burst (Limits.burst) must be at least 1, got 0``: the flag for CLI users, the field for API users;
    the CLI prints it as its one error line (exit 2)."""
    where = f"{type(owner).__name__}.{name}"
    flag = flag_of(owner, name)
    return PostlocError(f"{flag} ({where}) {rule}, got {value!r}" if flag else f"{where} {rule}, got {value!r}")
