"""MRLF's options beyond the paper (issue 13): user weights, label smoothing, geo-aware smoothing.

Defaults must train exactly as before (the paper); each option must change what it claims to.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, make_synthetic
from postloc.errors import PostlocError
from postloc.models import create_model, load_model
from postloc.models.mrlf import MRLF
from postloc.models.soft_targets import class_centres, geo_soft_targets
from postloc.models.user_weights import user_sample_weights
from postloc.nn.config import TrainerConfig
from postloc.nn.trainer import WeightedData, cross_entropy_loss
from tiny_models import SMALL

TINY = SyntheticFeaturesConfig(
    n_pois=4, n_posts=200, n_users=20, tag_signal=0.6, caption_words=(3, 6), image_dim=4, seed=5
)
OFF = {"user_weight_power": 0.0, "label_smoothing": 0.0, "geo_smoothing_km": 0.0}


@pytest.fixture(scope="module")
def tiny():
    posts = make_synthetic(TINY).posts
    return {s: posts[posts["split"] == s].reset_index(drop=True) for s in ("train", "val")}


def _trainer(**changes) -> TrainerConfig:
    return TrainerConfig(**{"epochs": 2, "batch_size": 32, "progress": False, "threads": 1, "seed": 3, **changes})


def _weights(model: MRLF) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- defaults are the paper -------------------------------------------------------------------


def test_defaults_are_off_and_train_bit_identically_to_the_plain_cross_entropy(tiny, monkeypatch):
    default = MRLF(SMALL, _trainer()).fit(tiny["train"], tiny["val"])
    assert all(getattr(default.config, k) == v for k, v in OFF.items())
    explicit = MRLF({**SMALL, **OFF}, _trainer()).fit(tiny["train"], tiny["val"])
    assert _same(_weights(default), _weights(explicit))

    # the loss before the options existed, literally: F.cross_entropy(logits, y, ignore_index=-1)
    seen: list[dict] = []

    def paper_loss(self, rows, y):
        def loss(logits, batch):
            seen.append(batch)
            return F.cross_entropy(logits, batch["y"], ignore_index=-1)

        return loss

    monkeypatch.setattr(MRLF, "_loss", paper_loss)
    paper = MRLF(SMALL, _trainer()).fit(tiny["train"], tiny["val"])
    assert seen and all("weight" not in batch for batch in seen)  # defaults add nothing to the batches
    assert _same(_weights(default), _weights(paper))


@pytest.mark.parametrize(
    "option", [{"user_weight_power": 0.5}, {"label_smoothing": 0.1}, {"label_smoothing": 0.1, "geo_smoothing_km": 1.0}]
)
def test_each_option_changes_training_and_survives_save_load(tiny, tmp_path, option):
    default = MRLF(SMALL, _trainer(epochs=1)).fit(tiny["train"], tiny["val"])
    changed = MRLF({**SMALL, **option}, _trainer(epochs=1)).fit(tiny["train"], tiny["val"])
    assert not _same(_weights(default), _weights(changed))
    changed.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.config == changed.config
    assert np.array_equal(loaded.predict_proba(tiny["val"]), changed.predict_proba(tiny["val"]))


def test_user_weights_travel_with_the_training_batches(tiny, monkeypatch):
    model = MRLF({**SMALL, "user_weight_power": 0.5}, _trainer(epochs=1))
    seen: list[torch.Tensor] = []
    original = WeightedData.batch

    def spy(self, index):
        out = original(self, index)
        seen.append(out["weight"])
        assert np.allclose(out["weight"].numpy(), self.weights[index])
        return out

    monkeypatch.setattr(WeightedData, "batch", spy)
    model.fit(tiny["train"], tiny["val"])
    expected = user_sample_weights(tiny["train"], 0.5)
    assert sum(len(w) for w in seen) == len(tiny["train"])  # one epoch, every training post once
    assert math.isclose(float(torch.cat(seen).sum()), float(expected.sum()), rel_tol=1e-5)
    assert not np.allclose(expected, 1.0)  # the fixture's users do differ in post counts


# --- the loss on hand-made batches ------------------------------------------------------------


def _batch(weight=None):
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    batch = {"y": torch.tensor([0, 2, 1, -1, 1])}
    if weight is not None:
        batch["weight"] = torch.tensor(weight, dtype=torch.float32)
    return logits, batch


def test_weighted_loss_is_the_weighted_mean_over_labelled_posts():
    logits, batch = _batch([1.0, 2.0, 0.0, 5.0, 1.0])
    per_post = F.cross_entropy(logits, batch["y"].clamp(min=0), reduction="none")
    expected = (1 * per_post[0] + 2 * per_post[1] + 1 * per_post[4]) / 4  # weight 0 and unlabelled: out
    loss = cross_entropy_loss(logits, batch)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.equal(logits.grad[2], torch.zeros(3)) and torch.equal(logits.grad[3], torch.zeros(3))

    moved, moved_batch = _batch([1.0, 2.0, 0.0, 5.0, 1.0])
    with torch.no_grad():
        moved[2] += torch.tensor([5.0, -3.0, 1.0])  # the weight-0 post's prediction changes...
    assert torch.equal(cross_entropy_loss(moved, moved_batch), loss.detach())  # ...the loss does not


def test_weights_of_one_and_no_weights_agree_and_scale_does_not_matter():
    plain_logits, plain = _batch()
    ones_logits, ones = _batch([1.0] * 5)
    scaled_logits, scaled = _batch([3.0] * 5)
    reference = F.cross_entropy(plain_logits, plain["y"], ignore_index=-1)
    assert torch.equal(cross_entropy_loss(plain_logits, plain), reference)
    assert torch.allclose(cross_entropy_loss(ones_logits, ones), reference)
    assert torch.allclose(cross_entropy_loss(scaled_logits, scaled), reference)


def test_soft_targets_reproduce_torch_label_smoothing_and_one_hot():
    logits, batch = _batch([1.0, 0.5, 2.0, 1.0, 1.0])
    k, eps = 3, 0.2
    uniform = torch.eye(k) * (1 - eps) + eps / k
    assert torch.allclose(
        cross_entropy_loss(logits, batch, soft_targets=uniform),
        cross_entropy_loss(logits, batch, label_smoothing=eps),
    )
    assert torch.allclose(
        cross_entropy_loss(logits, batch, soft_targets=torch.eye(k)), cross_entropy_loss(logits, batch)
    )
    assert not torch.allclose(cross_entropy_loss(logits, batch, label_smoothing=eps), cross_entropy_loss(logits, batch))


# --- geo soft targets -------------------------------------------------------------------------


def test_geo_soft_targets_sum_to_one_and_favour_nearer_pois():
    # four POIs on a parallel: 0 km, ~0.7 km, ~1.4 km, ~7 km east of the first
    lat = np.full(4, 51.05)
    lon = 13.70 + np.array([0.0, 0.01, 0.02, 0.1])
    targets = geo_soft_targets(lat, lon, 0.1, 0.5)
    assert np.allclose(targets.sum(axis=1), 1.0)
    assert np.allclose(np.diag(targets), 0.9)
    assert targets[0, 1] > targets[0, 2] > targets[0, 3] > 0
    assert targets[3, 2] > targets[3, 1] > targets[3, 0]
    wider = geo_soft_targets(lat, lon, 0.1, 5000.0)  # a large scale tends to uniform over the others
    assert np.allclose(wider[0, 1:], 0.1 / 3, atol=2e-3)
    assert targets[0, 1] > wider[0, 1]


def test_geo_soft_targets_without_centres_and_far_apart():
    lat = np.array([51.0, np.nan, 51.0, 10.0])
    lon = np.array([13.0, np.nan, 13.001, 100.0])
    targets = geo_soft_targets(lat, lon, 0.2, 0.5)
    assert np.allclose(targets.sum(axis=1), 1.0)
    assert targets[0, 1] == 0 and targets[2, 1] == 0  # no centre: no mass from others
    assert np.allclose(targets[1], [0.2 / 3, 0.8, 0.2 / 3, 0.2 / 3])  # no centre itself: uniform
    assert np.isfinite(targets).all() and targets[3, :3].sum() == pytest.approx(0.2)  # 9000 km: no underflow
    assert np.array_equal(geo_soft_targets(np.array([1.0]), np.array([2.0]), 0.1, 1.0), np.ones((1, 1)))


def test_class_centres_are_the_mean_position_of_each_class():
    posts = pd.DataFrame({"poi": ["a", "a", "b", "b"], "lat": [1.0, 3.0, 5.0, None], "lon": [10.0, 20.0, 7.0, 8.0]})
    lat, lon = class_centres(posts, ["b", "a", "c"])
    assert lat[:2].tolist() == [5.0, 2.0] and lon[:2].tolist() == [7.0, 15.0]
    assert np.isnan(lat[2]) and np.isnan(lon[2])
    with pytest.raises(PostlocError, match="lat/lon"):
        class_centres(posts[["poi"]], ["a"])


# --- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"user_weight_power": -0.1},
        {"user_weight_power": 2.5},
        {"user_weight_power": float("nan")},
        {"label_smoothing": -0.01},
        {"label_smoothing": 1.0},
        {"geo_smoothing_km": -1.0},
        {"geo_smoothing_km": float("inf"), "label_smoothing": 0.1},
        {"geo_smoothing_km": 0.5},  # geo smoothing without a share to spread
        {"label_smoothing": True},
    ],
)
@pytest.mark.parametrize("name", ["mrlf", "mrlf-plus"])
def test_bad_option_values_are_refused(name, bad):
    with pytest.raises(PostlocError):
        create_model(name, bad)


def test_mrlf_plus_passes_the_options_to_its_mrlf():
    model = create_model("mrlf-plus", {"user_weight_power": 0.5, "label_smoothing": 0.1, "geo_smoothing_km": 0.5})
    params = model._mrlf_params()
    assert params["user_weight_power"] == 0.5 and params["label_smoothing"] == 0.1 and params["geo_smoothing_km"] == 0.5
    assert create_model("mrlf-plus", {})._mrlf_params()["user_weight_power"] == 0.0
