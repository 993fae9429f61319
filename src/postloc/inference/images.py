"""Photos at prediction time, treated as the run's training photos were: one image path for both.

``postloc images`` turned each training photo into a vector in four steps: read the file (bounded),
decode it, apply the noise mode (measure the portrait ratio, drop portrait noise, inpaint smaller
persons), run the frozen backbone; results are kept in a content-hash cache. It recorded its
settings in ``<prepared>/image_summary.json``. :func:`featurizer_for_run` reads that record and
:class:`PhotoFeatures` repeats the same steps with the same code (:func:`postloc.vision.decode.read_bytes`,
:func:`~postloc.vision.decode.decode_image`, :func:`postloc.vision.work.treat`) for ``postloc predict``,
``explain``, ``serve`` and the Ray engine, looking vectors and portrait ratios up in the run's
cache first. A photo the model would never have seen in training (portrait noise) is not shown
to it at prediction time either.

The backbone is an injected callable (``decoded RGB image -> vector``) so tests and other
pipelines can plug in their own; without a run record, photos are used as they are.

Whether a photo is featurized at all is the model's to say (:attr:`Estimator.inputs_used`,
:func:`featurizer_for_model`): a model that reads no photo gets none, whatever featurizer is at hand.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from postloc.data.image_features import default_cache_dir, read_image_summary
from postloc.errors import PostlocError
from postloc.inference.photos import DEFAULT_MAX_PIXELS
from postloc.io.run_folder import RunFolder
from postloc.vision.decode import OK, DecodeConfig, Decoded, content_hash, decode_image, read_bytes
from postloc.vision.work import DROPPED, INPAINTED, KEPT, PROCESSING_ERROR, WorkSettings, decide

if TYPE_CHECKING:  # only for annotations: featurizing a photo does not need the model code
    from postloc.models.base import ModelInputs

#: ``decoded RGB PIL image -> feature vector`` (float32, the model's image_dim).
ImageFeaturizer = Callable[[Any], np.ndarray]

#: why a photo is not used with a model that reads none (``stack`` leaves out a photo learner that earned no weight)
NO_PHOTO_INPUT = (
    "this model reads no photo (it was trained without images, or they earned no weight); the photo is not used"
)

#: Status of a photo used although training would have treated it first (see :class:`PhotoFeatures`).
UNFILTERED = "kept_unfiltered"
USED = (KEPT, INPAINTED, UNFILTERED)


@dataclass(frozen=True)
class RunImages:
    """How the run's training photos were treated, and where their cache is (from ``image_summary.json``)."""

    settings: WorkSettings
    backbone: str
    cache: Path | None  # the content-hash cache folder of ``postloc images``, when it exists

    @property
    def filtered(self) -> bool:
        return self.settings.noise != "keep"

    def describe(self) -> str:
        if not self.filtered:
            return "photos used as they are (the run's images were not filtered)"
        text = f"portrait noise (ratio > {self.settings.portrait.threshold}) dropped"
        return text + (", smaller persons inpainted" if self.settings.noise == "inpaint" else "") + " as in training"


@dataclass
class FeaturizerInfo:
    featurizer: ImageFeaturizer | None
    reason: str  # why images are (not) used, shown to clients
    backbone: str | None = None
    images: RunImages | None = None  # the run's treatment and cache; None: photos used as they are, no cache


@dataclass
class PhotoOutcome:
    """One photo: ``status`` is kept / inpainted / kept_unfiltered (used), dropped_portrait, or a decode failure."""

    status: str
    vector: np.ndarray | None = field(default=None, repr=False)
    note: str = ""
    cached: bool = False

    @property
    def used(self) -> bool:
        return self.vector is not None


def run_images(summary: dict[str, Any], prepared: Path) -> RunImages | None:
    """The treatment ``postloc images`` recorded, or None when the record predates these fields."""
    from postloc.vision import backbone_spec
    from postloc.vision.inpaint import InpaintConfig
    from postloc.vision.portrait import PortraitConfig

    settings = summary.get("settings") or {}
    try:
        work = WorkSettings(
            noise=summary.get("noise") or "keep",
            preprocessing=backbone_spec(summary["backbone"]).preprocessing,
            portrait=PortraitConfig(**(settings.get("portrait") or {})),
            inpaint=InpaintConfig(**(summary.get("inpaint") or {})),
            decode=DecodeConfig(**(settings.get("decode") or {})),
            thumbnails=False,
        )
    except (TypeError, KeyError, ValueError):
        return None
    candidates = [Path(summary["cache"])] if summary.get("cache") else []
    candidates.append(default_cache_dir(prepared))
    cache = next((c for c in candidates if (c / "features").is_dir()), None)
    return RunImages(work, str(summary["backbone"]), cache)


