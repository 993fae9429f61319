"""Backbone registry: real ImageNet weights on real photos, strict loading, frozen, clear messages offline."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from postloc.errors import PostlocError
from postloc.vision import backbones, nets
from postloc.vision.backbones import (
    BackboneSpec,
    backbone_spec,
    get_backbone,
    list_backbones,
    register_backbone,
    weights_available,
)
from postloc.vision.weights import WeightsNotFound

DATA = Path(__file__).parents[1] / "support" / "photos"


def class_names() -> list[str]:
    """The 1000 ImageNet-1k names in the standard index order (first synonym of each line)."""
    text = (DATA / "imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.split(",")[0].strip() for line in text.splitlines() if line.strip()]


# sha256[:16] of the sorted "name:shape" lines of torchvision 0.28's state dicts (recorded once with
# torchvision installed next to this CPU torch with its op registrations stubbed out).
TORCHVISION_LAYOUT = {
    "vgg16": (32, "8d869fc271c12104", nets.vgg16),
    "vgg19": (38, "4b3852b2713ff33f", nets.vgg19),
    "resnet50": (320, "ce6ad2593ee187ab", nets.resnet50),
    "resnet101": (626, "e0e4b4ababa6968b", nets.resnet101),
    "densenet121": (727, "ab49849b3ca214f5", nets.densenet121),
    "mobilenet_v2": (314, "8e46697c9016e576", nets.MobileNetV2),
}
PARAMETERS = {
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """A machine without any downloaded torchvision weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("POSTLOC_WEIGHTS_DIR", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_registry_lists_paper_and_offline_backbones():
    names = list_backbones()
    assert names[:2] == ["efficientnet-lite0", "mobilenet-v2"]
    assert {"vgg19", "vgg16", "resnet50", "resnet101", "densenet121"} <= set(names)
    assert backbone_spec("vgg19").dim == 512 and "MRLF" in backbone_spec("vgg19").role
    with pytest.raises(PostlocError, match="unknown backbone 'vgg11'.*efficientnet-lite0"):
        backbone_spec("vgg11")


@pytest.mark.parametrize("arch", sorted(TORCHVISION_LAYOUT))
def test_architectures_have_torchvision_state_dict_layout(arch):
    count, digest, build = TORCHVISION_LAYOUT[arch]
    with torch.device("meta"):
        model = build()
    lines = sorted(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    assert len(lines) == count
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16] == digest
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[arch]


@pytest.mark.parametrize(
    "name,photo,expected",
    [
        ("efficientnet-lite0", "orange.jpg", "orange"),
        ("efficientnet-lite0", "squirrel_cls.jpg", "fox squirrel"),
        ("mobilenet-v2", "orange.jpg", "orange"),
        ("mobilenet-v2", "squirrel_cls.jpg", "fox squirrel"),
    ],
)
def test_offline_backbones_classify_real_photos(name, photo, expected):
    backbone = get_backbone(name)
    x = torch.from_numpy(backbone.preprocessing(Image.open(DATA / photo).convert("RGB")))[None]
    probabilities = backbone.classify(x).softmax(1)[0]
    top = int(probabilities.argmax())
    assert class_names()[top] == expected and probabilities[top] > 0.5


def test_efficientnet_lite_preprocessing_beats_the_package_example():
    """[-1, 1] inputs (TF reference) give clearly higher confidence than the README's ImageNet mean/std."""
    from postloc.vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

    backbone = get_backbone("efficientnet-lite0")
    example = Preprocessing(order="resize_crop", crop_fraction=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    photos = [Image.open(DATA / n).convert("RGB") for n in ("orange.jpg", "squirrel_cls.jpg")]
    ours = backbone.classify(torch.from_numpy(np.stack([backbone.preprocessing(p) for p in photos]))).softmax(1)
    theirs = backbone.classify(torch.from_numpy(np.stack([example(p) for p in photos]))).softmax(1)
    assert (ours.max(1).values > theirs.max(1).values + 0.2).all()


def test_backbones_are_frozen_and_pool_features():
    backbone = get_backbone("mobilenet-v2")
    backbone.train()
    assert not backbone.training and not backbone.net.training
    assert all(not p.requires_grad for p in backbone.parameters())
    features = backbone.embed([Image.open(DATA / "building.jpg"), Image.open(DATA / "home.jpg")])
    assert features.shape == (2, 1280) and features.dtype == np.float32 and (features >= 0).all()
    # a trainable head on top gets gradients, the backbone none
    head = torch.nn.Linear(1280, 3)
    x = torch.from_numpy(np.stack([backbone.preprocessing(Image.open(DATA / "home.jpg").convert("RGB"))]))
    head(backbone(x)).sum().backward()
    assert head.weight.grad is not None and all(p.grad is None for p in backbone.parameters())


def test_vgg19_without_weights_names_the_offline_alternatives(no_weights):
    assert not weights_available("vgg19")
    with pytest.raises(WeightsNotFound) as error:
        get_backbone("vgg19")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(no_weights) in message
    assert "efficientnet-lite0" in message and "mobilenet-v2" in message and "never downloads" in message


def _tiny_vgg_spec(name: str) -> BackboneSpec:
    """vgg19's spec (same loader, feature reader, preprocessing) with a 1/32-width network."""
    return replace(
        backbone_spec("vgg19"),
        name=name,
        dim=16,
        weights_file=f"{name}-0000.pth",
        build=lambda: nets.vgg.VGG(nets.vgg.CONFIGS["vgg19"], width=1 / 32, hidden=32),
    )


def test_torchvision_style_weights_load_from_torch_home(no_weights):
    register_backbone(_tiny_vgg_spec("tiny-vgg19"), replace=True)
    torch.manual_seed(0)
    reference = nets.vgg.VGG(nets.vgg.CONFIGS["vgg19"], width=1 / 32, hidden=32).eval()
    no_weights.mkdir(parents=True)
    torch.save(reference.state_dict(), no_weights / "tiny-vgg19-0000.pth")
    backbone = get_backbone("tiny-vgg19")
    assert backbone.weights_path == no_weights / "tiny-vgg19-0000.pth"
    x = torch.from_numpy(backbone.preprocessing(Image.open(DATA / "building.jpg").convert("RGB")))[None]
    with torch.no_grad():
        expected = torch.nn.functional.adaptive_avg_pool2d(reference.features(x), 1).flatten(1)
    assert torch.allclose(backbone(x), expected) and backbone(x).shape == (1, 16)


def test_explicit_weights_path_and_weights_dir(no_weights, tmp_path, monkeypatch):
    register_backbone(_tiny_vgg_spec("tiny-vgg19b"), replace=True)
    state = nets.vgg.VGG(nets.vgg.CONFIGS["vgg19"], width=1 / 32, hidden=32).state_dict()
    torch.save(state, tmp_path / "mine.pth")
    assert get_backbone("tiny-vgg19b", weights=tmp_path / "mine.pth").weights_path == tmp_path / "mine.pth"
    (tmp_path / "dir").mkdir()
    torch.save(state, tmp_path / "dir" / "tiny-vgg19b-0000.pth")
    monkeypatch.setenv("POSTLOC_WEIGHTS_DIR", str(tmp_path / "dir"))
    assert get_backbone("tiny-vgg19b").weights_path == tmp_path / "dir" / "tiny-vgg19b-0000.pth"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_wrong_or_unsafe_weight_files_fail_clearly(no_weights, tmp_path):
    register_backbone(_tiny_vgg_spec("tiny-vgg19c"), replace=True)
    torch.save(nets.vgg.VGG(nets.vgg.CONFIGS["vgg16"], width=1 / 32, hidden=32).state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(PostlocError, match="does not fit the architecture"):
        get_backbone("tiny-vgg19c", weights=tmp_path / "vgg16.pth")
    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Path("/etc")}))  # not tensors: refused
    with pytest.raises(PostlocError, match="cannot be read|not a state dict"):
        get_backbone("tiny-vgg19c", weights=tmp_path / "evil.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(PostlocError, match="cannot be read"):
        get_backbone("tiny-vgg19c", weights=tmp_path / "text.pth")


def test_densenet_legacy_key_names_are_renamed():
    state = {
        "features.denseblock1.denselayer1.norm.1.weight": torch.ones(1),
        "features.denseblock1.denselayer1.conv.2.weight": torch.ones(1),
        "classifier.bias": torch.ones(1),
    }
    renamed = nets.densenet.rename_legacy_keys(state)
    assert set(renamed) == {
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.conv2.weight",
        "classifier.bias",
    }


def test_architecture_comes_from_torchvision_only_when_it_imports():
    build = backbone_spec("resnet50").build
    with torch.device("meta"):
        model = build()
    if backbones.torchvision_available():
        assert type(model).__module__.startswith("torchvision")
    else:
        assert type(model).__module__ == "postloc.vision.nets.resnet"


def test_missing_efficientnet_package_gives_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(PostlocError, match="pip install efficientnet-lite-pytorch==0.1.0"):
        get_backbone("efficientnet-lite0")


@pytest.mark.parametrize("name", ["efficientnet-lite0", "mobilenet-v2"])
def test_folded_inference_copy_gives_the_same_features(name):
    """BatchNorm folded into the convolutions (and efficientnet's fused ReLU6 + padding): float32 rounding only."""
    folded = get_backbone(name)
    assert folded.folded is not None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.net.modules())  # the loaded net is untouched
    plain = backbones.FrozenBackbone(folded.spec, folded.net, folded.weights_path, micro_batch=4)
    photos = [Image.open(DATA / n).convert("RGB") for n in ("orange.jpg", "building.jpg", "home.jpg")]
    x = torch.from_numpy(np.stack([folded.preprocessing(p) for p in photos]))
    want, got = plain(x), folded(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.99999
    folded.micro_batch = 1  # micro-batching does not change the features
    torch.testing.assert_close(folded(x), got, rtol=1e-5, atol=1e-5)


def test_folding_that_does_not_match_the_forward_is_refused():
    """A conv/bn pair whose forward puts something in between is not folded (the check at load catches it)."""

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 3)
            self.bn1 = torch.nn.BatchNorm2d(4)
            self.bn1.running_mean.fill_(0.5)
            self.bn1.running_var.fill_(4.0)

        def forward(self, x):
            return self.bn1(torch.relu(self.conv1(x)))  # not bn(conv(x)): folding would change it

    spec = replace(backbone_spec("mobilenet-v2"), name="odd", dim=4, features=lambda net, x: net(x).mean((2, 3)))
    assert backbones.fold_for_inference(Odd().eval(), spec) is None
    assert backbones.FrozenBackbone(spec, Odd(), None, fold=True).folded is None
    assert backbones.fold_for_inference(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), spec) is None  # no BN
