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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from postloc.data.prepare import PrepareConfig
from postloc.data.schema import Post
from postloc.text.hashtags import post_hashtags
from postloc.text.language import detect_languages

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

    def add(self, post: Post) -> None:
        self.posts += 1
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
        if post.poi is not None and str(post.poi).strip():
            poi = str(post.poi)
            self.with_poi += 1
            self.poi_posts[poi] += 1
            self.poi_users.setdefault(poi, set()).add(user)
            name = post.extra.get("poi_name")
            if isinstance(name, str) and name.strip() and len(self.poi_names) < MAX_NAMED_POIS:
                self.poi_names.setdefault(poi, name.strip())
            if post.lat is not None and post.lon is not None:
                phi, lam = math.radians(post.lat), math.radians(post.lon)
                acc = self.poi_xyz.setdefault(poi, [0.0, 0.0, 0.0, 0.0])
                acc[0] += math.cos(phi) * math.cos(lam)
                acc[1] += math.cos(phi) * math.sin(lam)
                acc[2] += math.sin(phi)
                acc[3] += 1
        self.tag_posts.update(set(post_hashtags(post.hashtags, post.text)))

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


def choose(profile: DataProfile) -> list[Choice]:
    """The settings for this data, one :class:`Choice` each (the prepare thresholds, the evaluation)."""
    paper = PrepareConfig()
    n = profile.posts
    scale = min(1.0, n / FULL_SCALE_POSTS)
    scaled = f"the paper's value scaled by {n:,} / {FULL_SCALE_POSTS:,} posts" if scale < 1 else "the paper's value"
    choices = [_hashtags(profile, paper, scale, scaled), _languages(profile)]
    choices += _pois(profile, paper, scale, scaled)
    choices.append(_evaluation(profile))
    return choices


def _hashtags(profile: DataProfile, paper: PrepareConfig, scale: float, scaled: str) -> Choice:
    value = max(2, round(paper.min_hashtag_count * scale))
    kept = sum(1 for c in profile.tag_posts.values() if c >= value)
    while value > 2 and kept < 10 and profile.tag_posts:  # an empty vocabulary leaves the tag models nothing
        value -= 1
        kept = sum(1 for c in profile.tag_posts.values() if c >= value)
    why = f"{scaled} ({paper.min_hashtag_count}); keeps {kept:,} of {len(profile.tag_posts):,} distinct hashtags"
    if not profile.tag_posts:
        why = "no post has a hashtag; the threshold has nothing to filter"
    return Choice("min_hashtag_count", value, why)


def _languages(profile: DataProfile) -> Choice:
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
            f"the paper's English-only filter drops about {loss:.0%} of the posts (captions judged: {top})",
        )
    return Choice(
        "languages",
        "any",
        f"English-only would drop about {loss:.0%} of the posts (captions judged: {top}); every language is kept",
    )


def _pois(profile: DataProfile, paper: PrepareConfig, scale: float, scaled: str) -> list[Choice]:
    labelled = profile.with_poi >= 0.5 * max(profile.posts, 1)
    if not labelled and profile.with_coordinates == 0:
        from postloc.errors import PostlocError

        raise PostlocError(
            "the posts carry neither POI labels nor coordinates, so there is nothing to learn a place from "
            "(see docs/post-format.md: a post needs `poi`, or `lat` and `lon`)"
        )
    min_posts = max(10, round(paper.min_poi_posts * scale))
    min_users = paper.min_poi_users
    if labelled:
        method = Choice("poi_method", "labels", f"{profile.with_poi:,} of {profile.posts:,} posts name their POI")
        min_posts, min_users, why = _label_thresholds(profile, min_posts, min_users, scaled)
    else:
        method = Choice(
            "poi_method",
            "hdbscan",
            f"the posts carry no POI labels; {profile.with_coordinates:,} have coordinates, clustered into places",
        )
        why = f"{scaled} ({paper.min_poi_posts}); HDBSCAN's smallest place"
    return [
        method,
        Choice("min_poi_posts", min_posts, why),
        Choice(
            "min_poi_users",
            min_users,
            "a place with fewer users cannot have some of them in training and others in the test"
            if min_users >= paper.min_poi_users
            else f"lowered from {paper.min_poi_users}: with so few users per POI, fewer than two POIs would remain",
        ),
        Choice(
            "poi_min_samples", min(paper.poi_min_samples, min_posts), "HDBSCAN's core density, at most min_poi_posts"
        ),
    ]


def _label_thresholds(profile: DataProfile, min_posts: int, min_users: int, scaled: str) -> tuple[int, int, str]:
    """Lower the POI thresholds until at least two labelled POIs pass (a classifier needs two classes)."""

    def passing(posts: int, users: int) -> list[str]:
        return [p for p, c in profile.poi_posts.items() if c >= posts and len(profile.poi_users[p]) >= users]

    why = f"{scaled} (100)"
    while min_users > 1 and len(passing(1, min_users)) < 2:
        min_users -= 1
    if len(passing(min_posts, min_users)) < 2:
        counts = sorted(
            (c for p, c in profile.poi_posts.items() if len(profile.poi_users[p]) >= min_users), reverse=True
        )
        if len(counts) >= 2:
            min_posts = max(1, counts[1])
            why += f", lowered to {min_posts} so that two POIs remain"
    kept = passing(min_posts, min_users)
    share = sum(profile.poi_posts[p] for p in kept) / max(profile.with_poi, 1)
    return (
        min_posts,
        min_users,
        f"{why}; keeps {len(kept)} of {len(profile.poi_posts)} POIs ({share:.0%} of the labelled posts)",
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
