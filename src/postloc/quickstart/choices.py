"""Small-data settings chosen from the data itself: one pass over the input, then a rule per threshold.

The paper's thresholds (hashtags used by >= 50 posts, POIs with >= 100 posts, English captions
only) were set for a crawl of tens of thousands of posts per city. On a few thousand posts they
leave an empty hashtag vocabulary or one or two POIs, and a new user has to find
``--min-hashtag-count``, ``--min-poi-posts``, ``--languages`` by trial. Here each threshold is
scaled to the number of posts (the paper's values from :data:`FULL_SCALE_POSTS` posts on), then
checked against what it would keep, and every choice carries the sentence that explains it: the
command prints them, the manifest and the report keep them, and a re-run reads them back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from postloc.data.filters import duplicate_key, frequent_hashtags, passing_pois, place_hashtags, place_key
from postloc.data.pois import named_place, place_label
from postloc.data.prepare import PrepareConfig
from postloc.data.schema import Post
from postloc.text.hashtags import post_hashtags
from postloc.text.language import detect_languages
from postloc.text.names import names_place, place_keys
from postloc.text.normalize import normalize_text

#: from this many posts on, the paper's thresholds are used as they are
FULL_SCALE_POSTS = 10_000
#: at most this many captions are language-judged in the scan (a uniform sample would need two passes;
#: the first ones are enough to tell an English-only collection from a mixed one)
LANGUAGE_SAMPLE = 3_000
#: English-only is kept when it would drop at most this share of the posts
MAX_LANGUAGE_LOSS = 0.2
#: cross-validate (K user-disjoint folds) up to this many posts; above, the prepared split is used
MAX_CV_POSTS = 50_000
CV_FOLDS = 5
#: above this many posts with a caption or a photo, 3 folds (half the training time of 5; each fold still
#: tests over a thousand posts); tag-only posts train fast enough for 5 at any size up to MAX_CV_POSTS
MAX_FIVE_FOLD_HEAVY = 3_000
#: names kept from the scan at most (an Instaloader download of a whole country has tens of thousands)
MAX_NAMED_POIS = 100_000
#: up to this many labelled posts the scan keeps each one's light record and counts the POIs exactly as
#: ``prepare`` will (language, duplicates, empty posts, then :func:`postloc.data.filters.passing_pois`);
#: above, from the raw counts ("about")
MAX_EXACT_POSTS = MAX_CV_POSTS
#: the prepare settings quickstart chooses, which the command line may set instead (``--min-hashtag-count`` ...)
SETTABLE = ("min_hashtag_count", "languages", "poi_method", "min_poi_posts", "min_poi_users", "poi_min_samples")
SET_BY_YOU = "(set by you)"
#: POIs come from the labels the posts carry (a ``poi``, a location name, a tweet's venue) when at least this
#: share of the posts carry one: 301 of 1,000 tweets naming their venue teach more than 24 coordinate clusters
MIN_LABELLED_SHARE = 0.1


def post_location_name(post: Post) -> str | None:
    """The place a post names, as ``prepare`` reads it: Instagram's location name, else a tweet's venue or place."""
    if not post.extra:
        return None
    name = post.extra.get("poi_name")
    return str(name) if name is not None else named_place(post.extra)


@dataclass(frozen=True)
class LabelledPost:
    """What ``prepare`` needs of a labelled post to decide whether it keeps it (its caption as prepare
    normalises it; ``uid`` is the user, or the post's own key when it has none)."""

    poi: str
    uid: str
    text: str
    tags: tuple[str, ...]
    image: bool
    dupkey: tuple | None


@dataclass
class DataProfile:
    """What one pass over the input tells about it: sizes, which fields the posts carry, tag and POI counts."""

    posts: int = 0
    users: set[str] = field(default_factory=set)
    with_text: int = 0
    with_images: int = 0
    with_coordinates: int = 0
    with_poi: int = 0
    tag_posts: Counter[str] = field(default_factory=Counter)  # posts per hashtag
    poi_posts: Counter[str] = field(default_factory=Counter)
    poi_users: dict[str, set[str]] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)  # the first LANGUAGE_SAMPLE captions
    poi_names: dict[str, str] = field(default_factory=dict)  # a labelled POI's name (Instagram's location name)
    poi_xyz: dict[str, list[float]] = field(default_factory=dict)  # sum of the posts' unit vectors, and their count
    names: set[str] = field(default_factory=set)  # every location name (``poi_name``) the posts carry
    labelled: list[LabelledPost] | None = field(default_factory=list)  # None past MAX_EXACT_POSTS
    _languages: list[str | None] | None = None  # the language of each ``labelled`` caption, judged once

    def add(self, post: Post) -> None:
        self.posts += 1
        location = post_location_name(post)
        if location is not None and len(self.names) < MAX_NAMED_POIS:
            self.names.add(location)
        user = post.user or f"post:{post.id}"  # a post without a user counts as its own user
        self.users.add(user)
        if post.text and post.text.strip():
            self.with_text += 1
            if len(self.captions) < LANGUAGE_SAMPLE:
                self.captions.append(post.text)
        if post.images:
            self.with_images += 1
        if post.lat is not None and post.lon is not None:
            self.with_coordinates += 1
        label = place_label(post.poi, location)
        if label is not None and str(label).strip():
            poi = str(label)
            self.with_poi += 1
            self.poi_posts[poi] += 1
            self.poi_users.setdefault(poi, set()).add(user)
            if location is not None and location.strip() and len(self.poi_names) < MAX_NAMED_POIS:
                self.poi_names.setdefault(poi, location.strip())
            self._keep_record(post, poi, user)
            if post.lat is not None and post.lon is not None:
                phi, lam = math.radians(post.lat), math.radians(post.lon)
                acc = self.poi_xyz.setdefault(poi, [0.0, 0.0, 0.0, 0.0])
                acc[0] += math.cos(phi) * math.cos(lam)
                acc[1] += math.cos(phi) * math.sin(lam)
                acc[2] += math.sin(phi)
                acc[3] += 1
        self.tag_posts.update(set(post_hashtags(post.hashtags, post.text)))

    def _keep_record(self, post: Post, poi: str, user: str) -> None:
        if self.labelled is None:
            return
        if len(self.labelled) >= MAX_EXACT_POSTS:
            self.labelled = None  # too many to hold: the POI counts are estimated from the raw counts
            return
        text = normalize_text(post.text)
        tags = post_hashtags(post.hashtags, text)
        place = place_key(post.poi, post.lat, post.lon)
        uid = post.user if post.user is not None else f"\0post:{len(self.labelled)}"
        record = LabelledPost(
            poi, uid, text, tuple(tags), bool(post.images), duplicate_key(post.user, text, tags, place)
        )
        self.labelled.append(record)

    def place_keys(self) -> frozenset[str]:
        """The POIs' labels and names as hashtag keys: the same names ``prepare`` uses (labels as POIs)."""
        return place_keys(sorted(set(self.poi_posts) | self.names))

    def caption_languages(self) -> list[str | None]:
        """The language of each labelled post's caption, judged as ``prepare`` judges it (once; None: not judged)."""
        if self._languages is None:
            records = self.labelled or []
            judged_at = [i for i, r in enumerate(records) if r.text]
            langs: list[str | None] = [None] * len(records)
            letters = PrepareConfig().min_language_letters
            judged = detect_languages([records[i].text for i in judged_at], min_letters=letters)
            for i, (lang, _) in zip(judged_at, judged, strict=True):
                langs[i] = lang
            self._languages = langs
        return self._languages

    def named_places(self) -> list[dict[str, Any]]:
        """``{poi, name, lat, lon, posts}`` of every labelled POI with a name and coordinates (the centre: the
        normalised mean of its posts' unit vectors), for POIs that are known by name when too small to train on."""
        rows = []
        for poi, name in sorted(self.poi_names.items()):
            x, y, z, n = self.poi_xyz.get(poi, (0.0, 0.0, 0.0, 0))
            norm = math.sqrt(x * x + y * y + z * z)
            if not n or norm == 0:
                continue
            lat, lon = math.degrees(math.asin(z / norm)), math.degrees(math.atan2(y, x))
            rows.append(
                {"poi": poi, "name": name, "lat": round(lat, 7), "lon": round(lon, 7), "posts": self.poi_posts[poi]}
            )
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "users": len(self.users),
            "with_text": self.with_text,
            "with_images": self.with_images,
            "with_coordinates": self.with_coordinates,
            "with_poi_label": self.with_poi,
            "distinct_hashtags": len(self.tag_posts),
            "labelled_pois": len(self.poi_posts),
        }


