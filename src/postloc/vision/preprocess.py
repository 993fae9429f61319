"""Per-backbone input preprocessing: resize, centre crop, normalise, in NumPy/Pillow (no torchvision).

Two orders exist in the reference implementations and they give different pixels:

* ``resize_crop`` (torchvision's ImageNet weights): shorter side to ``size / crop_fraction``
  (256 for 224), then a centred ``size`` crop; bilinear; ImageNet mean/std.
* ``crop_resize`` (TensorFlow's EfficientNet-Lite eval): a centred crop of ``crop_fraction`` of
  the shorter side, then resized to ``size``; bicubic; mean 127 and std 128 on 0..255, i.e. [-1, 1].

Pillow's antialiased resize is what torchvision's ``Resize`` calls on PIL images, so the
``resize_crop`` output equals torchvision's transform pixel for pixel. :meth:`Preprocessing.key`
enters the feature-cache key: changing any field recomputes features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite was trained on (x - 127) / 128 with x in 0..255.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def shrink(image: Image.Image, scale: float, resample: Image.Resampling) -> Image.Image:
    """``image`` scaled by ``scale`` when that makes it smaller (never enlarged), each side at least one pixel.

    The portrait filter and inpainting work on reduced copies of a photo (for speed); one rule for both."""
    if scale >= 1:
        return image
    w, h = image.size
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded RGB photo becomes the backbone's input tensor (CHW float32)."""

    size: int = 224
    crop_fraction: float = 0.875
    order: Literal["resize_crop", "crop_resize"] = "resize_crop"
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def key(self) -> str:
        """A short stable description; part of the feature-cache key."""

        def fmt(values: tuple[float, float, float]) -> str:
            return ",".join(f"{x:.4f}" for x in values)

        return (
            f"{self.order}:{self.size}:{self.crop_fraction:.4f}:{self.interpolation}:m{fmt(self.mean)}:s{fmt(self.std)}"
        )

    def geometry(self, image: Image.Image) -> Image.Image:
        """Resize + centre crop to ``size`` x ``size`` (RGB uint8 still)."""
        w, h = image.size
        filt = _FILTERS[self.interpolation]
        if self.order == "resize_crop":
            short = int(round(self.size / self.crop_fraction))
            new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
            if new != (w, h):
                image = image.resize(new, filt)
            return _center_crop(image, self.size)
        crop = int(self.crop_fraction * min(w, h))
        top, left = ((h - crop) + 1) // 2, ((w - crop) + 1) // 2
        image = image.crop((left, top, left + crop, top + crop))
        return image.resize((self.size, self.size), filt) if crop != self.size else image

    def __call__(self, image: Image.Image) -> np.ndarray:
        """``image`` (RGB) -> normalised float32 array of shape (3, size, size)."""
        array: np.ndarray = np.asarray(self.geometry(image.convert("RGB")), dtype=np.float32) / 255.0
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's ``CenterCrop`` (rounding included); pads with black when the image is smaller."""
    w, h = image.size
    if w < size or h < size:
        canvas = Image.new("RGB", (max(w, size), max(h, size)))
        canvas.paste(image, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
        image, (w, h) = canvas, canvas.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


TORCHVISION = Preprocessing()
EFFICIENTNET_LITE = Preprocessing(order="crop_resize", interpolation="bicubic", mean=LITE_MEAN, std=LITE_STD)

# Here rather than in backbones.py so that building the CLI parser does not import torch.
DEFAULT_BACKBONE = "efficientnet-lite0"
