"""Prediction API: ``postloc.inference.predictor.load(run_dir).predict(posts, top_k=5)``; the road every post takes.

One road from a post to its answer, taken by ``postloc predict`` (:mod:`postloc.inference.batch`), the
Ray engine, the server, ``explain`` and the quickstart::

    any source (a reader's Post, the API's JSON or form, a dict, a DataFrame)
      -> Predictor.records        validated, normalised PostRecords (once; records pass on untouched)
      -> Predictor.frame          the DataFrame the model reads
      -> Predictor.probabilities  the model (neighbour rule, batches), the run's temperature, the name blend
      -> Predictor.answer(s)      ranked candidates and the min-confidence decision

Nothing else ranks candidates or decides (tests/test_one_road.py checks it).

Posts arrive raw (exchange-format dicts, :class:`postloc.data.schema.Post` objects, or a
DataFrame) and are normalised exactly as ``postloc prepare`` normalises training posts: NFKC
text, hashtags taken from the caption when the post lists none, lowercased and deduplicated,
then restricted to the prepared hashtag vocabulary (rare tags were removed from training
posts, so they must not reach the model at prediction time either).

An image enters as a precomputed feature vector (``image_vector`` key of a dict, of
``Post.extra``, or a DataFrame column; :mod:`postloc.inference.images` computes it from a photo).
It must be as long as the model expects (:attr:`~postloc.models.base.Estimator.inputs_used`); a
model that reads no photo never gets one, so nothing (an explanation, a count) reports it as used.

Probabilities are calibrated: the run's temperature (``RUN/calibration.json``, fitted on the val
split when the run was trained; ``T = 1`` for older runs) is applied to the model's output, so
``probability`` means what it says. :meth:`Predictor.answers` gives per post the top POI with its
calibrated ``confidence``; below ``min_confidence`` the answer abstains (``poi`` is None, with a
``reason``) and still lists the ranked candidates.

Cold start (:meth:`Predictor.use_names`, off unless asked for): a gazetteer of POIs known by name
extends the classes past the trained ones, and a post that writes a POI's name gets the name's
probability blended in (:mod:`postloc.inference.names`); every candidate then says its ``source``.
Without it, nothing here changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.gazetteer import Gazetteer
from postloc.data.image_features import IMAGE_COLUMN
from postloc.data.schema import MODEL_COLUMNS, Post, is_missing
from postloc.errors import BadInputError, PostlocError
from postloc.inference.names import DEFAULT_NAME_WEIGHT, Blend, NameBlender
from postloc.io.run_folder import RunFolder, verify_run_files
from postloc.metrics import top_k_indices
from postloc.models.calibration import apply_temperature, read_calibration
from postloc.text.hashtags import post_hashtags
from postloc.text.normalize import normalize_text

#: the columns of the rows a model reads
FRAME_COLUMNS = list(MODEL_COLUMNS)
#: a row's hashtags before the vocabulary cut: what name matching reads (names are rarely in the vocabulary)
ALL_HASHTAGS = "all_hashtags"


class PostRecord(dict):
    """One post validated and normalised once (:meth:`Predictor.records`): the form a post has on the road.

    Its keys: ``id``, ``text`` (normalised), ``hashtags`` (cut to the training vocabulary), ``image_vector``
    (checked; None without one, or for a model that reads no photo), ``user``, ``created``; with names in use
    also :data:`ALL_HASHTAGS`. A dict, so that occlusion variants are the record with a part changed; its own
    type, so that :meth:`Predictor.records` knows it needs no second validation.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Probabilities:
    """Calibrated probabilities of a batch of records, ``[n_posts, n_classes]`` in :attr:`Predictor.classes`
    order (:meth:`Predictor.probabilities`); with names in use, the blend that says where each came from."""

    matrix: np.ndarray
    blend: Blend | None = None

    def __len__(self) -> int:
        return len(self.matrix)

    def __getitem__(self, rows: slice) -> Probabilities:
        """The probabilities of some of the posts (the server's micro-batcher hands each request its slice)."""
        return Probabilities(self.matrix[rows], None if self.blend is None else self.blend.rows(rows))

    def source(self, post: int) -> Callable[[int], str] | None:
        """Class index -> where post ``post``'s probability of it came from; None without names."""
        blend = self.blend
        return None if blend is None else (lambda cls: blend.source(post, cls))


