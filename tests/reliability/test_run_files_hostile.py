"""Issue 29 (runs): a run folder's side files are sealed, and a diverged or failed run never blocks a retry.

Items 6 and 9 of the red-team pass: ``data.json`` and ``calibration.json`` were read unchecked (a
swapped POI table answered with another POI's name and place; ``T = 0.05`` gave confidence 1.0),
and a learning rate of ``1e30`` left a run that neither a retry nor ``--resume`` could get past.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from postloc.cli import main
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import ModelFileError, PostlocError
from postloc.inference.predictor import load
from postloc.nn.config import TrainerConfig
from postloc.training import RunConfig, apply_overrides, evaluate, train
from tiny_models import SMALL


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    config = SyntheticFeaturesConfig(n_pois=3, n_posts=40, n_users=8, image_dim=4, seed=1)
    return write_synthetic_prepared(tmp_path_factory.mktemp("hostile") / "prepared", config)


@pytest.fixture(scope="module")
def sealed_run(prepared):
    """A finished run (majority: trained in a tenth of a second), copied by each test that edits it."""
    out = prepared.parent / "run"
    train(prepared, out, RunConfig(model="majority"))
    return out


@pytest.fixture
def run(sealed_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(sealed_run, copy)
    return copy


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _swap_first_two_pois(data) -> None:
    a, b = data["pois"][0], data["pois"][1]
    for key in ("name", "lat", "lon"):
        a[key], b[key] = b[key], a[key]


# --- item 6: data.json and calibration.json are sealed ---------------------------------------


def test_an_unedited_run_loads_without_a_warning(run, recwarn):
    predictor = load(run)
    assert predictor.pois[0]["name"] and predictor.temperature > 0
    assert evaluate(run, "val")["posts"] > 0
    assert not [w for w in recwarn if "not checked" in str(w.message)]


@pytest.mark.parametrize(
    "edit",
    [
        _swap_first_two_pois,
        lambda data: data.update(hashtag_vocabulary=[]),
        lambda data: data["pois"][0].update(lat=0.0),
    ],
    ids=["swapped-pois", "empty-vocabulary", "moved-poi"],
)
def test_an_edited_data_json_is_refused_naming_it(run, edit):
    _edit_json(run / "data.json", edit)
    with pytest.raises(ModelFileError, match=r"data\.json: its SHA-256 differs .* edited or damaged"):
        load(run)


def test_an_edited_calibration_json_is_refused_by_predict_and_evaluate(run, capsys):
    _edit_json(run / "calibration.json", lambda data: data.update(temperature=0.05))
    with pytest.raises(ModelFileError, match=r"calibration\.json: its SHA-256 differs"):
        load(run)
    with pytest.raises(ModelFileError, match=r"calibration\.json"):
        evaluate(run, "val")
    assert main(["evaluate", str(run), "--split", "val"]) == 2
    err = capsys.readouterr().err
    assert "calibration.json" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["data.json", "calibration.json"])
def test_a_removed_side_file_is_refused(run, name):
    (run / name).unlink()
    with pytest.raises(ModelFileError, match=rf"{name}: missing"):
        load(run)


def test_an_edited_seal_in_config_json_is_refused(run):
    """Rewriting the recorded digest by hand (to match an edited file) breaks the manifest's own seal."""
    from postloc.io.model_files import file_digest

    _edit_json(run / "calibration.json", lambda data: data.update(temperature=0.05))
    digest = file_digest(run / "calibration.json")
    _edit_json(run / "config.json", lambda data: data["files"].update({"calibration.json": digest}))
    with pytest.raises(ModelFileError, match=r"config\.json: its content differs"):
        load(run)


def test_a_side_file_the_run_did_not_record_is_refused(run):
    _edit_json(run / "config.json", lambda data: data["files"].pop("calibration.json"))
    from postloc.io.model_files import SEAL_KEY, manifest_digest

    _edit_json(run / "config.json", lambda data: data.update({SEAL_KEY: manifest_digest(data)}))
    with pytest.raises(ModelFileError, match=r"calibration\.json: .*records no SHA-256"):
        load(run)


def test_a_run_of_an_older_version_loads_with_a_warning(run):
    """Runs saved before the seal existed record no digests: they load, and a warning says so."""
    _edit_json(run / "config.json", lambda data: [data.pop(k) for k in ("files", "sha256")])
    with pytest.warns(UserWarning, match=r"data\.json and calibration\.json .*not checked"):
        predictor = load(run)
    assert predictor.pois[0]["name"]


def test_rewriting_the_calibration_through_postloc_records_its_digest(run):
    """Whoever (re)writes calibration.json records its digest: the calibrate step of a run."""
    from postloc.training.api import write_calibration

    record = json.loads((run / "calibration.json").read_text())
    write_calibration(run, {**record, "temperature": 2.0, "reason": "refitted"})
    assert load(run).temperature == 2.0


