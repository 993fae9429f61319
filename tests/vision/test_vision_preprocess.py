"""Preprocessing equals the reference implementations (values recorded from torchvision 0.28)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postloc.vision.preprocess import EFFICIENTNET_LITE, TORCHVISION, Preprocessing

DATA = Path(__file__).parents[1] / "support" / "photos"

# torchvision 0.28: Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet mean, std)]),
# sum, sum of squares and four values of the output (recorded once; torchvision cannot be installed here).
TORCHVISION_REFERENCE = {
    "building.jpg": (114316.077, 386325.507, [-1.96378, 1.58824, -0.79355, 2.00916]),
    "grace_hopper.jpg": (-74468.954, 286598.093, [0.9988, -0.25, -1.36871, 1.61529]),
}
PROBES = [(0, 0, 0), (1, 100, 37), (2, 223, 223), (0, 112, 112)]


@pytest.mark.parametrize("name", sorted(TORCHVISION_REFERENCE))
def test_resize_crop_matches_torchvision(name):
    total, squares, values = TORCHVISION_REFERENCE[name]
    array = TORCHVISION(Image.open(DATA / name).convert("RGB")).astype(np.float64)
    assert array.shape == (3, 224, 224) and array.dtype == np.float64
    assert array.sum() == pytest.approx(total, abs=0.5)
    assert (array**2).sum() == pytest.approx(squares, rel=1e-6)
    assert [round(float(array[c, y, x]), 5) for c, y, x in PROBES] == pytest.approx(values, abs=1e-4)


def test_efficientnet_lite_crop_then_resize_to_minus_one_one():
    image = Image.open(DATA / "building.jpg").convert("RGB")
    array = EFFICIENTNET_LITE(image)
    assert array.shape == (3, 224, 224) and array.dtype == np.float32
    assert array.min() >= -1.0 and array.max() <= 1.0 + 1e-6
    # TF's eval crop: 224/256 of the shorter side, centred, offsets rounded up
    crop = EFFICIENTNET_LITE.geometry(image)
    expected = image.crop(
        (((868 - 525) + 1) // 2, ((600 - 525) + 1) // 2, ((868 - 525) + 1) // 2 + 525, ((600 - 525) + 1) // 2 + 525)
    ).resize((224, 224), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(crop), np.asarray(expected))


def test_small_and_odd_images_still_give_the_input_size():
    for size in ((10, 300), (300, 10), (1, 1), (224, 224)):
        assert TORCHVISION(Image.new("RGB", size, "gray")).shape == (3, 224, 224)
        assert EFFICIENTNET_LITE(Image.new("RGB", size, "gray")).shape == (3, 224, 224)


def test_key_changes_with_every_field():
    keys = {
        Preprocessing().key(),
        Preprocessing(size=256).key(),
        Preprocessing(crop_fraction=1.0).key(),
        Preprocessing(order="crop_resize").key(),
        Preprocessing(interpolation="bicubic").key(),
        Preprocessing(mean=(0.5, 0.5, 0.5)).key(),
        Preprocessing(std=(0.5, 0.5, 0.5)).key(),
    }
    assert len(keys) == 7