class Predictor:
    """A loaded model plus the POI table and hashtag vocabulary of the data it was trained on."""

    def __init__(
        self,
        model: Any,
        pois: Sequence[Mapping[str, Any]] | None = None,
        hashtag_vocabulary: Iterable[str] | None = None,
        temperature: float = 1.0,
    ):
        self.model = model
        table = {str(p["poi"]): p for p in (pois or [])}
        self.pois = [table.get(c, {"poi": c, "name": "", "lat": None, "lon": None}) for c in model.classes_]
        self.hashtag_vocabulary = None if hashtag_vocabulary is None else set(hashtag_vocabulary)
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise PostlocError(f"temperature must be a positive number, got {temperature!r}")
        self.temperature = temperature
        self.names: NameBlender | None = None

    @property
    def classes(self) -> list[str]:
        """The POIs a prediction ranks: the model's, then those known only by name (:meth:`use_names`)."""
        return [str(p["poi"]) for p in self.pois] if self.names is not None else list(self.model.classes_)

    def use_names(self, gazetteer: Gazetteer, weight: float = DEFAULT_NAME_WEIGHT) -> None:
        """Blend name matches against ``gazetteer`` (and the run's own POI names) into every prediction.

        POIs of the gazetteer that the run does not know (by id, or by the same folded name) become
        classes of their own, predicted from names only. ``weight`` (0..1) is the names' share at a
        full name match; a post without name evidence keeps the model's probabilities exactly.
        """
        n_model = len(self.model.classes_)
        self.names = NameBlender(self.pois[:n_model], gazetteer, weight)
        self.pois = [*self.pois[:n_model], *self.names.extra]

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        """The model's probabilities with the run's temperature applied (unchanged, renormalised, at ``T = 1``)."""
        proba = np.asarray(proba, dtype=float)
        return proba if self.temperature == 1.0 else apply_temperature(proba, self.temperature)

    # --- the road: posts -> records -> frame -> probabilities -> answers ---------------------------------

    def records(self, posts: Any) -> list[PostRecord]:
        """Any source of posts as validated, normalised records: the one form a post has on the road.

        ``posts``: a :class:`~postloc.data.schema.Post` (what the readers yield), an exchange-format dict
        (the API's JSON, a form), a DataFrame, or a list of them; a :class:`PostRecord` passes untouched, so
        a post is validated once. Text is normalised as ``prepare`` normalises training posts, hashtags
        taken from the caption when none are given and cut to the training vocabulary, the image vector
        checked against the model (:meth:`_image_vector`).
        """
        items: list[Any]
        if isinstance(posts, pd.DataFrame):
            items = posts.to_dict(orient="records")
        elif isinstance(posts, (Mapping, Post)):
            items = [posts]
        else:
            items = list(posts)
        return [post if isinstance(post, PostRecord) else self._record(post, i) for i, post in enumerate(items)]

    def frame(self, posts: Any) -> pd.DataFrame:
        """Posts (any source; records pass untouched) as the DataFrame the models read (:data:`FRAME_COLUMNS`).

        Object columns: pandas' inferred string dtype costs about half of this call's time on a one-post
        frame, and the models read the values as Python objects.
        """
        return pd.DataFrame(self.records(posts), columns=FRAME_COLUMNS, dtype=object)

    def probabilities(self, posts: Any, batch_size: int | None = 256) -> Probabilities:
        """The one way to probabilities: the records' frame through the model (the neighbour rule and batches of
        ``batch_size``; None: one call), the run's temperature, and with names in use the blend.

        Every route takes it: ``postloc predict`` and Ray (:meth:`answers`), the server's micro-batches and
        ``explain`` (occlusion variants are records too). ``posts``: any source (records pass untouched). A
        record's names are read from its caption and :data:`ALL_HASHTAGS` (its ``hashtags`` when it has none:
        those were cut to the training vocabulary, which rarely holds a new POI's name).
        """
        records = self.records(posts)
        proba = self.calibrate(self._model_proba(self.frame(records), batch_size))
        if self.names is None:
            return Probabilities(proba)
        named = [(str(r.get("text") or ""), list(r.get(ALL_HASHTAGS, r.get("hashtags")) or [])) for r in records]
        blend = self.names.blend(proba, named)
        return Probabilities(blend.proba, blend)

    def answer(
        self, probabilities: Probabilities, post: int, top_k: int, min_confidence: float | None = None
    ) -> dict[str, Any]:
        """Post ``post``'s answer from :meth:`probabilities`: its ranked candidates and the decision (the only
        place that ranks and decides; :meth:`answers` and the server's answers both come from here).

        With names in use, the answer and each candidate say where their probability came from (``source``).
        """
        source = probabilities.source(post)
        candidates = self._ranked(probabilities.matrix[post], top_k, source)
        confidence = float(candidates[0]["probability"]) if candidates else 0.0
        decision = _decide(candidates, confidence, min_confidence)
        if source is not None:
            decision["source"] = candidates[0]["source"] if candidates else None
        return decision

    def answers(
        self, posts: Any, top_k: int = 5, batch_size: int = 256, min_confidence: float | None = None
    ) -> list[dict[str, Any]]:
        """Per post ``{poi, confidence, reason, predictions}``: the top POI, its calibrated probability, and
        the ``top_k`` ranked candidates ``{poi, name, probability, lat, lon}``, most probable first.

        ``posts``: any source :meth:`records` takes (records it made pass through untouched). With
        ``min_confidence`` (0..1), a post whose confidence is below it gets ``poi: None`` and a ``reason``
        (the candidates are kept, for transparency); otherwise ``reason`` is None.
        """
        threshold = check_min_confidence(min_confidence)
        probabilities = self.probabilities(posts, batch_size)
        return [self.answer(probabilities, n, top_k, threshold) for n in range(len(probabilities))]

    def predict(self, posts: Any, top_k: int = 5, batch_size: int = 256) -> list[list[dict[str, Any]]]:
        """Per post, the ``top_k`` candidates of :meth:`answers` (``{poi, name, probability, lat, lon}``), without
        the decision: the README's first call."""
        return [answer["predictions"] for answer in self.answers(posts, top_k=top_k, batch_size=batch_size)]

    def predict_proba(self, posts: Any, batch_size: int = 256, calibrated: bool = True) -> np.ndarray:
        """``[n_posts, n_classes]`` probabilities (columns in :attr:`classes` order) of any source of posts.

        Calibrated with the run's temperature unless ``calibrated=False`` (the model's own output,
        over the model's classes only: names are blended into calibrated probabilities only).
        """
        if not calibrated:
            return self._model_proba(self.frame(posts), batch_size)
        return self.probabilities(posts, batch_size).matrix

    def _ranked(self, row: np.ndarray, top_k: int, source: Callable[[int], str] | None) -> list[dict[str, Any]]:
        """One post's ``top_k`` candidates from its (calibrated) probability row.

        With ``source`` (class index -> ``model``/``names``/``model+names``; set when names are in use),
        each candidate carries it, and POIs known by name only are left out where they got nothing.
        """
        top = top_k_indices(np.asarray(row)[None, :], max(1, top_k))[0]
        n_model = len(self.model.classes_)
        ranked = []
        for i in top:
            if source is not None and i >= n_model and row[i] <= 0:
                continue  # a name-only POI the post does not name: no candidate at all
            candidate = {
                "poi": self.pois[i]["poi"],
                "name": self.pois[i].get("name") or "",
                "probability": float(row[i]),
                "lat": self.pois[i].get("lat"),
                "lon": self.pois[i].get("lon"),
            }
            if source is not None:
                candidate["source"] = source(int(i))
            ranked.append(candidate)
        return ranked

    def _model_proba(self, frame: pd.DataFrame, batch_size: int | None) -> np.ndarray:
        import torch

        size = max(1, len(frame)) if batch_size is None else batch_size  # None: the whole frame in one call
        chunks = []
        with torch.inference_mode():
            # one batch (a single post): no slice to copy; a model that reads a post's neighbours
            # (stack's same-user context) sees the whole frame, so no user's posts are cut apart
            if 0 < len(frame) <= size or self.model.reads_neighbours:
                return np.asarray(self.model.predict_proba(frame))
            for start in range(0, len(frame), size):
                chunks.append(self.model.predict_proba(frame.iloc[start : start + size].reset_index(drop=True)))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.model.classes_)))

    def _record(self, post: Any, position: int) -> PostRecord:
        if isinstance(post, Post):
            text, tags, vector, post_id = post.text, post.hashtags, post.extra.get(IMAGE_COLUMN), post.id
            user, created = post.user, post.created
        elif isinstance(post, Mapping):
            record = dict(post)
            record.setdefault("id", str(position))
            if record.get("id") is None:
                record["id"] = str(position)
            vector = record.pop(IMAGE_COLUMN, None)
            fields = {k: record[k] for k in ("id", "text", "hashtags", "user", "created") if k in record}
            if not is_missing(vector):
                fields[IMAGE_COLUMN] = vector  # validated with the post: finite numbers, flat
            if _is_paths(record.get("image")):  # image files are not read yet; kept for validation only
                fields["image"] = record["image"]
            parsed = Post.from_record(fields, source="<predict>", line=position + 1)
            text, tags, post_id, vector = parsed.text, parsed.hashtags, parsed.id, parsed.extra.get(IMAGE_COLUMN)
            user, created = parsed.user, parsed.created
        else:
            raise PostlocError(
                f"post {position + 1}: expected a dict, a Post or a DataFrame row, got {type(post).__name__}"
            )
        text = normalize_text(text or "")
        given = tags
        tags = post_hashtags(given, text, self.hashtag_vocabulary)
        record = PostRecord(
            {
                "id": str(post_id),
                "text": text,
                "hashtags": tags,
                IMAGE_COLUMN: self._image_vector(vector, post_id),
                "user": user,
                "created": created,
            }
        )
        if self.names is not None:
            record[ALL_HASHTAGS] = post_hashtags(given, text)
        return record

    def _image_vector(self, vector: Any, post_id: Any) -> np.ndarray | None:
        """A post's image features as the model reads them: checked against the length it expects, or None
        when there are none or the model reads no photo (:attr:`~postloc.models.base.Estimator.inputs_used`)."""
        if is_missing(vector):
            return None
        vector = np.asarray(vector, dtype=np.float32)
        inputs = self.model.inputs_used
        expected = inputs.image_dim
        if vector.ndim != 1 or not np.isfinite(vector).all() or (expected and vector.shape[0] != expected):
            raise BadInputError(
                f"post {post_id!r}",
                None,
                IMAGE_COLUMN,
                f"must be {expected or 'a list of'} finite numbers (the model's image "
                f"features), got shape {vector.shape}",
            )
        return vector if inputs.image else None


