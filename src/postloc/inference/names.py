"""Cold start: POIs known only by name, predicted from the names a post writes, blended with the model.

A trained model knows only the POIs it saw posts of. A gazetteer (:mod:`postloc.data.gazetteer`)
names more. A post that writes a place's name ("at Flinders Street Station", ``#flindersstreetstation``)
is evidence for it, trained or not; this module turns that evidence into probabilities and mixes
them into the model's.

**Evidence** of a post for a POI, in [0, 1] (:meth:`NameIndex.evidence`):

* 1 for a *full* match: the name's folded words (:func:`postloc.text.names.fold`) in a row in the
  caption, or the squashed name as a hashtag or inside one (``#harbourbridgesydney``; names of at
  least :data:`MIN_SQUASHED_CHARS` letters, so short names do not hide inside unrelated tags);
* else a *partial* match, ``PARTIAL x coverage``: the share of the name's words that the post has
  (as caption words, hashtags, or hashtags segmented into name words), each word weighted by its
  rarity among the gazetteer's names (IDF: "Flinders" says more than "Street"); coverage below
  :data:`MIN_COVERAGE`, or words that are all stop words, count as no evidence; nor do words of a
  name the post writes in full (a post at "Crystal Pier" is no partial evidence for "Stone Pier").

**Blend** (:meth:`NameBlender.blend`): the name distribution ``q`` is the evidence sharpened and
normalised over the POIs that have any; the post's name weight is ``w = weight x max evidence``; then
``p = (1 - w) p_model + w q``, where ``p_model`` is the run's calibrated distribution padded with 0 for
the POIs it was not trained on. So a post without name evidence keeps exactly the model's
probabilities (``w = 0``), a POI with no training posts gets probability only from names, and the
blend stays a distribution. Each candidate says where it came from (``source``): ``model``,
``names`` (a POI the model does not know) or ``model+names``.

No embeddings: matching is on words. Similarity of multilingual text embeddings between post and
name would catch translations and paraphrases, but needs an offline encoder that postloc does not
depend on (docs/cold-start.md).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from postloc.data.gazetteer import Gazetteer, Place
from postloc.data.labels import class_index
from postloc.errors import PostlocError
from postloc.text.names import name_tokens, segment, squash

#: weight of the names at full evidence (``w = weight x max evidence``); ``--name-weight``
DEFAULT_NAME_WEIGHT = 0.5
#: a squashed name found *inside* a longer hashtag must be at least this long
MIN_SQUASHED_CHARS = 6
#: a partial match is worth at most this much of a full one
PARTIAL = 0.6
#: partial matches covering less than this IDF share of the name are no evidence
MIN_COVERAGE = 0.5
#: ``q`` is proportional to evidence to this power: a full match outweighs partial ones
SHARPNESS = 4.0
#: longest run of caption words tried as a name (names rarely have more words)
MAX_NAME_WORDS = 8
#: a post's hashtags are searched for names inside them up to this many characters each
MAX_HASHTAG_CHARS = 100
#: words that alone do not name a place ("The Rocks" is not matched by a caption's "the")
STOP_WORDS = frozenset(
    "a an and at by da de del della der des di die das du el en et for from im in la las le les "  # noqa: SIM905
    "los of on san st ste the to und van von y".split()
)
SOURCES = ("model", "names", "model+names")


class NameIndex:
    """The names of a list of places, indexed for matching posts; place ``i`` scores for ``targets[i]``."""

    def __init__(self, places: Sequence[Place], targets: Sequence[int]):
        self.targets = list(targets)
        self.tokens = [list(dict.fromkeys(name_tokens(p.name))) for p in places]
        df = Counter(t for tokens in self.tokens for t in tokens)
        n = max(1, len(places))
        self.idf = {t: math.log(1.0 + n / c) for t, c in df.items()}
        self.vocabulary = frozenset(df)
        self.by_token: dict[str, list[int]] = defaultdict(list)
        self.by_squashed: dict[str, list[int]] = defaultdict(list)
        for i, tokens in enumerate(self.tokens):
            for t in tokens:
                self.by_token[t].append(i)
            if tokens:
                self.by_squashed["".join(name_tokens(places[i].name))].append(i)

    def evidence(self, text: str, hashtags: Sequence[str]) -> dict[int, float]:
        """``{target: evidence}`` of one post (caption and its hashtags, all of them), only targets with some."""
        words = name_tokens(text)
        tags = [squash(t) for t in hashtags]
        tags = [t for t in tags if t]
        full = self._full_matches(words, tags)
        present = set(words)
        for tag in tags:
            present.add(tag)
            pieces = segment(tag, self.vocabulary) if len(tag) <= MAX_HASHTAG_CHARS else None
            present.update(pieces or ())
        scores: dict[int, float] = {}
        for i in full:
            scores[self.targets[i]] = 1.0
        # words a full match explains are no evidence for other names: "Crystal Pier" is not half of "Stone Pier"
        present -= {t for i in full for t in self.tokens[i]}
        candidates = {i for t in present if t in self.by_token and t not in STOP_WORDS for i in self.by_token[t]}
        for i in candidates - full:
            tokens = self.tokens[i]
            total = sum(self.idf[t] for t in tokens)
            covered = sum(self.idf[t] for t in tokens if t in present)
            coverage = covered / total if total else 0.0
            if coverage >= MIN_COVERAGE:
                target = self.targets[i]
                scores[target] = max(scores.get(target, 0.0), PARTIAL * coverage)
        return scores

    def _full_matches(self, words: list[str], tags: list[str]) -> set[int]:
        found: set[int] = set()
        for start in range(len(words)):  # runs of caption words, squashed, looked up as names
            joined = ""
            for word in words[start : start + MAX_NAME_WORDS]:
                joined += word
                found.update(self.by_squashed.get(joined, ()))
        for tag in tags:
            found.update(self.by_squashed.get(tag, ()))
            if len(tag) <= MAX_HASHTAG_CHARS:  # names inside a longer tag: #harbourbridgesydney
                for i in range(len(tag)):
                    for j in range(i + MIN_SQUASHED_CHARS, len(tag) + 1):
                        if j - i < len(tag):
                            found.update(self.by_squashed.get(tag[i:j], ()))
        return found


@dataclass
class Blend:
    """Blended probabilities of a batch, with per post the name evidence and weight behind them."""

    proba: np.ndarray  # [n_posts, n_classes]
    evidence: list[dict[int, float]]
    weights: np.ndarray  # [n_posts], w of each post
    n_model: int  # classes [0, n_model) are the model's, the rest are known by name only

    def rows(self, rows: slice) -> Blend:
        """The blend of some of the posts (a slice of the batch)."""
        return Blend(self.proba[rows], self.evidence[rows], self.weights[rows], self.n_model)

    def source(self, post: int, cls: int) -> str:
        """Where candidate ``cls`` of post ``post`` got its probability from."""
        if cls >= self.n_model:
            return "names"
        return "model+names" if self.weights[post] > 0 and cls in self.evidence[post] else "model"


class NameBlender:
    """The classes of a run extended by a gazetteer's names, and the blend of model and name probabilities."""

    def __init__(self, model_pois: Sequence[Mapping[str, Any]], gazetteer: Gazetteer, weight: float):
        weight = float(weight)
        if not 0.0 <= weight <= 1.0:  # NaN fails too
            raise PostlocError(f"the name weight must be a number from 0 to 1, got {weight!r}")
        self.weight = weight
        self.n_model = len(model_pois)
        index = class_index(p["poi"] for p in model_pois)
        by_name: dict[str, int] = {}
        places: list[Place] = []
        targets: list[int] = []
        for i, p in enumerate(model_pois):  # the run's own names match too: known POIs get name evidence
            name = str(p.get("name") or "")
            if name and not name.startswith("#") and squash(name):
                places.append(Place(str(p["poi"]), name, p.get("lat"), p.get("lon")))
                targets.append(i)
                by_name.setdefault(squash(name), i)
        self.extra: list[dict[str, Any]] = []
        for place in gazetteer.places:
            # the same POI by id, or by name (an OSM node of a place the run knows under another id)
            target = index.get(place.poi, by_name.get(squash(place.name)))
            if target is None:
                target = self.n_model + len(self.extra)
                index[place.poi] = target
                by_name.setdefault(squash(place.name), target)
                self.extra.append({"poi": place.poi, "name": place.name, "lat": place.lat, "lon": place.lon})
            places.append(place)
            targets.append(target)
        self.index = NameIndex(places, targets)

    @property
    def n_classes(self) -> int:
        return self.n_model + len(self.extra)

    def blend(self, model_proba: np.ndarray, posts: Sequence[tuple[str, Sequence[str]]]) -> Blend:
        """``(1 - w) p_model + w q`` per post (``posts``: caption and *all* hashtags, before any vocabulary cut)."""
        model_proba = np.asarray(model_proba, dtype=float).reshape(len(posts), -1)
        proba = np.zeros((len(posts), self.n_classes))
        proba[:, : model_proba.shape[1]] = model_proba
        evidence = [self.index.evidence(text, tags) for text, tags in posts]
        weights = np.zeros(len(posts))
        for row, scores in enumerate(evidence):
            if not scores or self.weight == 0:
                continue
            targets = np.fromiter(scores, dtype=np.int64, count=len(scores))
            strength = np.fromiter(scores.values(), dtype=float, count=len(scores))
            q = strength**SHARPNESS
            w = self.weight * float(strength.max())
            proba[row] *= 1.0 - w
            proba[row, targets] += w * q / q.sum()
            weights[row] = w
        return Blend(proba, evidence, weights, self.n_model)
