"""Inpainting removes the person and keeps the rest of the scene (PatchMatch, OpenCV Telea)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postloc.vision.deps import MissingDependency
from postloc.vision.inpaint import InpaintConfig, check_available, inpaint_person, thumbnail

DATA = Path(__file__).parents[1] / "support" / "photos"


def _scene_with_square() -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Horizontal stripes (a texture PatchMatch can continue) with a red 'person' block on top."""
    background = np.full((120, 160, 3), (220, 220, 200), np.uint8)
    background[::8] = (30, 90, 200)
    background[1::8] = (30, 90, 200)
    image = background.copy()
    mask = np.zeros((120, 160), bool)
    mask[40:80, 60:100] = True
    image[mask] = (255, 0, 0)
    return Image.fromarray(image), mask, background


@pytest.mark.parametrize("method", ["patchmatch", "telea"])
def test_person_region_is_filled_from_the_background(method):
    image, mask, background = _scene_with_square()
    out = np.asarray(inpaint_person(image, mask, InpaintConfig(method=method, dilate=2))).astype(int)
    assert out.shape == background.shape
    red = (out[..., 0] > 200) & (out[..., 1] < 60) & (out[..., 2] < 60)
    assert red[mask].mean() < 0.05  # the person is gone
    far = np.ones_like(mask)
    far[30:90, 50:110] = False
    assert np.abs(out[far] - background[far]).mean() < 3  # the rest is untouched


def test_inpainting_works_at_a_reduced_size_and_thumbnail_strip():
    photo = Image.open(DATA / "messi5.jpg").convert("RGB")
    mask = np.zeros((photo.height, photo.width), bool)
    mask[60:300, 150:330] = True
    out = inpaint_person(photo, mask, InpaintConfig(method="telea", work_short_side=160))
    assert min(out.size) == 160 and out.size[0] == round(548 * 160 / 342)
    strip = Image.open(io.BytesIO(thumbnail(photo, mask, out, height=80)))
    assert strip.format == "JPEG" and strip.height == 80 and strip.width > 3 * 120


def test_empty_mask_returns_the_image():
    photo = Image.open(DATA / "orange.jpg").convert("RGB")
    out = inpaint_person(photo, np.zeros((10, 10), bool), InpaintConfig(work_short_side=1000))
    assert np.array_equal(np.asarray(out), np.asarray(photo))


def test_missing_packages_give_install_commands(monkeypatch):
    monkeypatch.setitem(sys.modules, "patchmatch", None)
    with pytest.raises(MissingDependency, match="pypatchmatch==2.2.0"):
        check_available("patchmatch")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependency, match="opencv-python-headless"):
        check_available("telea")