def featurizer_for_model(
    run: str | Path, inputs: ModelInputs, given: FeaturizerInfo | ImageFeaturizer | None = None
) -> FeaturizerInfo:
    """How a photo becomes what the model reads: nothing when it reads no photo (``inputs``, its
    :attr:`~postloc.models.base.Estimator.inputs_used`), else ``given`` (a bare featurizer is used on
    photos as they are) or the run's own backbone (:func:`featurizer_for_run`).

    The one place ``predict``, ``explain``, ``serve`` and the Ray engine decide whether to featurize a photo.
    """
    if not inputs.image:
        return FeaturizerInfo(None, NO_PHOTO_INPUT)
    if isinstance(given, FeaturizerInfo):
        return given
    if given is not None:
        return FeaturizerInfo(given, "the given featurizer")
    return featurizer_for_run(run, inputs.image_dim)


def featurizer_for_run(run_dir: str | Path, image_dim: int) -> FeaturizerInfo:
    """The backbone featurizer the run's image features were computed with, if it can be rebuilt here."""
    if image_dim <= 0:
        return FeaturizerInfo(None, NO_PHOTO_INPUT)
    run = Path(run_dir)
    summary = None
    data = Path()
    try:
        config = RunFolder(run).read_manifest()
        data = Path(config.get("data") or "")
        summary = read_image_summary(data)
    except (OSError, ValueError, PostlocError):
        summary = None
    if not summary or not summary.get("backbone"):
        return FeaturizerInfo(
            None,
            "the run does not record which image backbone made its features "
            "(no image_summary.json in its prepared data); the photo is not used",
        )
    name = str(summary["backbone"])
    try:
        from postloc.vision import backbone_spec, get_backbone, weights_available

        spec = backbone_spec(name)
    except Exception:  # noqa: BLE001
        return FeaturizerInfo(None, f"image backbone {name!r} is unknown here; the photo is not used", name)
    if spec.dim != image_dim:
        return FeaturizerInfo(
            None,
            f"backbone {name} gives {spec.dim} features but the model expects {image_dim}; the photo is not used",
            name,
        )
    if not weights_available(name):
        return FeaturizerInfo(
            None, f"weights of image backbone {name} are not on this machine; the photo is not used", name
        )
    lock = threading.Lock()
    state: dict[str, Any] = {}

    def featurize(image) -> np.ndarray:
        with lock:  # one backbone, loaded on first use, used by one thread at a time
            if "net" not in state:
                state["net"] = get_backbone(name)
            return state["net"].embed([image])[0].astype(np.float32)

    images = run_images(summary, data)
    treatment = images.describe() if images else "the run does not record how its photos were treated"
    return FeaturizerInfo(featurize, f"features from backbone {name}; {treatment}", name, images)


