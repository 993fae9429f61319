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
