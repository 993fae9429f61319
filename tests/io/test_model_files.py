"""Saved models and checkpoints: safetensors + JSON only, loading never unpickles, damage is refused.

Why: a model folder is something people download and share. Loading one must never run code
(no pickle, no ``torch.load``), and a damaged, truncated or edited file must stop with a
:class:`~postloc.errors.ModelFileError` that names the file, not load wrong numbers silently or
die with a traceback (docs: the compatibility rule in :mod:`postloc.io.model_files`).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from postloc.errors import ModelFileError, PostlocError
from postloc.io.model_files import FORMAT_VERSION, MODEL_FILE, load_tensors
from postloc.models.registry import create_model, list_models, load_model
from postloc.nn import checkpoints as ck
from postloc.nn.config import TrainerConfig

SRC = Path(__file__).resolve().parents[2] / "src" / "postloc"
TRAINER = TrainerConfig(epochs=1, batch_size=32, lr=5e-3, early_stopping=0, progress=False, seed=0, threads=1)
QUICK = {
    "mrlf": {
        "filters": 8,
        "heads": 2,
        "char_dim": 4,
        "word_dim": 4,
        "hidden": 8,
        "max_text_chars": 30,
        "max_hashtag_chars": 20,
        "max_text_words": 8,
    },
    "tagvisor": {"n_estimators": 3},
    "deepgeo": {"char_dim": 8, "hidden": 8, "attention": 8, "max_chars": 24},
    "loctwi": {"buckets": 97, "dim": 8},
    "resnet50": {"hidden": 8},
    "resnet101": {"hidden": 8},
    "densenet121": {"hidden": 8},
    "vgg16": {"hidden": 0},
    "knn-image": {"k": 3},
    "mrlf-plus": {
        "filters": 8,
        "heads": 2,
        "hidden": 8,
        "char_dim": 4,
        "word_dim": 4,
        "max_text_chars": 30,
        "max_hashtag_chars": 20,
        "modalities": ["text", "hashtags"],
    },
}
CLASSES = ["poi0", "poi1", "poi2"]


def planted(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        c = int(rng.integers(3))
        vec = (np.eye(8)[c] * 3 + rng.normal(0, 1, 8)).astype(np.float32)
        rows.append(
            {
                "id": f"p{i}",
                "text": f"word{c} nice day",
                "hashtags": [f"tag{c}", "generic"],
                "poi": f"poi{c}",
                "image_vector": vec,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Every registered model fitted for one epoch on tiny planted data and saved."""
    base = tmp_path_factory.mktemp("models")
    train = planted()
    folders = {}
    for name in list_models():
        model = create_model(name, QUICK.get(name, {}), TRAINER)
        model.fit(train, train.iloc[:12], classes=CLASSES)
        folders[name] = model.save(base / name) or base / name
    return folders


@pytest.fixture
def mrlf_copy(saved, tmp_path) -> Path:
    folder = tmp_path / "mrlf"
    shutil.copytree(saved["mrlf"], folder)
    return folder


# --- no pickle anywhere ----------------------------------------------------------------------


def test_every_model_saves_only_safetensors_and_json(saved):
    assert set(saved) == set(list_models())
    for name, folder in saved.items():
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert {p.suffix for p in files} <= {".json", ".safetensors"}, (name, files)
        for file in files:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
                continue
            raw = file.read_bytes()  # safetensors: 8-byte header length, a JSON header, raw numbers
            start, data = _safetensors_layout(file)
            header = json.loads(raw[start:data])
            assert all(
                v["dtype"] in {"F32", "F64", "I64", "I32", "U8", "BOOL", "F16", "BF16", "I8", "I16"}
                for k, v in header.items()
                if k != "__metadata__"
            ), (file, header)
            assert load_tensors(file)  # and its checksum holds


def test_loading_never_unpickles(saved, monkeypatch):
    """Runtime check: with torch.load and every pickle entry point booby-trapped, all models load and predict."""

    def trap(*_args, **_kwargs):
        raise AssertionError("a model load tried to unpickle")

    monkeypatch.setattr(torch, "load", trap)
    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "Unpickler", trap)
    test = planted(9, seed=1)
    for name, folder in saved.items():
        assert load_model(folder).predict_proba(test).shape == (9, 3), name


