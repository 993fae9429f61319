"""Shared fixtures: small post files written the way users would write them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def write_jsonl(path: Path, records: list) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
            handle.write("\n")
    return path


@pytest.fixture
def jsonl_file(tmp_path):
    """A factory: ``jsonl_file(records)`` -> path of a JSONL file holding them."""
    counter = iter(range(1000))

    def make(records: list, name: str | None = None) -> Path:
        return write_jsonl(tmp_path / (name or f"posts{next(counter)}.jsonl"), records)

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tests share 2 cores with other work: one torch thread avoids OpenMP spinning (see vision's default_threads)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- Hypothesis profiles of the fuzz tests (tests/reliability/test_fuzz_*.py; see docs/reliability.md) -------------
# "default": few derandomized examples, so `make test` stays fast and CI sees the same cases every run.
# "long" (HYPOTHESIS_PROFILE=long, `make reliability`): many more, random, examples. No example
# database: nothing is written into the tree; a failure prints its reproduction blob instead.
import os as _os  # noqa: E402

from hypothesis import HealthCheck as _HealthCheck  # noqa: E402
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_FUZZ_HEALTH = [
    _HealthCheck.too_slow,
    _HealthCheck.data_too_large,
    _HealthCheck.function_scoped_fixture,
    _HealthCheck.large_base_example,
]
_hypothesis_settings.register_profile(
    "default",
    max_examples=20,
    deadline=10_000,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_FUZZ_HEALTH,
)
_hypothesis_settings.register_profile(
    "long",
    max_examples=200,
    deadline=30_000,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=_FUZZ_HEALTH,
)
_hypothesis_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "default"))