def load(
    run_dir: str | Path, names: Gazetteer | str | Path | None = None, name_weight: float = DEFAULT_NAME_WEIGHT
) -> Predictor:
    """A predictor from a training run folder (uses ``best/``) or from a saved model folder.

    ``names``: a gazetteer, or a CSV/GeoJSON file of one (:func:`postloc.data.gazetteer.read_gazetteer`),
    for POIs known by name (:meth:`Predictor.use_names`); off by default.
    """
    from postloc.models.base import MODEL_FILE
    from postloc.models.registry import load_model

    run = Path(run_dir)
    model_dir = RunFolder(run).model_dir()
    if not (model_dir / MODEL_FILE).exists():
        raise PostlocError(f"{run} holds no trained model (neither best/{MODEL_FILE} nor {MODEL_FILE})")
    model = load_model(model_dir)
    # data.json and calibration.json are the run's (sealed in its config.json), never best/'s: a file
    # dropped into best/ is not among the model's recorded files and would be read unchecked
    verify_run_files(run)
    info = RunFolder(run).read_data()
    try:  # a run folder's calibration; a bare model folder (or an older run) has none: T = 1
        calibration = read_calibration(run)
    except ValueError as error:
        raise PostlocError(str(error)) from None
    predictor = Predictor(model, info.get("pois"), info.get("hashtag_vocabulary"), calibration["temperature"])
    if names is not None:
        from postloc.data.gazetteer import read_gazetteer

        predictor.use_names(names if isinstance(names, Gazetteer) else read_gazetteer(names), name_weight)
    return predictor