def test_source_never_calls_unpickling_loaders():
    """Grep-level: no pickle, joblib, dill, allow_pickle=True, and ``torch.load`` only with weights_only=True.

    The one ``torch.load`` is :mod:`postloc.vision.weights`, which reads third-party pretrained
    backbone files (torchvision's ``.pth``) with torch's restricted loader; saved postloc models
    and checkpoints never go through it (the runtime test above traps it).
    """
    pattern = re.compile(
        r"\bimport pickle\b|\bfrom pickle\b|\bjoblib\b|\bdill\b|"
        r"allow_pickle\s*=\s*True|cloudpickle|torch\.jit\.load|np\.load\(|numpy\.load\("
    )
    offenders, torch_loads = [], []
    for path in SRC.rglob("*.py"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code):
                offenders.append(f"{path.relative_to(SRC)}:{i}")
            if re.search(r"torch\.load\(", code):
                torch_loads.append((path.relative_to(SRC).as_posix(), "weights_only=True" in code))
    assert offenders == []
    assert {where for where, _ in torch_loads} == {"vision/weights.py"} and all(safe for _, safe in torch_loads)


# --- damaged or edited files -----------------------------------------------------------------


def _refused(folder: Path, names: str | tuple[str, ...]) -> str:
    with pytest.raises(ModelFileError) as caught:
        load_model(folder)
    message = str(caught.value)
    names = (names,) if isinstance(names, str) else names
    assert any(n in message for n in names), message
    assert "Traceback" not in message
    return message


def _safetensors_layout(path: Path) -> tuple[int, int]:
    """(header start, data start) of a safetensors file: 8-byte length, JSON header, data."""
    header = int.from_bytes(path.read_bytes()[:8], "little")
    return 8, 8 + header


@pytest.mark.parametrize("where", ["header", "data"])
def test_flipped_bytes_in_the_weights_are_refused(mrlf_copy, where):
    weights = mrlf_copy / "weights.safetensors"
    original = weights.read_bytes()
    start, data = _safetensors_layout(weights)
    lo, hi = (start, data) if where == "header" else (data, len(original))
    for offset in np.random.default_rng(3).integers(lo, hi, 12).tolist():
        damaged = bytearray(original)
        damaged[offset] ^= 0x5A
        weights.write_bytes(bytes(damaged))
        _refused(mrlf_copy, "weights.safetensors")
    weights.write_bytes(original)
    load_model(mrlf_copy)  # and the untouched file loads


@pytest.mark.parametrize("keep", [0, 7, 100, 0.5, -1])
def test_truncated_weights_are_refused(mrlf_copy, keep):
    weights = mrlf_copy / "weights.safetensors"
    data = weights.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    weights.write_bytes(data[:cut])
    assert "damaged or truncated" in _refused(mrlf_copy, "weights.safetensors")


def test_weights_of_another_shape_are_refused(saved, tmp_path):
    """A weights file from a differently sized model, with a valid checksum of its own."""
    folder = tmp_path / "mixed"
    shutil.copytree(saved["mrlf"], folder)
    other = create_model("mrlf", {**QUICK["mrlf"], "hidden": 12}, TRAINER).fit(planted(), classes=CLASSES)
    other.save(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "weights.safetensors", folder / "weights.safetensors")
    assert "do not fit" in _refused(folder, "weights.safetensors")


def test_weights_of_another_run_with_the_same_shape_are_refused(saved, tmp_path):
    """Each file is well formed and fits: only model.json's digests tell that they do not belong together."""
    from dataclasses import replace

    folder = tmp_path / "mixed"
    shutil.copytree(saved["mrlf"], folder)
    other = create_model("mrlf", QUICK["mrlf"], replace(TRAINER, seed=TRAINER.seed + 1)).fit(planted(), classes=CLASSES)
    other.save(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "weights.safetensors", folder / "weights.safetensors")
    assert "differs from the one recorded" in _refused(folder, "weights.safetensors")