def profile_posts(posts: Iterable[Post]) -> DataProfile:
    profile = DataProfile()
    for post in posts:
        profile.add(post)
    return profile


@dataclass(frozen=True)
class Choice:
    """One setting, its value and why."""

    name: str
    value: Any
    why: str


def choose(profile: DataProfile, fixed: Mapping[str, Any] | None = None) -> list[Choice]:
    """The settings for this data, one :class:`Choice` each (the prepare thresholds, the evaluation).

    ``fixed``: settings of :data:`SETTABLE` the user gave (``--min-hashtag-count`` ...); they are taken as
    given, said "(set by you)", and the other choices are made around them.
    """
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(SETTABLE)
    if unknown:
        raise ValueError(f"not a setting quickstart chooses: {sorted(unknown)}")
    paper = PrepareConfig()
    n = profile.posts
    scale = min(1.0, n / FULL_SCALE_POSTS)
    scaled = f"the paper's value scaled by {n:,} / {FULL_SCALE_POSTS:,} posts" if scale < 1 else "the paper's value"
    places = profile.place_keys()
    hashtags = _hashtags(profile, paper, scale, scaled, places, fixed.get("min_hashtag_count"))
    languages = _languages(profile, places, fixed.get("languages"))
    filters = PrepareConfig(min_hashtag_count=int(hashtags.value), languages=_language_codes(languages.value))
    choices = [hashtags, languages]
    choices += _pois(profile, paper, scale, scaled, fixed, filters, places)
    choices.append(_evaluation(profile))
    return choices