class PhotoFeatures:
    """Photos (files or bytes) to vectors for one run: bounded read, the run's treatment, the backbone, the cache.

    ``store``: add newly computed vectors and portrait ratios to the run's cache (``postloc predict``
    and Ray do; the server does not, so uploads from clients cannot grow the disk). When the run's
    photos were portrait-filtered but mediapipe (or the inpainting package) is missing here, uncached
    photos are used without that step, counted as ``kept_unfiltered``, and :attr:`notes` says so once.
    """

    def __init__(
        self,
        info: FeaturizerInfo,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        *,
        store: bool = True,
        warn: Callable[[str], None] | None = None,
    ):
        self.embed = info.featurizer
        self.images = info.images
        self.notes: list[str] = []
        self._warn = warn
        self._lock = threading.Lock()
        run_settings = self.images.settings if self.images else None
        self.decode = replace(run_settings.decode if run_settings else DecodeConfig(), max_pixels=max_pixels)
        self.settings = replace(run_settings, decode=self.decode) if run_settings else None
        self.wanted = self.settings  # what training did; self.settings may be a degraded copy
        if self.settings is not None:
            self.settings = self._available(self.settings)
        self._stores = (
            _Stores(
                self.images.cache / "features" / self.images.backbone, self.images.cache / "portrait", store, self._note
            )
            if self.images and self.images.cache
            else None
        )

    def _note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            if self._warn is not None:
                self._warn(message)

    def _available(self, settings: WorkSettings) -> WorkSettings:
        """``settings`` without the steps whose package is missing here (said once)."""
        from postloc.vision.deps import MissingDependency
        from postloc.vision.inpaint import check_available
        from postloc.vision.portrait import require_mediapipe

        if settings.noise == "keep":
            return settings
        try:
            require_mediapipe()
        except MissingDependency as error:
            self._note(
                "the run's photos were portrait-filtered in training, but the filter cannot run here, so new "
                f"photos are used unfiltered (counted as {UNFILTERED}): {error}"
            )
            return replace(settings, noise="keep")
        if settings.noise == "inpaint":
            try:
                check_available(settings.inpaint.method)
            except MissingDependency as error:
                self._note(
                    "the run's photos were inpainted in training, but inpainting cannot run here, so "
                    f"photos with a person are used as they are (counted as {UNFILTERED}): {error}"
                )
                return replace(settings, noise="drop")
        return settings

    def from_path(self, path: str | Path) -> PhotoOutcome:
        """A photo file, read through the one bounded reader (regular files only, at most ``max_bytes``)."""
        data, failed = read_bytes(path, self.decode)
        if failed is not None:
            return PhotoOutcome(failed.status, note=failed.note)
        assert data is not None  # read_bytes gives either the bytes or a failure
        return self.from_bytes(data)

    def from_bytes(self, data: bytes) -> PhotoOutcome:
        """A photo's bytes; one photo at a time (the segmenter, the backbone and the cache are not thread-safe)."""
        if self.embed is None:
            raise RuntimeError("PhotoFeatures needs a featurizer")
        with self._lock:
            return self._from_bytes(data)

    def _from_bytes(self, data: bytes) -> PhotoOutcome:
        sha = content_hash(data)
        ratio = self._cached_ratio(sha)
        if not math.isnan(ratio) or self.settings is None or not self._filtered:
            decision = self._decision(ratio)
            if decision == DROPPED:
                return PhotoOutcome(DROPPED, note=f"portrait ratio {ratio:.2f}", cached=True)
            vector = self._cached_vector(sha, decision)
            if vector is not None:
                return PhotoOutcome(decision, vector, cached=True)
        decoded = decode_image(data, self.decode)
        if decoded.status != OK:
            return PhotoOutcome(decoded.status, note=decoded.note)
        return self._compute(sha, decoded, ratio)

    def _decision(self, ratio: float) -> str:
        s = self.wanted
        if self.settings is None or s is None:  # both None, or neither (see __init__)
            return KEPT
        return decide(s.noise, ratio, s.portrait, s.inpaint)

    def _compute(self, sha: str, decoded: Decoded, ratio: float) -> PhotoOutcome:
        from postloc.vision.work import treat

        image = decoded.image
        assert image is not None and self.embed is not None  # decoded (status OK); from_bytes checked the featurizer
        status = KEPT
        if self.settings is not None:
            try:
                treated = treat(image, self.settings, ratio)
            except Exception as error:  # noqa: BLE001 - a model failing on one odd photo must not stop a batch
                return PhotoOutcome(PROCESSING_ERROR, note=f"{type(error).__name__}: {str(error)[:200]}")
            if treated.ratio_computed and self._stores is not None:
                self._stores.put_ratio(self._ratio_key(sha), treated, decoded)
            if treated.status == DROPPED:
                return PhotoOutcome(DROPPED, note=f"portrait ratio {treated.ratio:.2f}")
            image, status = treated.image, treated.status
            if self._filtered and (math.isnan(treated.ratio) or self._decision(treated.ratio) != status):
                status = UNFILTERED
        vector = np.asarray(self.embed(image), dtype=np.float32).reshape(-1)
        if self._stores is not None and status != UNFILTERED:
            self._stores.put_vector(self._vector_key(sha, status), vector, decoded)
        return PhotoOutcome(status, vector)

    @property
    def _filtered(self) -> bool:
        """Whether the run's photos were portrait-filtered (``images`` is set wherever this is asked)."""
        return self.images is not None and self.images.filtered

    def _ratio_key(self, sha: str) -> str:
        from postloc.vision.pipeline import portrait_key

        assert self.wanted is not None  # only a run with a recorded treatment has a cache to key
        return portrait_key(sha, self.wanted)

    def _vector_key(self, sha: str, treatment: str) -> str:
        from postloc.vision.pipeline import feature_key

        assert self.images is not None and self.wanted is not None  # as in _ratio_key
        return feature_key(sha, _Named(self.images.backbone, self.wanted.preprocessing), self.wanted, treatment)

    def _cached_ratio(self, sha: str) -> float:
        if self._stores is None or not self._filtered:
            return math.nan
        row = self._stores.ratios.get(self._ratio_key(sha)) if self._stores.ratios is not None else None
        return math.nan if row is None else float(row["ratio"])

    def _cached_vector(self, sha: str, treatment: str) -> np.ndarray | None:
        if self._stores is None or self._stores.features is None:
            return None
        row = self._stores.features.get(self._vector_key(sha, treatment))
        return None if row is None else np.asarray(row["vector"], dtype=np.float32)

    def post_vector(self, paths: Iterable[str]) -> tuple[np.ndarray | None, list[PhotoOutcome]]:
        """Mean vector of a post's usable photos (as ``postloc images`` computes it), or None, and each outcome."""
        outcomes = [self.from_path(path) for path in paths]
        vectors = [o.vector for o in outcomes if o.vector is not None]
        return (np.mean(vectors, axis=0).astype(np.float32) if vectors else None), outcomes

    def flush(self) -> None:
        if self._stores is not None:
            self._stores.flush()

    def close(self) -> None:
        if self._stores is not None:
            self._stores.close()