def _unseal(folder: Path) -> None:
    """Drop the digests from model.json, as a model saved by an earlier postloc has none."""
    manifest = json.loads((folder / MODEL_FILE).read_text())
    manifest.pop("sha256", None)
    manifest.pop("files", None)
    (folder / MODEL_FILE).write_text(json.dumps(manifest))


def test_model_json_with_a_wrong_class_count_is_refused(mrlf_copy):
    manifest = json.loads((mrlf_copy / MODEL_FILE).read_text())
    manifest["classes"] = manifest["classes"] + ["poi-extra"]
    (mrlf_copy / MODEL_FILE).write_text(json.dumps(manifest))
    assert "edited" in _refused(mrlf_copy, MODEL_FILE)
    _unseal(mrlf_copy)
    _refused(mrlf_copy, "weights.safetensors")


def test_swapped_or_repeated_class_names_are_refused(mrlf_copy):
    """Issue 17, item 7: two swapped class names loaded and answered #zwinger with "Blaues Wunder"."""
    path = mrlf_copy / MODEL_FILE
    good = json.loads(path.read_text())
    swapped = dict(good)
    swapped["classes"] = [good["classes"][1], good["classes"][0], *good["classes"][2:]]
    path.write_text(json.dumps(swapped))
    assert "edited" in _refused(mrlf_copy, MODEL_FILE)
    repeated = dict(good)
    repeated["classes"] = [good["classes"][0], *good["classes"][:-1]]
    repeated.pop("sha256")
    path.write_text(json.dumps(repeated))
    assert "more than once" in _refused(mrlf_copy, MODEL_FILE)


def test_edited_vocabulary_or_config_is_refused(mrlf_copy):
    """The JSON beside the weights is covered by model.json's digests, and model.json by its own."""
    vocab = mrlf_copy / "vocab.json"
    original = vocab.read_text()
    vocab.write_text(original.replace('"', "'", 0) + " ")
    assert "edited or damaged" in _refused(mrlf_copy, "vocab.json")
    vocab.write_text(original)
    path = mrlf_copy / MODEL_FILE
    manifest = json.loads(path.read_text())
    manifest["config"]["heads"] = 0
    manifest.pop("sha256")  # even without the seal, the value itself is refused, naming the field
    path.write_text(json.dumps(manifest))
    assert "params.heads" in _refused(mrlf_copy, MODEL_FILE)
    manifest["config"]["heads"] = 4
    manifest["config"]["max_text_words"] = 10**15
    path.write_text(json.dumps(manifest))
    assert "params.max_text_words" in _refused(mrlf_copy, MODEL_FILE)


