"""Argparse helpers shared by several subcommand modules.

A flag's default comes from the API's config dataclass (:func:`defaults`), so ``--help`` and the
Python API can never disagree; value parsers raise :class:`argparse.ArgumentTypeError`, which
argparse turns into its usual one-line usage error.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any


def defaults(cls: type) -> dict[str, Any]:
    """Field name -> default of a config dataclass (the flags' defaults)."""
    return {f.name: f.default for f in fields(cls)}


def fraction(text: str) -> float:
    """A number in [0, 1] (rates, thresholds, confidences)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value
