"""A synthetic multimodal data set with planted per-POI signal in text, hashtags and image vectors.

No real data set with captions, hashtags and images is available offline, so the multimodal
parts of MRLF (fusion, missing-modality handling, the image branch) are exercised on this
generator. Every output it writes says SYNTHETIC DATA; numbers measured on it show that the
code learns what was planted, not how well anything works on real posts.

What is planted, per POI:

* caption words: a few signature words (made-up, so no pretrained knowledge helps) mixed into
  captions of common words with probability ``text_signal`` per word; some words come from a
  "neighbour" POI (``confusion``) and some are misspelt (``typo_rate``: swap, drop, double or
  replace a letter), which is what the character-level branch is for;
* hashtags: POI tags (some are concatenations of the POI's caption words, so text-hashtag
  fusion has something to align) drawn with probability ``tag_signal`` among generic tags;
* image: a feature vector from a Gaussian cluster per POI (``image_separation`` between cluster
  centres relative to ``image_noise``), like frozen-backbone features of similar photos;
* every modality is missing independently with its own rate, and POI sizes follow a mild
  power law, like real check-in counts.

Each modality alone is therefore a weak, partial predictor and the modalities are
conditionally independent given the POI: a model that combines them should beat each one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.pois import EARTH_RADIUS_KM
from postloc.data.prepare.steps import post_flags

SYNTHETIC_LABEL = "SYNTHETIC DATA"
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class SyntheticFeaturesConfig:
    n_pois: int = 10
    n_posts: int = 3000
    n_users: int = 400
    seed: int = 0
    # geography
    centre_lat: float = 40.0
    centre_lon: float = 10.0
    city_radius_km: float = 4.0
    post_spread_m: float = 150.0
    # caption text
    signature_words: int = 4  # per POI
    common_words: int = 300
    caption_words: tuple[int, int] = (4, 14)  # inclusive range of words per caption
    text_signal: float = 0.10  # per word: drawn from the POI's signature words
    confusion: float = 0.04  # per word: drawn from another POI's signature words
    typo_rate: float = 0.15  # per word
    # hashtags
    poi_hashtags: int = 4
    generic_hashtags: int = 40
    hashtags_per_post: tuple[int, int] = (1, 5)
    tag_signal: float = 0.25  # per tag: a POI tag rather than a generic one
    # images
    image_dim: int = 32
    image_separation: float = 0.6  # std of the cluster centres, in units of image_noise
    image_noise: float = 1.0
    # missing modalities
    missing_text: float = 0.2
    missing_hashtags: float = 0.2
    missing_image: float = 0.3
    # splits (by post)
    train: float = 0.7
    val: float = 0.1


@dataclass
class SyntheticData:
    """Posts (prepared-folder columns plus ``image_vector``), the POI table, and the image features."""

    posts: pd.DataFrame
    pois: pd.DataFrame
    image_ids: list[str]
    image_matrix: np.ndarray
    config: SyntheticFeaturesConfig


def make_synthetic(config: SyntheticFeaturesConfig = SyntheticFeaturesConfig()) -> SyntheticData:
    """Generate the data in memory (deterministic for a config)."""
    rng = np.random.default_rng(config.seed)
    words = _unique_words(
        rng, config.common_words + config.n_pois * config.signature_words + config.generic_hashtags, rng_len=(2, 4)
    )
    common = words[: config.common_words]
    rest = words[config.common_words :]
    signature = [rest[i * config.signature_words : (i + 1) * config.signature_words] for i in range(config.n_pois)]
    generic_tags = rest[config.n_pois * config.signature_words :]
    poi_tags = []
    for sig in signature:
        tags = [
            sig[i % len(sig)] + sig[(i + 1) % len(sig)] if i % 2 == 0 else sig[i % len(sig)]
            for i in range(config.poi_hashtags)
        ]
        poi_tags.append(list(dict.fromkeys(tags)))

    pois = _poi_table(rng, config)
    weights = 1.0 / np.arange(1, config.n_pois + 1) ** 0.5
    labels = rng.choice(config.n_pois, size=config.n_posts, p=weights / weights.sum())
    centres = rng.normal(0.0, config.image_separation * config.image_noise, size=(config.n_pois, config.image_dim))

    rows, image_ids, vectors = [], [], []
    for i, poi in enumerate(labels):
        post_id = f"syn-{i:06d}"
        text = "" if rng.random() < config.missing_text else _caption(rng, config, poi, common, signature)
        tags = [] if rng.random() < config.missing_hashtags else _hashtags(rng, config, poi, poi_tags, generic_tags)
        has_image = rng.random() >= config.missing_image
        if has_image:
            image_ids.append(post_id)
            vectors.append(centres[poi] + rng.normal(0.0, config.image_noise, size=config.image_dim))
        lat, lon = _jitter(rng, pois.loc[poi, "lat"], pois.loc[poi, "lon"], config.post_spread_m)
        rows.append(
            {
                "id": post_id,
                "text": text,
                "hashtags": tags,
                "image": [f"synthetic/{post_id}.jpg"] if has_image else [],
                "poi": pois.loc[poi, "poi"],
                "poi_name": pois.loc[poi, "name"],
                "lat": lat,
                "lon": lon,
                "user": f"syn-user-{rng.integers(config.n_users):04d}",
                "created": None,
                "lang": "en" if text else None,
                "extra": json.dumps({"synthetic": True}),
            }
        )
    posts = pd.DataFrame(rows)
    pois["posts"] = np.bincount(labels, minlength=config.n_pois)
    pois["users"] = posts.groupby("poi")["user"].nunique().reindex(pois["poi"]).fillna(0).astype(int).to_numpy()
    split_draw = rng.random(len(posts))
    posts["split"] = np.where(
        split_draw < config.train, "train", np.where(split_draw < config.train + config.val, "val", "test")
    )
    posts["flags"] = [  # as prepare flags its posts
        post_flags(text, tags, image, lang)
        for text, tags, image, lang in zip(posts["text"], posts["hashtags"], posts["image"], posts["lang"], strict=True)
    ]
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), config.image_dim)
    by_id = dict(zip(image_ids, matrix, strict=True))
    image_vectors: list[Any] = [by_id.get(p) for p in posts["id"]]  # an object column: a vector, or None
    posts["image_vector"] = image_vectors
    return SyntheticData(posts=posts, pois=pois, image_ids=image_ids, image_matrix=matrix, config=config)


def write_synthetic_prepared(out_dir: str | Path, config: SyntheticFeaturesConfig = SyntheticFeaturesConfig()) -> Path:
    """Write a prepared folder (the layout ``load_prepared`` reads) plus ``image_features.parquet``."""
    from postloc.data import prepared
    from postloc.data.image_features import IMAGE_FEATURES_FILE, write_image_features

    data = make_synthetic(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared.write_posts(data.posts, out)
    data.pois.drop(columns=["index"], errors="ignore").to_csv(
        out / prepared.POIS, index=False, float_format="%.7f", lineterminator="\n"
    )
    counts = pd.Series([t for tags in data.posts["hashtags"] for t in tags]).value_counts()
    pd.DataFrame({"hashtag": counts.index, "posts": counts.values, "kept": True}).to_csv(
        out / prepared.HASHTAGS, index=False, lineterminator="\n"
    )
    write_image_features(out, data.image_ids, data.image_matrix)
    (out / prepared.SUMMARY_MD).write_text(summary_markdown(data))
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()
    manifest = {
        prepared.MARKER_KEY: 1,
        prepared.SYNTHETIC_KEY: True,
        "label": f"{SYNTHETIC_LABEL}: generated by postloc.datasets.synthetic_features, not real posts",
        "input": {"path": "synthetic", "sha256": digest},
        "synthetic_config": asdict(config),
        "config": {"min_hashtag_count": 1},
    }
    outputs = (prepared.POSTS, prepared.POIS, prepared.HASHTAGS, IMAGE_FEATURES_FILE, prepared.SUMMARY_MD)
    prepared.write_manifest(out, manifest, outputs=[*outputs, prepared.MANIFEST])
    return out


def summary_markdown(data: SyntheticData) -> str:
    posts = data.posts
    has_text = posts["text"].str.len() > 0
    has_tags = posts["hashtags"].map(len) > 0
    has_image = posts["image_vector"].notna()
    lines = [
        f"# {SYNTHETIC_LABEL}",
        "",
        "Generated by `postloc.datasets.synthetic_features`; not real posts.",
        "",
        "| | all | train | val | test |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, mask in (
        ("#Posts", np.ones(len(posts), bool)),
        ("#Posts with text", has_text),
        ("#Posts with hashtags", has_tags),
        ("#Posts with image vectors", has_image),
    ):
        cells = [int(mask.sum())] + [int((mask & (posts["split"] == s)).sum()) for s in ("train", "val", "test")]
        lines.append(f"| {name} | " + " | ".join(f"{c:,}" for c in cells) + " |")
    lines.append(f"| #Locations (POIs) | {posts['poi'].nunique()} | | | |")
    return "\n".join(lines) + "\n"


# --- pieces --------------------------------------------------------------------------------


def _unique_words(rng: np.random.Generator, n: int, rng_len: tuple[int, int]) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < n:
        syllables = rng.integers(rng_len[0], rng_len[1] + 1)
        word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        seen.setdefault(word, None)
    return list(seen)


def _poi_table(rng: np.random.Generator, config: SyntheticFeaturesConfig) -> pd.DataFrame:
    rows = []
    for i in range(config.n_pois):
        distance = config.city_radius_km * np.sqrt(rng.random())
        bearing = rng.random() * 2 * np.pi
        lat = config.centre_lat + np.degrees(distance * np.cos(bearing) / EARTH_RADIUS_KM)
        lon = config.centre_lon + np.degrees(
            distance * np.sin(bearing) / (EARTH_RADIUS_KM * np.cos(np.radians(config.centre_lat)))
        )
        rows.append({"poi": f"syn-poi-{i:02d}", "lat": lat, "lon": lon, "name": f"Synthetic POI {i:02d}"})
    table = pd.DataFrame(rows)
    table["posts"] = 0
    table["users"] = 0
    return table


def _caption(rng, config: SyntheticFeaturesConfig, poi: int, common: list[str], signature: list[list[str]]) -> str:
    n = rng.integers(config.caption_words[0], config.caption_words[1] + 1)
    words: list[str] = []
    for _ in range(n):
        draw = rng.random()
        if draw < config.text_signal:
            word = signature[poi][rng.integers(len(signature[poi]))]
        elif draw < config.text_signal + config.confusion:
            other = rng.integers(len(signature))
            word = signature[other][rng.integers(len(signature[other]))]
        else:
            word = common[min(int(rng.zipf(1.3)) - 1, len(common) - 1)]
        if rng.random() < config.typo_rate:
            word = _typo(rng, word)
        words.append(word.capitalize() if not words else word)
    return " ".join(words) + rng.choice([".", "!", "", " :)"])


def _typo(rng: np.random.Generator, word: str) -> str:
    if len(word) < 3:
        return word
    i = int(rng.integers(len(word) - 1))
    kind = rng.integers(4)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice(list(_CONSONANTS + _VOWELS)) + word[i + 1 :]


def _hashtags(
    rng, config: SyntheticFeaturesConfig, poi: int, poi_tags: list[list[str]], generic: list[str]
) -> list[str]:
    n = rng.integers(config.hashtags_per_post[0], config.hashtags_per_post[1] + 1)
    tags: dict[str, None] = {}
    for _ in range(n):
        if rng.random() < config.tag_signal:
            tags.setdefault(poi_tags[poi][rng.integers(len(poi_tags[poi]))], None)
        else:
            tags.setdefault(generic[min(int(rng.zipf(1.5)) - 1, len(generic) - 1)], None)
    return list(tags)


def _jitter(rng, lat: float, lon: float, spread_m: float) -> tuple[float, float]:
    d_lat = rng.normal(0.0, spread_m) / 1000.0 / EARTH_RADIUS_KM
    d_lon = rng.normal(0.0, spread_m) / 1000.0 / (EARTH_RADIUS_KM * np.cos(np.radians(lat)))
    return float(lat + np.degrees(d_lat)), float(lon + np.degrees(d_lon))


def describe(data: SyntheticData) -> dict[str, Any]:
    """Share of posts with each modality, per split (for reports)."""
    posts = data.posts
    return {
        "label": SYNTHETIC_LABEL,
        "posts": len(posts),
        "pois": int(posts["poi"].nunique()),
        "with_text": float((posts["text"].str.len() > 0).mean()),
        "with_hashtags": float((posts["hashtags"].map(len) > 0).mean()),
        "with_image": float(posts["image_vector"].notna().mean()),
    }
