"""Place names the posts carry (issue 28, item 2): venues and locations become the POIs, spelling
variants of one place merge, and a clustered POI is named by the tag most specific to it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from postloc import PrepareConfig, prepare
from postloc.cli import main
from postloc.data.pois import name_clusters, near_duplicate_names
from postloc.data.prepare import ReadOptions
from postloc.data.schema import Post
from postloc.quickstart.choices import choose, profile_posts

SMALL = PrepareConfig(min_hashtag_count=1, languages=(), min_poi_posts=3, min_poi_users=2, train=0.6, val=0.2, test=0.2)

#: venue spellings of one beach (within about 150 m), and two other places; (name, lat, lon, tweets)
VENUES = [
    ("Brighton Beach", -37.9180, 144.9870, 12),
    ("Brighton Beach, Victoria", -37.9185, 144.9875, 5),
    ("Brighten Beach", -37.9175, 144.9880, 3),
    ("brighton beach", -37.9182, 144.9868, 2),
    ("Brighton Beach Hotel", -37.9160, 144.9900, 4),  # another place nearby: not one edit away
    ("Luna Park", -37.8678, 144.9766, 4),
]


def tweets() -> list[dict]:
    """100 geotagged tweets; 30 carry a ``venue`` (one as Twitter's nested ``place`` object)."""
    rng = np.random.default_rng(3)
    records: list[dict] = []
    for name, lat, lon, n in VENUES:
        for i in range(n):
            record = {
                "id": f"v{len(records)}",
                "text": f"Sunny afternoon out here, day {i} #melbourne",
                "user": f"u{len(records) % 7}",
                "lat": lat + rng.normal(0, 5e-5),
                "lon": lon + rng.normal(0, 5e-5),
                "venue": name,
            }
            records.append(record)
    records[-1].pop("venue")
    records[-1]["place"] = {"full_name": "Luna Park", "place_type": "poi", "country_code": "AU"}
    while len(records) < 100:
        records.append(
            {
                "id": f"t{len(records)}",
                "text": "Coffee and a walk #melbourne #summer",
                "user": f"u{len(records) % 9}",
                "lat": -37.95 + rng.normal(0, 0.01),
                "lon": 145.0 + rng.normal(0, 0.01),
            }
        )
    return records


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_venue_names_become_the_pois_and_unlabelled_posts_do_not_block_training(tmp_path):
    source = tmp_path / "tweets.jsonl"
    write_jsonl(source, tweets())
    result = prepare(source, tmp_path / "out", SMALL)
    pois = pd.read_csv(tmp_path / "out" / "pois.csv")
    assert result.summary["poi_method"] == "labels"
    assert sorted(pois["poi"]) == ["Brighton Beach", "Brighton Beach Hotel", "Luna Park"]
    assert result.summary["labelled_posts"] == {"labelled": 30, "posts": 100}
    assert result.summary["funnel"]["kept"] == 30
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "30 of 100 posts name a place: the POIs come from those" in text


def test_near_duplicate_names_merge_into_the_most_used_spelling_and_are_listed(tmp_path, capsys):
    source = tmp_path / "tweets.jsonl"
    write_jsonl(source, tweets())
    result = prepare(source, tmp_path / "out", SMALL)
    (merge,) = result.summary["poi_merges"]
    assert merge["into"] == "Brighton Beach" and merge["names"] == 4 and merge["posts"] == 22
    assert sorted(merge["merged"]) == ["Brighten Beach", "Brighton Beach, Victoria", "brighton beach"]
    assert 50 < merge["within_m"] < 300
    posts = pd.read_parquet(tmp_path / "out" / "posts.parquet")
    assert (posts["poi"] == "Brighton Beach").sum() == 22
    assert (
        "merged 'Brighton Beach, Victoria', 'Brighten Beach' and 'brighton beach' into 'Brighton Beach' (4 names, "
        in (tmp_path / "out" / "summary.md").read_text()
    )
    # the same on the console, and with the duckdb engine byte for byte
    assert main(["prepare", str(source), "--out", str(tmp_path / "cli"), "--quiet", "--languages", "any",
                 "--min-hashtag-count", "1", "--min-poi-posts", "3", "--min-poi-users", "2"]) == 0  # fmt: skip
    assert "into 'Brighton Beach' (4 names, 22 posts" in capsys.readouterr().out
    prepare(source, tmp_path / "duck", replace(SMALL, engine="duckdb"))
    for name in ("posts.parquet", "pois.csv", "summary.md", "summary.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "duck" / name).read_bytes(), name


def test_far_apart_or_different_names_do_not_merge(tmp_path):
    assert near_duplicate_names("Brighton Beach", "brighton-beach!")
    assert near_duplicate_names("Brighton Beach", "Brighton Beach, Victoria")
    assert near_duplicate_names("Café Vue", "Cafe Veu")  # accents, then one swap (8 letters)
    assert not near_duplicate_names("Pier 5", "Pier 6")  # too short for an edit
    assert not near_duplicate_names("Brighton Beach", "Brighton Beach Hotel")
    records = [r for r in tweets() if r.get("venue") in ("Brighton Beach", "Brighten Beach")]
    for r in records:
        if r["venue"] == "Brighten Beach":
            r["lat"] += 0.01  # about 1.1 km away: another place of a similar name
    write_jsonl(tmp_path / "far.jsonl", records)
    result = prepare(tmp_path / "far.jsonl", tmp_path / "out", replace(SMALL, min_poi_posts=2))
    assert "poi_merges" not in result.summary
    assert set(pd.read_csv(tmp_path / "out" / "pois.csv")["poi"]) == {"Brighton Beach", "Brighten Beach"}


def test_columns_poi_venue_with_part_of_the_posts_labelled(tmp_path):
    records = tweets()
    for r in records:
        if isinstance(r.get("place"), dict):
            r["venue"] = r.pop("place")["full_name"]
    write_jsonl(tmp_path / "tweets.jsonl", records)
    result = prepare(tmp_path / "tweets.jsonl", tmp_path / "out", SMALL, ReadOptions(columns={"poi": "venue"}))
    assert result.summary["labelled_posts"] == {"labelled": 30, "posts": 100}
    assert sorted(pd.read_csv(tmp_path / "out" / "pois.csv")["poi"]) == [
        "Brighton Beach",
        "Brighton Beach Hotel",
        "Luna Park",
    ]


def test_quickstart_learns_from_the_venues_when_part_of_the_posts_carry_one():
    posts = [Post.from_record(r) for r in tweets()]
    method = next(c for c in choose(profile_posts(posts)) if c.name == "poi_method")
    assert method.value == "labels"
    assert "30 of 100 posts name a place: the POIs come from those" in method.why
    assert "carry no POI labels" not in method.why


def clustered_posts() -> list[dict]:
    """Three dense places; every post says #melbourne, one place's posts #brightonbeach, another's #lunapark."""
    rng = np.random.default_rng(5)
    places = [(-37.918, 144.987, "brightonbeach"), (-37.868, 144.977, "lunapark"), (-37.818, 144.967, None)]
    records = []
    for k, (lat, lon, tag) in enumerate(places):
        for i in range(30):
            tags = ["melbourne", "summer"] + ([tag] if tag and i % 2 == 0 else []) + ([f"me{i}"] if i == 3 else [])
            records.append(
                {
                    "id": f"c{k}-{i}",
                    "text": "Out and about",
                    "hashtags": tags,
                    "user": f"u{k}-{i % 8}",
                    "lat": lat + rng.normal(0, 1e-4),
                    "lon": lon + rng.normal(0, 1e-4),
                }
            )
    return records


def test_a_cluster_is_named_by_its_specific_tag_not_the_city_tag(tmp_path):
    write_jsonl(tmp_path / "geo.jsonl", clustered_posts())
    config = replace(SMALL, poi_method="hdbscan", min_poi_posts=10, poi_min_samples=5)
    prepare(tmp_path / "geo.jsonl", tmp_path / "out", config)
    pois = pd.read_csv(tmp_path / "out" / "pois.csv")
    names = sorted(pois["name"])
    assert names[:2] == ["#brightonbeach", "#lunapark"]
    assert names[2].startswith("near -37.81")  # no specific tag: its coordinates
    prepare(tmp_path / "geo.jsonl", tmp_path / "duck", replace(config, engine="duckdb"))
    assert (tmp_path / "out" / "pois.csv").read_bytes() == (tmp_path / "duck" / "pois.csv").read_bytes()


def test_name_clusters_needs_a_few_posts_and_skips_tags_on_most_places():
    counts = pd.DataFrame(
        [("a", "city", 40), ("b", "city", 40), ("c", "city", 40), ("a", "rare", 2), ("b", "bridge", 5)],
        columns=["poi", "tag", "posts"],
    )
    named = name_clusters(counts, {"a": 40, "b": 40, "c": 40}, 120)
    assert named == {"b": "#bridge"}  # #city is on every place; #rare on only 2 posts


def test_instagram_location_names_label_posts_without_a_location_id(tmp_path):
    """Instaloader's ``_location.txt`` gives a post ``poi_name`` (and coordinates) but no ``poi``:
    the name is the post's label, and two spellings of one lane merge."""
    records = []
    for k, (name, lat, lon) in enumerate(
        [
            ("Hosier Lane", -37.8166, 144.9692),
            ("Hosier Lane, Melbourne", -37.8167, 144.9693),
            ("ACMI", -37.8176, 144.9690),
        ]
    ):
        for i in range(6):
            records.append(
                {
                    "id": f"i{k}-{i}",
                    "text": "Street art everywhere",
                    "user": f"u{i % 3}",
                    "lat": lat,
                    "lon": lon,
                    "poi_name": name,
                }  # fmt: skip
            )
    write_jsonl(tmp_path / "insta.jsonl", records)
    result = prepare(tmp_path / "insta.jsonl", tmp_path / "out", SMALL)
    assert sorted(pd.read_csv(tmp_path / "out" / "pois.csv")["poi"]) == ["ACMI", "Hosier Lane"]
    assert result.summary["poi_merges"][0]["merged"] == ["Hosier Lane, Melbourne"]
    assert "labelled_posts" not in result.summary  # every post names its place


def test_a_tag_names_one_cluster_only():
    counts = pd.DataFrame(
        [("a", "brighton", 10), ("b", "brighton", 4), ("b", "pier", 4)], columns=["poi", "tag", "posts"]
    )
    named = name_clusters(counts, {"a": 20, "b": 20, "c": 20}, 60, max_spread=1.0)
    assert named == {"a": "#brighton", "b": "#pier"}
