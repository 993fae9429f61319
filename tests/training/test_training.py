"""Training runs: config, checkpoints, resume after an interruption, early stopping, CLI, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from postloc.cli import build_parser
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import PostlocError
from postloc.models import load_model
from postloc.nn import checkpoints as ck
from postloc.nn.trainer import Trainer
from postloc.training import Callback, RunConfig, TrainerConfig, apply_overrides, evaluate, load_config, train
from tiny_models import EASY_DATA, SMALL

ALLOWED_SUFFIXES = {".json", ".jsonl", ".safetensors", ".csv", ".png", ".md"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    config = SyntheticFeaturesConfig(**EASY_DATA, n_posts=240, n_users=40, seed=5)
    return write_synthetic_prepared(tmp_path_factory.mktemp("syn") / "prepared", config)


def _config(**trainer) -> RunConfig:
    values = {"epochs": 4, "batch_size": 32, "progress": False, "threads": 1, "early_stopping": 0}
    values.update(trainer)
    return RunConfig(model="mrlf", params=dict(SMALL), trainer=TrainerConfig(**values))


class Interrupt(Callback):
    """Raise at the end of an epoch, or after a batch of an epoch: a crash at a chosen moment."""

    def __init__(self, epoch: int, step: int | None = None):
        self.epoch, self.step = epoch, step

    def on_batch_end(self, epoch, step, loss):
        if self.step is not None and (epoch, step) == (self.epoch, self.step):
            raise KeyboardInterrupt("simulated interruption")

    def on_epoch_end(self, epoch, row):
        if self.step is None and epoch == self.epoch:
            raise KeyboardInterrupt("simulated interruption")


# --- config --------------------------------------------------------------------------------


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(
        'model = "mrlf"\n[trainer]\nepochs = 7\nlr = 0.002\n[params]\nfusion = "concat"\n'
        'modalities = ["text", "image"]\n'
    )
    config = load_config(path)
    assert config.trainer.epochs == 7 and config.trainer.lr == 0.002
    assert config.params == {"fusion": "concat", "modalities": ["text", "image"]}
    config = apply_overrides(
        config,
        [
            "trainer.epochs=3",
            "seed=9",
            "fusion=image-text",
            "params.filters=32",
            "model=majority",
            "trainer.monitor=val_acc",
        ],
    )
    assert config.model == "majority" and config.trainer.epochs == 3 and config.trainer.seed == 9
    assert config.trainer.monitor == "val_acc"
    assert config.params["fusion"] == "image-text" and config.params["filters"] == 32
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(PostlocError, match="unknown trainer setting"):
        apply_overrides(config, ["trainer.epoch=3"])
    with pytest.raises(PostlocError, match="expected int"):
        apply_overrides(config, ["epochs=many"])
    with pytest.raises(PostlocError, match="KEY=VALUE"):
        apply_overrides(config, ["epochs"])
    path.write_text("[trainer\n")
    with pytest.raises(PostlocError, match="not valid TOML"):
        load_config(path)


def test_optimizer_state_flattens_to_tensors_and_back():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    tensors, meta = ck.flatten_optimizer(optimizer.state_dict())
    json.dumps(meta)
    assert all(torch.is_tensor(t) for t in tensors.values())
    restored = torch.optim.RMSprop(model.parameters(), lr=0.5)
    restored.load_state_dict(ck.unflatten_optimizer(tensors, meta))
    assert restored.param_groups[0]["lr"] == 0.01
    for a, b in zip(optimizer.state.values(), restored.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_rng_state_round_trip():
    state = ck.rng_state()
    expected = (torch.rand(3), np.random.rand(2))
    ck.set_rng_state(json.loads(json.dumps(state)))
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


# --- runs ----------------------------------------------------------------------------------


def _all_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_train_writes_a_complete_run_folder(prepared, tmp_path):
    run = tmp_path / "run"
    result = train(prepared, run, _config(epochs=3, keep_checkpoints=2))
    assert result.summary["epochs_run"] == 3 and result.summary["status"] == "complete"
    assert [p.name for p in ck.list_checkpoints(run)] == ["epoch-0002", "epoch-0003"]
    assert not list((run / "checkpoints").glob(".*")), "temporary checkpoint folders left behind"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"} <= set(rows[0])
    assert (run / "metrics.csv").read_text().startswith("epoch,lr,train_loss,train_acc,val_loss,val_acc")
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    state = json.loads((ck.latest_checkpoint(run) / ck.TRAINER_STATE).read_text())
    assert state["epoch"] == 3 and len(state["rng"]["torch"]) > 0
    empty_post = pd.DataFrame({"id": ["x"], "text": [""], "hashtags": [[]]})
    assert load_model(run / "best").predict_proba(empty_post).shape == (1, 4)
    assert {p.suffix for p in _all_files(run)} <= ALLOWED_SUFFIXES  # no pickle anywhere
    with pytest.raises(PostlocError, match="already holds a training run"):
        train(prepared, run, _config())


@pytest.mark.slow  # three trainings: 13 s here under load
def test_resume_after_interruption_equals_an_uninterrupted_run(prepared, tmp_path):
    straight = train(prepared, tmp_path / "straight", _config(epochs=4)).model

    run = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(prepared, run, _config(epochs=4), callbacks=[Interrupt(epoch=2)])
    assert ck.latest_checkpoint(run).name == "epoch-0002"
    assert not (run / "run.json").exists()
    with pytest.raises(KeyboardInterrupt):  # crash again in the middle of epoch 3
        train(prepared, run, _config(epochs=4), resume=True, callbacks=[Interrupt(epoch=3, step=2)])
    assert ck.latest_checkpoint(run).name == "epoch-0002"
    result = train(prepared, run, _config(epochs=4), resume=True)

    assert result.summary["epochs_run"] == 4
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    header = (run / "metrics.csv").read_text().splitlines()[0]  # issue 17, item 11: not alphabetical after resume
    assert header == (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds")
    resumed = load_model(run / "best")
    reference = load_model(tmp_path / "straight" / "best")
    a, b = reference.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run"
    assert all(torch.equal(v, straight.net.state_dict()[k]) for k, v in a.items())


@pytest.mark.slow  # trains in a subprocess, kills it, resumes: 46 s here under load
def test_resume_after_the_process_is_killed(tmp_path):
    """SIGKILL (no clean-up code runs) while training, then ``--resume``: a complete, loadable run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    prepared = write_synthetic_prepared(
        tmp_path / "prepared",
        SyntheticFeaturesConfig(n_pois=4, n_posts=800, n_users=60, caption_words=(3, 8), image_dim=8, seed=6),
    )
    run = tmp_path / "run"
    sets = [item for k, v in SMALL.items() for item in ("--set", f"{k}={v}")]
    command = [
        sys.executable,
        "-m",
        "postloc",
        "train",
        "--model",
        "mrlf",
        "--data",
        str(prepared),
        "--out",
        str(run),
        "--epochs",
        "6",
        "--quiet",
        "--set",
        "early_stopping=0",
        "--set",
        "threads=1",
        *sets,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while ck.latest_checkpoint(run) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ck.latest_checkpoint(run) is not None, process.stderr.read().decode()
    for checkpoint in ck.list_checkpoints(run):  # whatever was on disk at the kill is complete
        assert {"model.json", "weights.safetensors", "vocab.json", "optimizer.safetensors", "trainer_state.json"} <= {
            p.name for p in checkpoint.iterdir()
        }
    done = subprocess.run(command + ["--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 6
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert load_model(run / "best").predict_proba(
        pd.DataFrame({"id": ["x"], "text": ["hi"], "hashtags": [[]]})
    ).shape == (1, 4)


def test_resume_can_extend_training_but_not_change_the_model(prepared, tmp_path):
    run = tmp_path / "run"
    train(prepared, run, _config(epochs=2))
    with pytest.raises(PostlocError, match="resume must use the same"):
        train(
            prepared,
            run,
            RunConfig(model="mrlf", params={**SMALL, "filters": 32}, trainer=_config().trainer),
            resume=True,
        )
    result = train(prepared, run, _config(epochs=3), resume=True)
    assert result.summary["epochs_run"] == 3
    with pytest.raises(PostlocError, match="nothing to resume"):
        train(prepared, tmp_path / "missing", _config(), resume=True)


class _Bias(nn.Module):
    """Logits = a learned bias: with training labels all 0 and validation labels all 1, every
    training step makes validation worse, which exercises the plateau logic deterministically."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.register_buffer("log_prior", torch.zeros(2))

    def forward(self, batch):
        return self.bias.expand(len(batch["y"]), 2)


class _Labels:
    def __init__(self, label: int, n: int = 8):
        self.y = np.full(n, label)

    def __len__(self):
        return len(self.y)

    def batch(self, index):
        return {"y": torch.from_numpy(self.y[index])}


def test_learning_rate_decays_on_plateau_and_training_stops_early():
    config = TrainerConfig(
        epochs=20, lr=0.01, lr_factor=0.8, lr_patience=2, early_stopping=5, batch_size=4, progress=False, threads=1
    )
    module = _Bias()
    state = Trainer(config).fit(module, _Labels(0), _Labels(1), export=lambda f: None, restore=lambda f: None)
    lrs = [row["lr"] for row in state.history]
    assert state.best_epoch == 1 and state.epoch == 6
    assert state.stop_reason.startswith("early stopping")
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.008, 0.008, 0.0064])
    assert torch.equal(module.bias, torch.zeros(2)) is False  # moved by training...
    assert module.bias[0] > module.bias[1]  # ...and the best (epoch 1) weights were restored at the end
    assert state.history[0]["best"] and not any(r["best"] for r in state.history[1:])


# --- CLI and evaluate ----------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def test_cli_train_and_evaluate(prepared, tmp_path, capsys):
    config = tmp_path / "cfg.toml"
    config.write_text(
        "[params]\n" + "".join(f"{k} = {v}\n" for k, v in SMALL.items()) + "[trainer]\nbatch_size = 32\nthreads = 1\n"
    )
    run = tmp_path / "run"
    assert (
        _cli(
            [
                "train",
                "--model",
                "mrlf",
                "--data",
                str(prepared),
                "--out",
                str(run),
                "--config",
                str(config),
                "--set",
                "params.fusion=concat",
                "--epochs",
                "2",
                "--seed",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["trainer"]["epochs"] == 2 and saved["config"]["trainer"]["seed"] == 3
    assert saved["config"]["params"]["fusion"] == "concat" and saved["synthetic"] is True
    assert _cli(["train", "--data", str(prepared), "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 3

    assert _cli(["evaluate", str(run), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC DATA" in out and "distances against post coordinates" in out
    report = json.loads((run / "eval-test.json").read_text())
    assert report["synthetic"] is True and report["split"] == "test" and 0 <= report["accuracy"] <= 1
    assert report["distance_reference"] == "post coordinates"
    assert {"acc@3", "acc@5", "mean_km", "median_km", "acc@1km", "macro_f1", "per_poi"} <= set(report)
    assert "SYNTHETIC DATA" in (run / "eval-test.md").read_text()
    assert (run / "eval-test-confusion.png").exists()


def test_cli_baselines_and_errors(prepared, tmp_path, capsys):
    for name in ("majority", "tfidf-logreg"):
        run = tmp_path / name
        assert _cli(["train", "--model", name, "--data", str(prepared), "--out", str(run), "--quiet"]) == 0
        assert (run / "best" / "model.json").exists() and (run / "metrics.csv").exists()
        assert _cli(["evaluate", str(run), "--split", "val"]) == 0
    assert _cli(["train", "--list-models"]) == 0
    assert "tfidf-logreg" in capsys.readouterr().out
    with pytest.raises(PostlocError, match="unknown model"):
        _cli(["train", "--model", "nope", "--data", str(prepared), "--out", str(tmp_path / "x")])
    with pytest.raises(PostlocError, match="not a prepared dataset"):
        _cli(["train", "--data", str(tmp_path), "--out", str(tmp_path / "y")])
    with pytest.raises(PostlocError, match="no trained model"):
        evaluate(tmp_path / "nothing")


def test_failed_start_leaves_nothing_and_a_plain_retry_works(prepared, tmp_path):
    """Issue 17, item 12: a train that failed before its first checkpoint blocked the retry."""
    import shutil

    no_images = tmp_path / "no-images"
    shutil.copytree(prepared, no_images)
    (no_images / "image_features.parquet").unlink()
    run = tmp_path / "run"
    with pytest.raises(PostlocError, match="needs image.*postloc images"):
        train(no_images, run, RunConfig(model="resnet50", trainer=_config().trainer))
    assert not run.exists(), "a model whose inputs are missing is refused before anything is written"

    with pytest.raises(KeyboardInterrupt):
        train(prepared, run, _config(epochs=2), callbacks=[Interrupt(epoch=1, step=1)])
    assert not run.exists(), "no checkpoint yet: nothing to resume, so nothing is left in the way"
    assert train(prepared, run, _config(epochs=1)).summary["status"] == "complete"


def test_train_refuses_foreign_folders_and_concurrent_writers(prepared, tmp_path):
    """Issue 17, items 2 and 9: only a run folder of our own is written into, by one command at a time."""
    from postloc.errors import OutputPathError
    from postloc.io.locks import folder_lock

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(OutputPathError, match="not a training run written by postloc"):
        train(prepared, mine, _config(epochs=1))
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputPathError, match="inside the input"):
        train(prepared, prepared / "run", _config(epochs=1))

    run = tmp_path / "run"
    # another command holds the run folder
    with folder_lock(run), pytest.raises(OutputPathError, match="another postloc command is writing it"):
        train(prepared, run, _config(epochs=1))
    assert not run.exists()


def test_train_without_model_trains_stack_which_calibrates_itself(prepared, tmp_path):
    """The default model is postloc's own; its out-of-fold weights stand in for a val temperature."""
    run = tmp_path / "default"
    assert _cli(["train", "--data", str(prepared), "--out", str(run), "--quiet", "--set", "params.c_grid=[1.0]"]) == 0
    manifest = json.loads((run / "best" / "model.json").read_text())
    assert manifest["model"] == "stack"
    assert [entry["kind"] for entry in manifest["learners"]] == ["words", "chars", "image"]
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["temperature"] == 1.0 and "calibrates itself" in calibration["reason"]
    assert json.loads((run / "run.json").read_text())["val_in_training"] is True
    report = evaluate(run, "test")
    assert report["accuracy"] > 0.5 and report["ece"] is not None
