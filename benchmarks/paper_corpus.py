"""A SYNTHETIC corpus of the paper's New York shape, for timing models at the paper's scale.

Dai et al.'s New York set (Table I) has 137,676 Instagram posts at 40 POIs; a third carry no
caption, and a few heavy users post a large share while most users post once or twice. This
writes posts of that shape in postloc's exchange format (``posts.jsonl`` + ``pois.csv``), text
and hashtags only (no photos: the point is the text learners' cost):

- **POIs** in one city, each with a name, a few signature words and signature hashtags;
- **users** drawn Zipf-like (heavy and light users); each user has one or two favourite POIs and
  posts there more often than chance (as real users do), so user-disjoint folds matter;
- **captions** (lognormal length, about a third empty) mix general English with the POI's words,
  other POIs' words (noise) and a few misspellings; **hashtags** mix the POI's tags, city tags and
  a long tail of general tags.

Every record says it is synthetic (ids ``syn-``, ``"synthetic": true``). Deterministic per seed.

    python benchmarks/paper_corpus.py --out build/ny-shape            # 137,676 posts, 40 POIs
    python benchmarks/paper_corpus.py --out build/ny-1m --posts 1000000 --pois 500
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from bench_prepare_outofcore import ENGLISH

NEW_YORK = (40.7549, -73.9840)
PAPER_POSTS, PAPER_POIS = 137_676, 40
SYLLABLES = ("ka", "lo", "ren", "mi", "to", "sa", "ve", "nor", "dal", "bri", "ton", "wick", "ham", "ly", "gar", "den")


def _word(rng: np.random.Generator, low: int = 2, high: int = 4) -> str:
    return "".join(rng.choice(SYLLABLES, rng.integers(low, high + 1)))


def _zipf_weights(n: int, a: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** a
    return weights / weights.sum()


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def write_paper_corpus(out: Path, posts: int = PAPER_POSTS, pois: int = PAPER_POIS, seed: int = 0) -> dict:
    """Write ``out/posts.jsonl`` and ``out/pois.csv``; returns a description of the corpus."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_users = max(50, posts // 9)  # the paper's sets: about 9 posts per user on average
    kinds = ("Park", "Square", "Tower", "Pier", "Museum", "Hall")
    names = [f"{_word(rng).capitalize()} {rng.choice(kinds)}" for _ in range(pois)]
    signature_words = [[_word(rng) for _ in range(6)] for _ in range(pois)]
    signature_tags = [[_word(rng, 3, 5) for _ in range(4)] for _ in range(pois)]
    city_tags = ["nyc", "newyork", "manhattan", "travel", "instagood", "photooftheday"]
    general_tags = [f"{_word(rng, 2, 3)}{i % 97}" for i in range(20_000)]
    centres = np.asarray(NEW_YORK) + rng.normal(0, 0.03, (pois, 2))
    poi_popularity = _zipf_weights(pois, 0.7)
    user_weights = _zipf_weights(n_users, 1.0)
    favourites = rng.choice(pois, (n_users, 2), p=poi_popularity)
    general_tag_p = _zipf_weights(len(general_tags), 1.05)

    with (out / "pois.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["poi", "lat", "lon", "name"])
        for p in range(pois):
            writer.writerow([f"poi{p:03d}", f"{centres[p, 0]:.6f}", f"{centres[p, 1]:.6f}", names[p]])

    users = rng.choice(n_users, posts, p=user_weights)
    loyal = rng.random(posts) < 0.45  # at one of the user's favourite places
    random_poi = rng.choice(pois, posts, p=poi_popularity)
    poi_of = np.where(loyal, favourites[users, rng.integers(0, 2, posts)], random_poi)
    n_words = np.clip(rng.lognormal(2.4, 0.7, posts).astype(int), 1, 80)
    n_words[rng.random(posts) < 0.33] = 0  # a third of the paper's posts have no caption
    n_tags = np.clip(rng.poisson(4, posts), 0, 30)
    english = np.asarray(ENGLISH, dtype=object)
    word_at = np.concatenate([[0], np.cumsum(n_words)])
    words_all = english[rng.integers(0, len(english), int(word_at[-1]))]
    draws, typos = rng.random(len(words_all)), rng.random(len(words_all)) < 0.03
    own_pick, other_poi = rng.integers(0, 6, len(words_all)), rng.integers(0, pois, len(words_all))
    tag_at = np.concatenate([[0], np.cumsum(n_tags)])
    tag_draws = rng.random(int(tag_at[-1]))
    tag_pick, city_pick = rng.integers(0, 4, len(tag_draws)), rng.integers(0, len(city_tags), len(tag_draws))
    general_pick = rng.choice(len(general_tags), len(tag_draws), p=general_tag_p)
    name_in, name_at = rng.random(posts) < 0.15, rng.random(posts)
    jitter = rng.normal(0, 0.0008, (posts, 2))
    with (out / "posts.jsonl").open("w") as handle:
        for i in range(posts):
            p = int(poi_of[i])
            words = []
            for j in range(word_at[i], word_at[i + 1]):
                if draws[j] < 0.08:
                    word = signature_words[p][own_pick[j]]
                elif draws[j] < 0.11:
                    word = signature_words[other_poi[j]][own_pick[j]]
                else:
                    word = words_all[j]
                words.append(_typo(word, rng) if typos[j] else word)
            if words and name_in[i]:
                words.insert(int(name_at[i] * len(words)), names[p].split()[0])
            tags = []
            for j in range(tag_at[i], tag_at[i + 1]):
                if tag_draws[j] < 0.18:
                    tags.append(signature_tags[p][tag_pick[j]])
                elif tag_draws[j] < 0.45:
                    tags.append(city_tags[city_pick[j]])
                else:
                    tags.append(general_tags[general_pick[j]])
            record = {
                "id": f"syn-{i}",
                "text": " ".join(words),
                "hashtags": tags,
                "poi": f"poi{p:03d}",
                "lat": round(float(centres[p, 0] + jitter[i, 0]), 6),
                "lon": round(float(centres[p, 1] + jitter[i, 1]), 6),
                "user": f"u{int(users[i])}",
                "created": int(1_600_000_000 + i * 97),
                "synthetic": True,
            }
            handle.write(json.dumps(record) + "\n")
    description = {"synthetic": True, "posts": posts, "pois": pois, "users": n_users, "seed": seed}
    (out / "README.md").write_text(
        "SYNTHETIC posts of the paper's New York shape, written by benchmarks/paper_corpus.py: "
        f"{json.dumps(description)}. Not real posts.\n"
    )
    return description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--posts", type=int, default=PAPER_POSTS)
    parser.add_argument("--pois", type=int, default=PAPER_POIS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(write_paper_corpus(args.out, args.posts, args.pois, args.seed)))


if __name__ == "__main__":
    main()
