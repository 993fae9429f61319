"""Which parts of a post give its location away: occlusion of words, hashtags and the image.

Privacy reviewers want to know *why* a post is placed at a POI, not just where. Occlusion is
model-agnostic and easy to read: remove one part of the post (a caption word, a hashtag, the
image), predict again, and report how much the probability of the originally predicted POI
drops. A large positive number means "this part gives the place away"; a negative one means the
part pointed elsewhere. All occluded variants of a post go through the model in one call.

Rules, chosen so each entry is something a person can delete from a post:

* a *word* is a whitespace-separated caption token that is not a hashtag; removing it removes
  every occurrence (repeating a word does not hide it);
* a *hashtag* is one entry of the (normalised, vocabulary-filtered) hashtag list; removing it
  also removes its ``#tag`` occurrences from the caption, since a user deleting the tag would
  delete it there too;
* the *image* is removed by dropping its feature vector (the model then sees a text-only post,
  exactly like a post without a photo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from postloc.data.image_features import IMAGE_COLUMN
from postloc.inference.names import NameBlender
from postloc.inference.photos import DEFAULT_MAX_PIXELS
from postloc.inference.predictor import ALL_HASHTAGS, PostRecord, Predictor, top_classes
from postloc.text.hashtags import post_hashtags

#: ``records -> [n_records, n_classes]`` calibrated probabilities: :meth:`Predictor.probabilities`' matrix, or
#: the rows the server's micro-batcher already computed.
ProbaFn = Callable[[list[dict[str, Any]]], np.ndarray]

MAX_PARTS = 512  # more occlusions than this would make one explanation a denial of service


@dataclass
class Contribution:
    """One removable part of the post and what removing it does to the predicted POI."""

    kind: str  # "word" | "hashtag" | "image"
    token: str
    contribution: float  # probability of the target POI with the part minus without it
    probability_without: float
    top_poi_without: str


@dataclass
class Explanation:
    target_poi: str
    target_name: str
    probability: float
    contributions: list[Contribution] = field(default_factory=list)
    ignored_hashtags: list[str] = field(default_factory=list)  # not in the training vocabulary: no effect
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table, largest contribution first (what ``postloc explain`` prints)."""
        lines = [
            f"predicted POI: {self.target_poi} {self.target_name!r}  p={self.probability:.4f}",
            "",
            f"{'kind':<8} {'part':<32} {'contribution':>12} {'p without':>10}  top POI without",
        ]
        for c in self.contributions:
            lines.append(
                f"{c.kind:<8} {c.token[:32]:<32} {c.contribution:>+12.4f} {c.probability_without:>10.4f}"
                f"  {c.top_poi_without}"
            )
        if not self.contributions:
            lines.append("(nothing to remove: the post has no words, hashtags or image)")
        if self.ignored_hashtags:
            lines.append("")
            lines.append(
                "ignored (not in the training vocabulary): " + " ".join("#" + t for t in self.ignored_hashtags)
            )
        if self.truncated:
            lines.append(f"(only the first {MAX_PARTS} parts were occluded)")
        return "\n".join(lines)


def _is_hashtag_word(word: str) -> str | None:
    tags = post_hashtags(None, word)
    return tags[0] if len(tags) == 1 and word.lstrip().startswith("#") else None


def occlusions(row: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[PostRecord], bool]:
    """The (kind, token) parts of a record and one variant record per part (at most :data:`MAX_PARTS`)."""
    words = str(row.get("text") or "").split()
    tags = list(row.get("hashtags") or [])
    parts: list[tuple[str, str]] = []
    variants: list[PostRecord] = []
    seen: set[str] = set()
    for word in words:
        if word in seen or _is_hashtag_word(word) is not None:
            continue
        seen.add(word)
        parts.append(("word", word))
        variants.append(PostRecord({**row, "text": " ".join(w for w in words if w != word)}))
    for tag in dict.fromkeys(tags):
        parts.append(("hashtag", tag))
        text = " ".join(w for w in words if _is_hashtag_word(w) != tag)
        variant = PostRecord({**row, "text": text, "hashtags": [t for t in tags if t != tag]})
        if ALL_HASHTAGS in row:  # names read every tag of the post: the removed one is gone there too
            variant[ALL_HASHTAGS] = [t for t in row[ALL_HASHTAGS] if t != tag]
        variants.append(variant)
    if isinstance(row.get(IMAGE_COLUMN), np.ndarray):
        parts.append(("image", "image"))
        variants.append(PostRecord({**row, IMAGE_COLUMN: None}))
    truncated = len(parts) > MAX_PARTS
    return parts[:MAX_PARTS], variants[:MAX_PARTS], truncated