@dataclass(frozen=True)
class _Named:
    """What :func:`postloc.vision.pipeline.feature_key` reads of a backbone, without loading its weights."""

    name: str
    preprocessing: Any


class _Stores:
    """The run's vector and portrait-ratio caches; a cache that cannot be opened or written is left alone, said once."""

    def __init__(self, features: Path, ratios: Path, store: bool, note: Callable[[str], None]):
        from postloc.vision.store import ShardStore

        self.store, self._note = store, note
        self.features = self.ratios = None
        try:
            self.features = ShardStore(features) if features.is_dir() or store else None
            self.ratios = ShardStore(ratios) if ratios.is_dir() or store else None
        except OSError as error:
            note(f"the run's image cache cannot be opened ({error}); photos are computed without it")
            self.store = False

    def put_ratio(self, key: str, treated, decoded: Decoded) -> None:
        ratios = self.ratios
        if self.store and ratios is not None:
            self._write(
                lambda: ratios.put(
                    key,
                    {"ratio": treated.ratio, "width": decoded.width, "height": decoded.height},
                    {"gate": treated.gate},
                )
            )

    def put_vector(self, key: str, vector: np.ndarray, decoded: Decoded) -> None:
        features = self.features
        if self.store and features is not None:
            self._write(lambda: features.put(key, {"vector": vector, "width": decoded.width, "height": decoded.height}))

    def _write(self, action: Callable[[], None]) -> None:
        """A write (a put may flush a full shard); a cache that cannot be written is no reason to stop."""
        try:
            action()
        except OSError as error:
            self._note(f"new image features could not be added to the run's cache ({error})")
            self.store = False

    def flush(self) -> None:
        for store in (self.features, self.ratios):
            if store is not None and self.store:
                self._write(store.flush)

    def close(self) -> None:
        self.flush()
        if self.store:  # rows that could not be written stay unwritten
            for store in (self.features, self.ratios):
                if store is not None:
                    store.close()


def photos_for_run(
    run: str | Path,
    predictor,
    featurizer: ImageFeaturizer | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    store: bool = True,
    warn: Callable[[str], None] | None = None,
) -> tuple[PhotoFeatures | None, FeaturizerInfo]:
    """The run's photo path (None when photos cannot be used, with the reason in the info).

    ``featurizer``: a bare ``image -> vector`` used instead of the run's backbone, on photos as they
    are (tests and other pipelines); by default the run's own backbone, treatment and cache.
    """
    info = featurizer_for_model(run, predictor.model.inputs_used, featurizer)
    if info.featurizer is None:
        return None, info
    return PhotoFeatures(info, max_pixels, store=store, warn=warn), info
