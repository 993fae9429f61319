"""``trainer.threads = auto``: picked from the free cores, saved as a number (issue 14, target 5)."""

from __future__ import annotations

import os

import pytest

from postloc.cli import build_parser
from postloc.errors import PostlocError
from postloc.nn import config as nn_config
from postloc.nn.config import TrainerConfig, free_cores
from postloc.settings import make_dataclass_config
from postloc.training import RunConfig, apply_overrides


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize(("load", "expected"), [(0.0, None), (0.2, None), (1e6, 1)])
def test_free_cores_is_cores_minus_load_at_least_one(monkeypatch, load, expected):
    monkeypatch.setattr(nn_config, "busy_cores", lambda: load)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert free_cores() == (expected or _cores())


def test_free_cores_are_shared_among_local_ranks(monkeypatch):
    monkeypatch.setattr(nn_config, "busy_cores", lambda: 0.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(_cores() * 4))
    assert free_cores() == 1


def test_busy_cores_reads_the_machine():
    assert nn_config.busy_cores() >= 0.0


def test_auto_is_the_default_and_resolves_to_a_number(monkeypatch):
    monkeypatch.setattr(nn_config, "free_cores", lambda: 3)
    assert TrainerConfig().threads == 3
    assert TrainerConfig(threads="auto").threads == 3
    assert TrainerConfig(threads="2").threads == 2
    assert TrainerConfig(threads=1).threads == 1  # an explicit number is kept as it is


def test_saved_config_holds_a_number_that_an_int_reader_loads(monkeypatch):
    monkeypatch.setattr(nn_config, "free_cores", lambda: 2)
    saved = apply_overrides(RunConfig(), ["trainer.threads=auto"]).to_dict()["trainer"]
    assert saved["threads"] == 2 and isinstance(saved["threads"], int)
    assert make_dataclass_config(TrainerConfig, saved, "trainer").threads == 2  # what resume and load do


@pytest.mark.parametrize("bad", ["many", 0, True, 1.5])
def test_bad_thread_settings_are_refused(bad):
    with pytest.raises(PostlocError, match="threads"):
        TrainerConfig(threads=bad)


def test_train_help_shows_the_threads_setting_and_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--threads N|auto" in text and "default auto" in text and "trainer.threads" in text
