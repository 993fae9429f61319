"""MRLF: masking, fusion variants, modality subsets, learning, determinism, save/load."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from postloc.data.image_features import IMAGE_COLUMN
from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, make_synthetic
from postloc.errors import PostlocError
from postloc.models import create_model, load_model
from postloc.models.mrlf import MRLF
from postloc.models.mrlf.config import FUSIONS, MODALITIES, MRLFConfig
from postloc.models.mrlf.encoding import Vocabularies, encode_posts
from postloc.models.mrlf.layers import MultiHeadAttention, masked_max
from postloc.models.mrlf.net import MRLFNet
from postloc.nn.config import TrainerConfig
from tiny_models import EASY_DATA, SMALL

EASY = SyntheticFeaturesConfig(**EASY_DATA, n_posts=360, n_users=60, seed=3)


@pytest.fixture(scope="module")
def easy():
    data = make_synthetic(EASY)
    return {s: data.posts[data.posts["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}


def _trainer(**changes) -> TrainerConfig:
    values = {"epochs": 3, "batch_size": 32, "progress": False, "threads": 1}
    values.update(changes)
    return TrainerConfig(**values)


def test_attention_with_all_padding_row_is_zero_and_has_finite_gradients():
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2)
    query = torch.randn(2, 3, 8, requires_grad=True)
    key = torch.randn(2, 4, 8, requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    out = attention(query, key, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros(3, 8))
    out.sum().backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(key.grad).all()
    assert torch.equal(key.grad[0, 2:], torch.zeros(2, 8))  # padding keys get no gradient
    pooled = masked_max(torch.randn(2, 4, 8), mask)
    assert torch.equal(pooled[1], torch.zeros(8))


def _random_batch(image_dim: int, n: int = 6) -> dict[str, torch.Tensor]:
    """A batch with every pattern of missing inputs; the last post has nothing at all."""
    g = torch.Generator().manual_seed(1)
    batch = {
        "text_chars": torch.randint(2, 20, (n, 12), generator=g),
        "tag_chars": torch.randint(2, 20, (n, 8), generator=g),
        "text_words": torch.randint(2, 10, (n, 5), generator=g),
        "tags": torch.randint(2, 10, (n, 3), generator=g),
        "image": torch.randn(n, image_dim, generator=g),
        "image_present": torch.tensor([True, False, True, False, True, False][:n]),
        "y": torch.arange(n) % 3,
    }
    batch["text_chars"][1] = 0
    batch["text_words"][1] = 0
    batch["tag_chars"][2] = 0
    batch["tags"][2] = 0
    batch["text_chars"][3, 6:] = 0  # padding in the middle of a batch
    for key in ("text_chars", "tag_chars", "text_words", "tags"):
        batch[key][n - 1] = 0
    return batch


SUBSETS = [s for r in (1, 2, 3) for s in itertools.combinations(MODALITIES, r)]


@pytest.mark.parametrize("fusion", list(FUSIONS))
@pytest.mark.parametrize("modalities", SUBSETS, ids=lambda m: "+".join(m))
def test_every_fusion_and_modality_subset_runs_forward_and_backward(fusion, modalities):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fusions needing a disabled modality fall back to concat (tested below)
        config = MRLFConfig(modalities=modalities, fusion=fusion, **SMALL)
    torch.manual_seed(0)
    net = MRLFNet(config, n_chars=20, n_words=10, n_hashtags=10, image_dim=4, n_classes=3)
    batch = _random_batch(4)
    logits = net(batch)
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()
    assert torch.equal(logits[-1], net.log_prior)  # nothing at all: the prior
    torch.nn.functional.cross_entropy(logits, batch["y"]).backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["classifier.0.weight"] is not None and grads["classifier.0.weight"].abs().sum() > 0
    for modality, prefix in (("text", "char_text."), ("hashtags", "char_tag."), ("image", "image_fc.")):
        touched = [g for n, g in grads.items() if n.startswith(prefix) and g is not None and g.abs().sum() > 0]
        assert bool(touched) == (modality in modalities), (modality, prefix)
    if config.active_fusion != "concat" and config.active_fusion != "text-tag-end":
        assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith("early."))


def test_fusion_needing_a_disabled_modality_warns_and_concatenates():
    with pytest.warns(UserWarning, match="no attention fusion"):
        config = MRLFConfig(modalities=("text", "image"), fusion="mrlf")
    assert config.active_fusion == "concat"
    assert MRLFConfig(modalities=("image", "text"), fusion="image-text").active_fusion == "image-text"
    assert MRLFConfig(modalities="hashtags,text").modalities == ("text", "hashtags")


def test_bad_config_is_a_user_error():
    with pytest.raises(PostlocError, match="unknown modalities"):
        MRLFConfig(modalities=("text", "audio"))
    with pytest.raises(PostlocError, match="unknown fusion"):
        MRLFConfig(fusion="late")
    with pytest.raises(PostlocError, match="divisible"):
        MRLFConfig(filters=10, heads=4)
    with pytest.raises(PostlocError, match="unknown params"):
        create_model("mrlf", {"filter": 3})


def test_padding_does_not_change_the_output():
    """A batch cut to its longest post equals the same posts padded to the full width."""
    config = MRLFConfig(**SMALL)
    torch.manual_seed(0)
    net = MRLFNet(config, n_chars=20, n_words=10, n_hashtags=10, image_dim=4, n_classes=3).eval()
    batch = _random_batch(4)
    wider = dict(batch)
    for key, extra in (("text_chars", 8), ("tag_chars", 4), ("text_words", 3), ("tags", 2)):
        wider[key] = torch.cat([batch[key], torch.zeros(6, extra, dtype=torch.long)], dim=1)
    with torch.inference_mode():
        assert torch.allclose(net(batch), net(wider), atol=1e-5)


def test_training_on_planted_signal_beats_chance(easy):
    model = MRLF(SMALL, _trainer(epochs=6)).fit(easy["train"], easy["val"])
    proba = model.predict_proba(easy["test"])
    assert np.allclose(proba.sum(axis=1), 1.0)
    accuracy = float((np.array(model.classes_)[proba.argmax(axis=1)] == easy["test"]["poi"].to_numpy()).mean())
    majority = easy["test"]["poi"].value_counts(normalize=True).max()
    assert accuracy > max(0.6, majority + 0.25), (accuracy, majority)
    assert model.state.history[-1]["train_loss"] < model.state.history[0]["train_loss"]


def test_missing_modalities_still_get_a_distribution(easy):
    model = MRLF(SMALL, _trainer(epochs=1)).fit(easy["train"], easy["val"])
    posts = pd.DataFrame(
        {
            "id": ["empty", "text", "tags", "image"],
            "text": ["", "zzz nothing known", "", ""],
            "hashtags": [[], [], ["neverseen"], []],
            IMAGE_COLUMN: [None, None, None, np.ones(EASY.image_dim, np.float32)],
        }
    )
    proba = model.predict_proba(posts)
    assert proba.shape == (4, EASY.n_pois)
    assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
    prior = torch.softmax(model.net.log_prior, dim=0).numpy()
    assert np.allclose(proba[0], prior, atol=1e-6)  # the empty post gets the training prior
    counts = easy["train"]["poi"].value_counts().reindex(model.classes_).to_numpy() + 1.0
    assert np.allclose(prior, counts / counts.sum(), atol=1e-6)
    assert not np.allclose(proba[3], prior)  # the image alone moves the prediction


def test_same_seed_gives_identical_weights_and_another_seed_does_not(easy):
    def weights(seed):
        model = MRLF(SMALL, _trainer(epochs=2, seed=seed)).fit(easy["train"], easy["val"])
        return model.net.state_dict()

    first, second, other = weights(7), weights(7), weights(8)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_save_load_round_trip_gives_identical_predictions(easy, tmp_path):
    model = MRLF(SMALL, _trainer(epochs=1)).fit(easy["train"], easy["val"])
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "vocab.json", "weights.safetensors"]
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, MRLF) and loaded.classes_ == model.classes_ and loaded.config == model.config
    assert np.array_equal(loaded.predict_proba(easy["test"]), model.predict_proba(easy["test"]))
    assert loaded.predict(easy["test"][:3]) == model.predict(easy["test"][:3])


def test_vocabularies_come_from_the_training_split_only(easy):
    config = MRLFConfig(**SMALL)
    vocabs = Vocabularies.build(easy["train"], config)
    only_test = set(t for tags in easy["test"]["hashtags"] for t in tags) - set(
        t for tags in easy["train"]["hashtags"] for t in tags
    )
    assert not (only_test & set(vocabs.hashtags.tokens))
    encoded = encode_posts(easy["test"], vocabs, config, EASY.image_dim, sorted(easy["train"]["poi"].unique()))
    assert len(encoded) == len(easy["test"])


@pytest.mark.parametrize("fusion", ["mrlf", "text-tag-end", "image-text"])
def test_optimised_predict_equals_the_fixed_width_reference(easy, fusion):
    """Bucketed batches, skipped absent branches and fused attention change no prediction.

    The reference is the unoptimised computation: every post padded to the config's full
    widths, all posts in one mixed batch (so no branch is skipped), the written-out attention
    (autograd on). Posts with and without captions, hashtags and images are all covered,
    including whole batches that lack an input.
    """
    model = MRLF({**SMALL, "fusion": fusion}, _trainer(epochs=2)).fit(easy["train"], easy["val"])
    base = easy["test"].iloc[:40]
    no_text, no_tags, no_image = base.copy(), base.copy(), base.copy()
    no_text["text"] = ""
    no_tags["hashtags"] = [[] for _ in range(len(base))]
    no_image[IMAGE_COLUMN] = None
    posts = pd.concat([base, no_text, no_tags, no_image], ignore_index=True)
    fast = model.predict_proba(posts)

    data = encode_posts(posts, model.vocabs, model.config, model.image_dim)
    full = {
        "text_chars": torch.from_numpy(data.text_chars).long(),
        "tag_chars": torch.from_numpy(data.tag_chars).long(),
        "text_words": torch.from_numpy(data.text_words).long(),
        "tags": torch.from_numpy(data.tags).long(),
        "image": torch.from_numpy(data.image),
        "image_present": torch.from_numpy(data.image_present),
    }
    model.net.eval()
    with torch.enable_grad():
        reference = torch.softmax(model.net(full), dim=1).detach().double().numpy()
    assert np.abs(fast - reference).max() <= 1e-5