def _language_codes(value: Any) -> tuple[str, ...]:
    """A ``languages`` choice ("en", "en,de", "any") as ``PrepareConfig.languages``."""
    text = str(value).strip().lower()
    return () if text in ("any", "all", "") else tuple(c.strip() for c in text.split(",") if c.strip())


def _hashtags(
    profile: DataProfile, paper: PrepareConfig, scale: float, scaled: str, places: frozenset[str], given: Any
) -> Choice:
    def kept_at(value: int) -> int:
        return sum(1 for c in profile.tag_posts.values() if c >= value)

    if given is not None:
        value = int(given)
        why = f"{SET_BY_YOU}; keeps {kept_at(value):,} of {len(profile.tag_posts):,} distinct hashtags"
    else:
        value = max(2, round(paper.min_hashtag_count * scale))
        while value > 2 and kept_at(value) < 10 and profile.tag_posts:  # an empty vocabulary leaves tag models nothing
            value -= 1
        why = (
            f"{scaled} ({paper.min_hashtag_count}); keeps {kept_at(value):,} of {len(profile.tag_posts):,} "
            "distinct hashtags"
        )
        if not profile.tag_posts:
            why = "no post has a hashtag; the threshold has nothing to filter"
    rare = sorted(
        place_hashtags((t for t, c in profile.tag_posts.items() if c < value), places),
        key=lambda t: (-profile.tag_posts[t], t),
    )
    if rare:
        shown = ", ".join(f"#{t}" for t in rare[:8]) + (f" and {len(rare) - 8:,} more" if len(rare) > 8 else "")
        why += f"; min-hashtag-count {value} would drop {shown}: kept, they name POIs"
    return Choice("min_hashtag_count", value, why)


def _languages(profile: DataProfile, places: frozenset[str], given: Any) -> Choice:
    if given is not None:
        value = ",".join(_language_codes(given)) or "any"
        return Choice("languages", value, SET_BY_YOU + _rescued_note(profile, places, _language_codes(value)))
    if not profile.captions:
        return Choice("languages", "any", "no post has a caption, so there is no language to filter by")
    judged = [lang for lang, _ in detect_languages(profile.captions) if lang is not None]
    if not judged:
        return Choice("languages", "any", "the captions are too short to judge their language")
    english = sum(1 for lang in judged if lang == "en") / len(judged)
    # the filter drops captioned posts judged non-English; posts without a caption stay
    loss = (1 - english) * len(judged) / len(profile.captions) * profile.with_text / max(profile.posts, 1)
    top = ", ".join(f"{lang} {count / len(judged):.0%}" for lang, count in Counter(judged).most_common(3))
    if loss <= MAX_LANGUAGE_LOSS:
        return Choice(
            "languages",
            "en",
            f"the paper's English-only filter drops about {loss:.0%} of the posts (captions judged: {top})"
            + _rescued_note(profile, places, ("en",)),
        )
    return Choice(
        "languages",
        "any",
        f"English-only would drop about {loss:.0%} of the posts (captions judged: {top}); every language is kept",
    )