# --- item 9: settings are checked; a diverged run stops with one line and can be retried -------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("lr", math.nan),
        ("lr", math.inf),
        ("lr", 0.0),
        ("min_lr", -1.0),
        ("min_lr", math.nan),
        ("min_delta", math.nan),
        ("grad_clip", -1.0),
        ("grad_clip", math.inf),
        ("lr_factor", math.nan),
        ("lr_patience", 0),
        ("early_stopping", -1),
        ("epochs", 0),
        ("batch_size", 0),
        ("seed", -1),
    ],
)
def test_trainer_settings_must_be_finite_and_in_range(setting, value):
    with pytest.raises(PostlocError, match=rf"trainer\.{setting} must be"):
        TrainerConfig(**{setting: value})


def test_a_nan_learning_rate_is_one_line_exit_2(prepared, tmp_path, capsys):
    with pytest.raises(PostlocError, match=r"trainer\.lr must be"):
        apply_overrides(RunConfig(), ["trainer.lr=nan"])
    out = tmp_path / "run"
    argv = ["train", "--model", "majority", "--data", str(prepared), "--out", str(out), "--set", "trainer.lr=nan"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "trainer.lr must be" in err
    assert not out.exists()


def _mrlf(**trainer) -> RunConfig:
    values = {"epochs": 2, "batch_size": 16, "progress": False, "threads": 1, "early_stopping": 0}
    return RunConfig(model="mrlf", params=dict(SMALL), trainer=TrainerConfig(**{**values, **trainer}))


def _strict_json(line: str):
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


def test_a_diverged_run_stops_with_one_line_and_a_plain_retry_works(prepared, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "mrlf", "--data", str(prepared), "--out", str(out), "--quiet", "--threads", "1"]
    argv += [x for k, v in SMALL.items() for x in ("--set", f"params.{k}={v}")] + ["--epochs", "2"]
    assert main([*argv, "--set", "trainer.lr=1e30"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diverged at epoch 1: lower the learning rate" in err
    rows = [_strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and any(row.get("val_loss") is None for row in rows), "NaN is written as null"
    assert json.loads((out / "run.json").read_text())["status"] == "diverged"

    assert main([*argv, "--set", "trainer.lr=1e30", "--resume"]) == 2, "resuming would diverge again"
    err = capsys.readouterr().err.strip()
    assert "diverged" in err and "without --resume" in err and len(err.splitlines()) == 1

    assert main(argv) == 0, "a plain retry replaces the diverged run"
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert load(out).temperature > 0


def test_a_run_that_failed_after_its_checkpoints_can_be_retried(prepared, tmp_path, monkeypatch):
    """Any failure after training began leaves the folder marked, so a plain retry is not refused."""
    import postloc.training.api as api

    def broken(model, val_df):
        raise PostlocError("calibration broke")

    out = tmp_path / "run"
    monkeypatch.setattr(api, "fit_calibration", broken)
    with pytest.raises(PostlocError, match="calibration broke"):
        train(prepared, out, _mrlf(epochs=1))
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    assert train(prepared, out, _mrlf(epochs=1)).summary["status"] == "complete"


def test_no_labelled_val_post_still_gives_a_best_model(prepared, tmp_path):
    """A validation loss that is NaN because no val post is labelled falls back to the train loss."""
    import torch
    from torch import nn

    from postloc.nn.trainer import Trainer

    class Data:
        def __init__(self, n, labelled):
            self.x = torch.randn(n, 3, generator=torch.Generator().manual_seed(0))
            self.y = torch.arange(n) % 2 if labelled else torch.full((n,), -1)

        def __len__(self):
            return len(self.y)

        def batch(self, index):
            return {"x": self.x[index], "y": self.y[index]}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.register_buffer("log_prior", torch.zeros(2))  # what the trainer reads the class count from

        def forward(self, batch):
            return self.linear(batch["x"])

    net = Net()
    trainer = Trainer(TrainerConfig(epochs=2, batch_size=4, progress=False, threads=1), run_dir=tmp_path)

    def export(folder: Path) -> None:
        (folder / "model.json").write_text("{}")

    state = trainer.fit(net, Data(8, True), Data(4, False), export, lambda folder: None)
    assert state.best_epoch >= 1 and (tmp_path / "best" / "model.json").exists()
    rows = [_strict_json(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["val_loss"] is None


def _registered_models() -> list[str]:
    from postloc.models.registry import BUILTIN

    return sorted(BUILTIN)


@pytest.mark.slow  # every registered model, twice: about 40 s here
@pytest.mark.parametrize("name", _registered_models())
def test_no_registered_model_leaves_a_run_a_plain_retry_refuses(prepared, tmp_path, name):
    """Any model, on a tiny input, at a learning rate that makes the neural ones diverge: a run that
    failed is trained by the same command with a sane rate (no --resume); the others just train."""
    from postloc.models.registry import get_model

    quick = dict(get_model(name).quick_params)
    trainer = {"epochs": 2, "batch_size": 16, "progress": False, "threads": 1}
    out = tmp_path / "run"
    try:
        first = train(prepared, out, RunConfig(name, quick, TrainerConfig(**trainer, lr=1e30)))
    except PostlocError as error:
        assert "diverged at epoch" in str(error) and len(str(error).splitlines()) == 1
        assert train(prepared, out, RunConfig(name, quick, TrainerConfig(**trainer))).summary["status"] == "complete"
    else:  # a model that takes no learning rate (scikit-learn, counts) trains as usual
        assert first.summary["status"] == "complete" and load(out).temperature > 0