def explain_row(
    row: Mapping[str, Any], proba: ProbaFn, classes: Sequence[str], names: Sequence[str] = (), target: str | None = None
) -> Explanation:
    """Occlusion explanation of one record; the original and all variants in one ``proba`` call.

    The post is explained alone: without ``user`` and ``created``, its variants are not one user's posts of
    one day, which a model reading a post's neighbours would mix into each other.
    """
    row = PostRecord({**row, "user": None, "created": None})
    parts, variants, truncated = occlusions(row)
    matrix = proba([row, *variants])
    base = matrix[0]
    tops = top_classes(matrix)
    index = int(tops[0]) if target is None else list(classes).index(target)
    contributions = [
        Contribution(
            kind=kind,
            token=token,
            contribution=float(base[index] - p[index]),
            probability_without=float(p[index]),
            top_poi_without=str(classes[int(top)]),
        )
        for (kind, token), p, top in zip(parts, matrix[1:], tops[1:], strict=True)
    ]
    contributions.sort(key=lambda c: -c.contribution)
    return Explanation(
        target_poi=str(classes[index]),
        target_name=str(names[index]) if len(names) else "",
        probability=float(base[index]),
        contributions=contributions,
        truncated=truncated,
    )


def explain(predictor: Predictor, post: Mapping[str, Any], target: str | None = None) -> Explanation:
    """Explain ``predictor``'s top POI (or ``target``) for one raw post (exchange-format dict).

    The post and its variants take the predictor's road (:meth:`~Predictor.records`, one
    :meth:`~Predictor.probabilities` call). Hashtags the model never saw in training are listed in
    ``ignored_hashtags``: they cannot change the prediction, which is itself worth telling a privacy reviewer.
    """
    record = predictor.records([post])[0]
    result = explain_record(predictor, record, lambda records: predictor.probabilities(records, None).matrix, target)
    result.ignored_hashtags = ignored_hashtags(
        post.get("hashtags"), str(post.get("text") or ""), record["hashtags"], predictor.names
    )
    return result


def explain_record(
    predictor: Predictor, record: Mapping[str, Any], proba: ProbaFn, target: str | None = None
) -> Explanation:
    """:func:`explain_row` of a record of ``predictor``, with its classes and POI names (``explain`` and the server)."""
    names = [p.get("name") or "" for p in predictor.pois]
    return explain_row(record, proba, predictor.classes, names, target)


def ignored_hashtags(tags: Any, text: str, used: Sequence[str], names: NameBlender | None = None) -> list[str]:
    """The post's hashtags (the one rule of :mod:`postloc.text.hashtags`) that the model did not get: not in
    its training vocabulary, so they cannot change the prediction; with ``names`` in use, a tag that names a
    place is not without effect, so it is not listed."""
    kept = set(used)
    ignored = [t for t in post_hashtags(tags, text) if t not in kept]
    if names is not None:
        ignored = [t for t in ignored if not names.index.evidence("", [t])]
    return ignored


def photo_vector(
    run: str | Path, predictor: Any, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray | None, str]:
    """The feature vector of a photo to explain, treated as the run's training photos were, or None.

    Returns the vector (None when the photo is not used) and a note for the user. A file that is not
    a readable image is the user's error (:class:`~postloc.errors.PostlocError`).
    """
    from postloc.errors import PostlocError
    from postloc.inference.images import photos_for_run
    from postloc.inference.photos import ImageRejected, decode_upload, sniff_image
    from postloc.vision.decode import DecodeConfig, read_bytes

    data, failed = read_bytes(path, DecodeConfig(max_pixels=max_pixels))
    if failed is not None:
        raise PostlocError(f"{path}: {failed.note}")
    assert data is not None  # read_bytes gives either the bytes or a failure
    if sniff_image(data) is None:
        raise PostlocError(f"{path}: not a supported image (JPEG, PNG, GIF, BMP, WebP)")
    try:
        decode_upload(data, max_pixels)
    except ImageRejected as error:
        raise PostlocError(f"{path}: {error.message}") from None
    photos, info = photos_for_run(run, predictor, max_pixels=max_pixels, store=False)
    if photos is None:
        return None, info.reason
    outcome = photos.from_bytes(data)
    photos.close()
    notes = list(photos.notes)
    if outcome.vector is None:
        notes.append(f"the photo is not used ({outcome.status}{': ' + outcome.note if outcome.note else ''})")
    return outcome.vector, "; ".join(notes)