def _rescued_note(profile: DataProfile, places: frozenset[str], languages: tuple[str, ...]) -> str:
    """ "; it would drop N posts whose hashtags name a POI: kept" when the language filter meets such posts."""
    if not languages or not profile.labelled or not places:
        return ""
    rescued = sum(
        1
        for record, lang in zip(profile.labelled, profile.caption_languages(), strict=True)
        if lang is not None and lang not in languages and any(names_place(t, places) for t in record.tags)
    )
    if not rescued:
        return ""
    return f"; the language filter would drop {rescued:,} post(s) whose hashtags name a POI: kept"


@dataclass(frozen=True)
class PoiSupport:
    """Posts and users per labelled POI; ``exact``: counted after prepare's own filters, as prepare counts."""

    posts: dict[str, int]
    users: dict[str, int]
    exact: bool


def poi_support(profile: DataProfile, config: PrepareConfig, places: frozenset[str]) -> PoiSupport:
    """Posts and users per POI as ``prepare`` (POIs from the labels) will count them before its small-POI filter.

    The same steps in the same order: the language filter (a post whose hashtags name a POI stays), the
    duplicates (first one kept), the vocabulary (:func:`postloc.data.filters.frequent_hashtags`) and the
    empty posts. Past :data:`MAX_EXACT_POSTS` labelled posts, the raw counts.
    """
    records = profile.labelled
    if records is None:
        raw_users = {poi: len(found) for poi, found in profile.poi_users.items()}
        return PoiSupport(dict(profile.poi_posts), raw_users, exact=False)
    allowed = set(config.languages)
    kept = records
    if allowed:
        langs = profile.caption_languages()
        kept = [
            r
            for r, lang in zip(records, langs, strict=True)
            if lang is None or lang in allowed or any(names_place(t, places) for t in r.tags)
        ]
    if config.drop_duplicates:
        seen: set[tuple] = set()
        firsts = []
        for record in kept:
            if record.dupkey is not None:
                if record.dupkey in seen:
                    continue
                seen.add(record.dupkey)
            firsts.append(record)
        kept = firsts
    if config.drop_empty:
        counts: Counter = Counter()
        for record in kept:
            counts.update(set(record.tags))
        vocabulary = frequent_hashtags(counts, config.min_hashtag_count, places)
        kept = [r for r in kept if r.text or r.image or any(t in vocabulary for t in r.tags)]
    posts: Counter = Counter(r.poi for r in kept)
    users: dict[str, set[str]] = {}
    for record in kept:
        users.setdefault(record.poi, set()).add(record.uid)
    return PoiSupport(dict(posts), {poi: len(u) for poi, u in users.items()}, exact=True)


def _pois(
    profile: DataProfile,
    paper: PrepareConfig,
    scale: float,
    scaled: str,
    fixed: Mapping[str, Any],
    filters: PrepareConfig,
    places: frozenset[str],
) -> list[Choice]:
    labelled = profile.with_poi >= MIN_LABELLED_SHARE * max(profile.posts, 1)
    if not labelled and profile.with_coordinates == 0:
        from postloc.errors import PostlocError

        raise PostlocError(
            "the posts carry neither POI labels nor coordinates, so there is nothing to learn a place from "
            "(see docs/post-format.md: a post needs `poi`, or `lat` and `lon`)"
        )
    min_posts = max(10, round(paper.min_poi_posts * scale))
    min_users = paper.min_poi_users
    if "poi_method" in fixed:
        method = Choice("poi_method", str(fixed["poi_method"]), SET_BY_YOU)
        by_labels = method.value == "labels" or (method.value == "auto" and profile.with_poi > 0)
    elif labelled:
        why = f"{profile.with_poi:,} of {profile.posts:,} posts name their POI"
        if profile.with_poi < profile.posts:
            why = (
                f"{profile.with_poi:,} of {profile.posts:,} posts name a place: the POIs come from those "
                "(the others are not trained on; predict places them)"
            )
        method = Choice("poi_method", "labels", why)
        by_labels = True
    else:
        method = Choice(
            "poi_method",
            "hdbscan",
            (
                f"only {profile.with_poi:,} of {profile.posts:,} posts name a place (too few to learn the places from)"
                if profile.with_poi
                else "the posts carry no POI labels"
            )
            + f"; {profile.with_coordinates:,} have coordinates, clustered into places",
        )
        by_labels = False
    if by_labels:
        min_posts, min_users, why = _label_thresholds(profile, min_posts, min_users, scaled, fixed, filters, places)
    else:
        min_posts = int(fixed.get("min_poi_posts", min_posts))
        min_users = int(fixed.get("min_poi_users", min_users))
        why = SET_BY_YOU if "min_poi_posts" in fixed else f"{scaled} ({paper.min_poi_posts}); HDBSCAN's smallest place"
    if "min_poi_users" in fixed:
        users_why = SET_BY_YOU
    elif min_users >= paper.min_poi_users:
        users_why = "a place with fewer users cannot have some of them in training and others in the test"
    else:
        users_why = f"lowered from {paper.min_poi_users}: with so few users per POI, fewer than two POIs would remain"
    if "poi_min_samples" in fixed:
        samples = Choice("poi_min_samples", int(fixed["poi_min_samples"]), SET_BY_YOU)
    else:
        samples = Choice(
            "poi_min_samples", min(paper.poi_min_samples, min_posts), "HDBSCAN's core density, at most min_poi_posts"
        )
    return [method, Choice("min_poi_posts", min_posts, why), Choice("min_poi_users", min_users, users_why), samples]