@pytest.mark.parametrize("name", ["tfidf-logreg", "tagvisor", "knn-image", "majority", "loctwi", "mrlf-plus"])
def test_other_models_refuse_an_edited_class_list_or_truncated_files(saved, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(saved[name], folder)
    manifest = json.loads((folder / MODEL_FILE).read_text())
    manifest["classes"] = manifest["classes"][:2]
    (folder / MODEL_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=re.escape(str(folder))):
        load_model(folder).predict_proba(planted(3, seed=2))
    shutil.rmtree(folder)
    shutil.copytree(saved[name], folder)
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MODEL_FILE):
        original = file.read_bytes()
        file.write_bytes(original[: len(original) // 2])
        with pytest.raises(ModelFileError, match=re.escape(file.name)):
            load_model(folder)
        file.write_bytes(original)


def test_unknown_model_name_and_broken_json(mrlf_copy):
    path = mrlf_copy / MODEL_FILE
    _unseal(mrlf_copy)  # hand-made files without digests: the name itself must still be checked
    good = path.read_text()
    path.write_text(good.replace('"model": "mrlf"', '"model": "mrlf-from-the-future"'))
    assert "unknown model" in _refused(mrlf_copy, MODEL_FILE)
    path.write_text(good[: len(good) // 2])
    assert "not valid JSON" in _refused(mrlf_copy, MODEL_FILE)
    path.write_text(good)
    (mrlf_copy / "vocab.json").write_text('{"chars": [')
    _refused(mrlf_copy, "vocab.json")


@pytest.mark.parametrize("missing", ["weights.safetensors", "vocab.json", MODEL_FILE])
def test_missing_file_is_named(mrlf_copy, missing):
    (mrlf_copy / missing).unlink()
    _refused(mrlf_copy, missing)


# --- versions --------------------------------------------------------------------------------


def test_saved_model_records_format_and_package_version(saved):
    from postloc import __version__

    manifest = json.loads((saved["mrlf"] / MODEL_FILE).read_text())
    assert manifest["format"] == FORMAT_VERSION and manifest["postloc_version"] == __version__


def test_incompatible_format_says_so(mrlf_copy):
    path = mrlf_copy / MODEL_FILE
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "format": FORMAT_VERSION + 1, "postloc_version": "9.0.0"}))
    message = _refused(mrlf_copy, MODEL_FILE)
    assert "newer postloc" in message and "9.0.0" in message and "incompatible" in message
    path.write_text(json.dumps({**manifest, "format": "mrlf-0"}))
    assert "retrain" in _refused(mrlf_copy, MODEL_FILE)


def test_current_format_without_the_field_still_loads(mrlf_copy):
    """Files of the current format written without ``format``/``postloc_version`` load (rule: missing = 1)."""
    path = mrlf_copy / MODEL_FILE
    _unseal(mrlf_copy)  # such files predate the digests too
    manifest = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("format", "postloc_version")}
    path.write_text(json.dumps(manifest))
    assert load_model(mrlf_copy).predict_proba(planted(4, seed=3)).shape == (4, 3)


def test_weights_without_checksum_still_load(mrlf_copy):
    """Older safetensors files (no checksum in the metadata) are read; safetensors checks their layout."""
    from safetensors.torch import save_file

    weights = mrlf_copy / "weights.safetensors"
    save_file(load_tensors(weights), str(weights))
    _unseal(mrlf_copy)  # such files predate the folder digests too
    load_model(mrlf_copy)


# --- resume from a damaged checkpoint --------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> tuple[Path, Path]:
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
    from postloc.training import RunConfig, train

    base = tmp_path_factory.mktemp("resume")
    prepared = write_synthetic_prepared(
        base / "prepared",
        SyntheticFeaturesConfig(n_pois=3, n_posts=120, n_users=20, caption_words=(3, 6), image_dim=8, seed=2),
    )
    config = RunConfig(
        "mrlf", dict(QUICK["mrlf"]), TrainerConfig(epochs=2, batch_size=32, progress=False, threads=1, early_stopping=0)
    )
    train(prepared, base / "run", config)
    return prepared, base / "run"


@pytest.mark.parametrize(
    "victim", ["optimizer.safetensors", "weights.safetensors", "trainer_state.json", "optimizer.json"]
)
def test_resume_from_a_tampered_checkpoint_is_refused(interrupted_run, tmp_path, victim, capsys):
    from postloc.cli import main

    prepared, original = interrupted_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    latest = ck.latest_checkpoint(run)
    data = (latest / victim).read_bytes()
    (latest / victim).write_bytes(data[: len(data) - 9])
    sets = [item for k, v in QUICK["mrlf"].items() for item in ("--set", f"{k}={v}")]
    code = main(
        [
            "train",
            "--data",
            str(prepared),
            "--out",
            str(run),
            "--epochs",
            "3",
            "--quiet",
            "--resume",
            "--set",
            "threads=1",
            "--set",
            "early_stopping=0",
            *sets,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert victim in err and "Delete that folder" in err and "Traceback" not in err
    shutil.rmtree(latest)  # the advice works: resume goes on from the previous checkpoint
    assert (
        main(
            [
                "train",
                "--data",
                str(prepared),
                "--out",
                str(run),
                "--epochs",
                "3",
                "--quiet",
                "--resume",
                "--set",
                "threads=1",
                "--set",
                "early_stopping=0",
                *sets,
            ]
        )
        == 0
    )
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 3


def test_postloc_error_family():
    assert issubclass(ModelFileError, PostlocError)