def top_classes(proba: np.ndarray) -> np.ndarray:
    """Each row's most probable class, the first among ties: the one :meth:`Predictor.answer` ranks first
    (``explain`` names the POI it explains, and each variant's top POI, with it)."""
    return top_k_indices(np.asarray(proba), 1)[:, 0]


def check_min_confidence(value: Any) -> float | None:
    """``min_confidence`` as a float in [0, 1], or None when not given; anything else is the user's error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise PostlocError(f"min_confidence must be a number from 0 to 1, got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise PostlocError(f"min_confidence must be a number from 0 to 1, got {value!r}")
    return number


def _decide(candidates: list[dict[str, Any]], confidence: float, min_confidence: float | None) -> dict[str, Any]:
    """The answer for one post: its top POI, or None with the reason when ``confidence`` is below ``min_confidence``."""
    if min_confidence is not None and confidence < min_confidence:
        return {
            "poi": None,
            "confidence": confidence,
            # rounded down, so the shown confidence is below the shown threshold too
            "reason": f"confidence {math.floor(confidence * 1000) / 1000:.3f} below min_confidence {min_confidence:g}",
            "predictions": candidates,
        }
    return {
        "poi": candidates[0]["poi"] if candidates else None,
        "confidence": confidence,
        "reason": None if candidates else "the model has no classes",
        "predictions": candidates,
    }


def _is_paths(value: Any) -> bool:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