def _label_thresholds(
    profile: DataProfile,
    min_posts: int,
    min_users: int,
    scaled: str,
    fixed: Mapping[str, Any],
    filters: PrepareConfig,
    places: frozenset[str],
) -> tuple[int, int, str]:
    """Lower the POI thresholds until at least two labelled POIs pass (a classifier needs two classes).

    The POIs are counted as ``prepare`` counts them (:func:`poi_support`, :func:`postloc.data.filters.passing_pois`),
    so "keeps N of M POIs" is what ``prepare`` keeps.
    """
    support = poi_support(profile, filters, places)

    def passing(posts: int, users: int) -> set[str]:
        return passing_pois(support.posts, support.users, posts, users)

    why = f"{scaled} (100)"
    if "min_poi_users" in fixed:
        min_users = int(fixed["min_poi_users"])
    else:
        while min_users > 1 and len(passing(1, min_users)) < 2:
            min_users -= 1
    if "min_poi_posts" in fixed:
        min_posts, why = int(fixed["min_poi_posts"]), SET_BY_YOU
    elif len(passing(min_posts, min_users)) < 2:
        counts = sorted((c for p, c in support.posts.items() if support.users.get(p, 0) >= min_users), reverse=True)
        if len(counts) >= 2:
            min_posts = max(1, counts[1])
            why += f", lowered to {min_posts} so that two POIs remain"
    kept = passing(min_posts, min_users)
    share = sum(support.posts[p] for p in kept) / max(profile.with_poi, 1)
    counted = (
        "after the language, duplicate and empty-post filters, as prepare counts"
        if support.exact
        else "estimated before the filters"
    )
    return (
        min_posts,
        min_users,
        f"{why}; keeps {'' if support.exact else 'about '}{len(kept)} of {len(profile.poi_posts)} POIs "
        f"({share:.0%} of the labelled posts; {counted})",
    )


def _evaluation(profile: DataProfile) -> Choice:
    if profile.posts <= MAX_CV_POSTS and len(profile.users) >= 2 * CV_FOLDS:
        heavy = max(profile.with_text, profile.with_images)
        k = CV_FOLDS if heavy <= MAX_FIVE_FOLD_HEAVY else 3
        why = (
            f"{profile.posts:,} posts: small enough to score every model on {k} user-disjoint folds, "
            "so that differences between models are not one split's noise"
        )
        if k < CV_FOLDS:
            why += (
                f" ({k} rather than {CV_FOLDS}: {heavy:,} posts have captions or photos, whose models cost the most "
                "to train; 3 folds take half the time and still test over a thousand posts each)"
            )
        return Choice("folds", k, why)
    why = (
        f"{profile.posts:,} posts: scored on the prepared user-disjoint test split (cross-validation above "
        f"{MAX_CV_POSTS:,} posts would multiply the training time)"
        if profile.posts > MAX_CV_POSTS
        else f"only {len(profile.users)} users: too few for {CV_FOLDS} user-disjoint folds; scored on the test split"
    )
    return Choice("folds", 0, why)


def prepare_config(choices: Iterable[Choice], **fixed: Any) -> PrepareConfig:
    """The :class:`PrepareConfig` the choices describe (``fixed``: settings the user gave on the command line)."""
    values = {c.name: c.value for c in choices}
    languages = values.get("languages", "en")
    return PrepareConfig(
        min_hashtag_count=int(values["min_hashtag_count"]),
        languages=() if languages == "any" else tuple(str(languages).split(",")),
        poi_method=str(values["poi_method"]),
        min_poi_posts=int(values["min_poi_posts"]),
        min_poi_users=int(values["min_poi_users"]),
        poi_min_samples=int(values["poi_min_samples"]),
        **fixed,
    )
