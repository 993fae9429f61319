"""Argparse helpers shared by several subcommand modules.

A flag is derived from the API's settings dataclass (:func:`add_flags`: its name, type, default, choices
and ``--help`` text come from a field declared with :func:`postloc.settings.setting`), and the settings
are built back from the parsed flags with :func:`from_args`, so ``--help`` and the Python API can never
disagree and a value is checked in one place, the settings' ``__post_init__`` (its error becomes the
command's one error line, exit 2). Value parsers raise :class:`argparse.ArgumentTypeError`, which
argparse turns into its usual one-line usage error.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Literal, TypeVar

from postloc.errors import PostlocError
from postloc.settings import flag_of, setting_field

T = TypeVar("T")


def fraction(text: str) -> float:
    """A number in [0, 1] (rates, thresholds, confidences)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_name_flags(parser: Any, pois_help: str) -> None:
    """``--pois`` and ``--name-weight``: the POIs known by name that ``predict`` and ``serve`` match
    (docs/cold-start.md). ``pois_help`` says what the command does with them."""
    from postloc.inference.names import DEFAULT_NAME_WEIGHT

    parser.add_argument("--pois", type=Path, metavar="FILE", help=pois_help)
    parser.add_argument(
        "--name-weight",
        type=fraction,
        metavar="W",
        help="with --pois: the names' share of the probability at a full name match "
        f"(0..1, default {DEFAULT_NAME_WEIGHT:g})",
    )


def check_name_flags(args: argparse.Namespace) -> None:
    """``--name-weight`` alone means nothing: say so instead of ignoring it."""
    if args.name_weight is not None and args.pois is None:
        raise PostlocError("--name-weight needs --pois (the table of POI names to match)")


def add_engine_flags(parser: Any, runs: str, local: str, same: str) -> None:
    """``--engine {local,ray}`` and ``--ray-address`` in a "scaling out" group: one spelling for every
    command whose independent pieces of work (``train``'s regressions; ``crossval``'s, ``experiments``'
    and ``quickstart``'s cells) may run as Ray tasks. ``runs`` names that work, ``local`` says where it
    runs by default, ``same`` what the two engines give alike."""
    g = parser.add_argument_group("scaling out (docs/scale-stack.md)")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help=f"where {runs} run: local, {local} (default); ray, as Ray "
        f"tasks (a local Ray, or the cluster of --ray-address; needs pip install 'postloc[ray]'); {same}",
    )
    g.add_argument("--ray-address", help="--engine ray: join this cluster (default: $RAY_ADDRESS, else a local Ray)")


def cell_executor(args: argparse.Namespace, threads: int) -> Any:
    """The executor of an experiment's cells for :func:`add_engine_flags`' flags: None (one after another
    here) or a :class:`postloc.scale.ray_folds.RayFoldExecutor` of ``threads`` CPUs a cell. Ray's absence,
    or ``--ray-address`` without ``--engine ray``, is refused now, before any step runs."""
    if args.engine != "ray":
        if args.ray_address:
            raise PostlocError("--ray-address needs --engine ray")
        return None
    from postloc.scale._ray import RaySettings, require_ray
    from postloc.scale.ray_folds import RayFoldExecutor

    require_ray()
    return RayFoldExecutor(RaySettings(address=args.ray_address), cpus_per_task=threads)


def add_flags(parser: Any, cls: type, *names: str, **overrides: dict[str, Any]) -> None:
    """Add the flags of the settings fields ``names`` of ``cls`` to ``parser`` (a parser or an argument
    group), in that order: the flag's name, type, default, choices, metavar and help come from the field
    (:func:`postloc.settings.setting`), a ``bool`` field defaulting to False is a switch. ``overrides``
    maps a field name to argparse keywords that replace the derived ones (a value parser such as
    :func:`fraction`, a flag whose default is computed later)."""
    hints = typing.get_type_hints(cls)
    for name in names:
        f = setting_field(cls, name)
        flag = flag_of(cls, name)
        if flag is None:
            raise TypeError(f"{cls.__name__}.{name} is not declared with postloc.settings.setting")
        meta = f.metadata
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        kind, choices = _kind(hints[name])
        kwargs: dict[str, Any] = {"default": default, "dest": flag_dest(flag)}
        if kind is bool and default is False:
            kwargs["action"] = "store_true"
        elif kind is not None and kind is not bool:  # a switch that is on by default needs its own flag
            kwargs["type"] = kind
        allowed = meta.get("choices") or choices
        if allowed is not None:
            kwargs["choices"] = tuple(allowed)
        for key in ("metavar", "help"):
            if meta.get(key) is not None:
                kwargs[key] = meta[key]
        kwargs.update(overrides.get(name, {}))
        parser.add_argument(flag, **kwargs)


def flag_dest(flag: str) -> str:
    """The attribute of the parsed namespace that a flag fills (argparse's rule: ``--batch-rows`` -> ``batch_rows``)."""
    return flag.lstrip("-").replace("-", "_")


def from_args(cls: type[T], args: argparse.Namespace, *names: str, **values: Any) -> T:
    """``cls`` built from the parsed flags of ``names`` (see :func:`add_flags`) and the further ``values``.

    The settings check themselves; an error they raise (:class:`PostlocError`, or a ``ValueError``/
    ``TypeError`` of a class that has no flags of its own) is the command's one error line, exit 2."""
    for name in names:
        flag = flag_of(cls, name)
        values[name] = getattr(args, flag_dest(flag or name))
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise PostlocError(str(error)) from None


def _kind(annotation: Any) -> tuple[type | None, tuple[Any, ...] | None]:
    """The value parser and the choices of a field's annotation: ``int | None`` -> int, ``Literal["a", "b"]``
    -> str and ("a", "b"); None for a type argparse cannot parse alone (tuples, mappings)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    if annotation in (int, float, str, bool):
        return annotation, None
    return None, None
