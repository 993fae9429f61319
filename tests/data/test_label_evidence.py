"""Issue 28 item 3: a hashtag that names a POI is the evidence for the label; no threshold throws it away."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from postloc import PrepareConfig, prepare
from postloc.data.filters import frequent_hashtags, passing_pois
from postloc.text.names import names_place, place_keys

CITIES = ("sydney", "melbourne", "perth")
ENGLISH = (
    "Sunday brunch with the best coffee in town",
    "Long walk along the water before work today",
    "Finally caught the sunset from the rooftop bar",
    "Weekend markets were busy but worth every minute",
)


def city_captions() -> list[dict]:
    """60 captions labelled by city (20 each, 5 users per city); #love everywhere, #perth on three posts only."""
    records = []
    for city in CITIES:
        for i in range(20):
            tags = ["#love"] + (["#perth"] if city == "perth" and i < 3 else [])
            records.append(
                {
                    "id": f"{city}-{i}",
                    "text": f"{ENGLISH[i % len(ENGLISH)]} number {i} {' '.join(tags)}",
                    "poi": city,
                    "user": f"{city}-u{i % 5}",
                }
            )
    return records


def melbourne_places() -> list[dict]:
    """Instagram location posts (labelled by location id, named): English captions, and German ones, some with
    a hashtag naming the place (#hosierlane, #FlindersStreetStation), one with none."""
    places = {"101": "Hosier Lane", "202": "Flinders Street Station", "303": "Brighton Beach, Victoria"}
    squashed = {"101": "#hosierlane", "202": "#FlindersStreetStation", "303": "#brightonbeach"}
    records = []
    for poi, name in places.items():
        for i in range(8):
            records.append(
                {
                    "id": f"{poi}-{i}",
                    "text": f"{ENGLISH[i % len(ENGLISH)]} in Melbourne, story {i} #travel",
                    "poi": poi,
                    "poi_name": name,
                    "user": f"{poi}-u{i % 4}",
                }
            )
        records.append(
            {
                "id": f"{poi}-de",
                "text": f"Heute Nachmittag waren wir mit der ganzen Familie unterwegs, wunderschön {squashed[poi]}",
                "poi": poi,
                "poi_name": name,
                "user": f"{poi}-de",
            }
        )
    records.append(
        {
            "id": "de-plain",
            "text": "Heute Nachmittag waren wir mit der ganzen Familie unterwegs, wunderschön #urlaub",
            "poi": "101",
            "poi_name": "Hosier Lane",
            "user": "plain",
        }
    )
    return records


def _hashtags_csv(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "hashtags.csv").set_index("hashtag")


def test_place_keys_fold_names_and_their_parts():
    keys = place_keys(["Flinders Street Station", "Brighton Beach, Victoria", "Café de Flore", "123456", None])
    assert names_place("flindersstreetstation", keys) and names_place("brightonbeach", keys)
    assert names_place("cafédeflore", keys) and not names_place("123456", keys) and not names_place("love", keys)
    assert frequent_hashtags({"perth": 3, "love": 60, "rare": 1}, 5, place_keys(["perth"])) == {"perth", "love"}
    assert passing_pois({"a": 5, "b": 9}, {"a": 3, "b": 2}, 5, 3) == {"a"}


@pytest.mark.parametrize("engine", ["memory", "duckdb"])
def test_city_hashtag_survives_the_count_threshold(jsonl_file, tmp_path, engine):
    config = PrepareConfig(min_hashtag_count=5, min_poi_posts=5, min_poi_users=2, engine=engine)
    result = prepare(jsonl_file(city_captions()), tmp_path / "out", config)
    tags = _hashtags_csv(tmp_path / "out")
    assert tags.loc["perth", "posts"] == 3 and bool(tags.loc["perth", "kept"]) and bool(tags.loc["love", "kept"])
    assert result.summary["hashtag_vocabulary"] == 2 and result.summary["hashtag_vocabulary_place_names"] == 1
    assert "1 below the count, kept: they name a POI" in result.markdown
    posts = pd.read_parquet(tmp_path / "out/posts.parquet").set_index("id")
    assert list(posts.loc["perth-0", "hashtags"]) == ["love", "perth"]


def test_german_post_whose_hashtag_names_the_place_survives_english_only(jsonl_file, tmp_path):
    config = PrepareConfig(min_hashtag_count=5, min_poi_posts=5, min_poi_users=2)
    result = prepare(jsonl_file(melbourne_places()), tmp_path / "out", config)
    kept = set(pd.read_parquet(tmp_path / "out/posts.parquet")["id"])
    assert {"101-de", "202-de", "303-de"} <= kept and "de-plain" not in kept
    funnel = result.summary["funnel"]
    assert funnel["kept_hashtags_name_place"] == 3 and funnel["dropped_language"] == 1
    assert "| kept: hashtags name a place | 3 |" in result.markdown
    tags = _hashtags_csv(tmp_path / "out")
    assert bool(tags.loc["flindersstreetstation", "kept"]) and bool(tags.loc["brightonbeach", "kept"])


def test_engines_agree_with_held_posts_and_place_hashtags(jsonl_file, tmp_path):
    """Held (other-language) posts, their reposts, place tags below the count: the same files from both engines."""
    records = melbourne_places() + city_captions()
    records += [dict(records[8], id="repost-de"), dict(records[-1], id="repost-en")]  # a German and an English repost
    config = PrepareConfig(min_hashtag_count=5, min_poi_posts=5, min_poi_users=2)
    memory = prepare(jsonl_file(records), tmp_path / "memory", config)
    duck = prepare(jsonl_file(records), tmp_path / "duckdb", replace(config, engine="duckdb"))
    assert duck.summary == memory.summary and memory.summary["funnel"]["dropped_duplicate"] == 2
    for name in ("posts.parquet", "posts.jsonl", "hashtags.csv", "pois.csv", "summary.md"):
        assert (tmp_path / "duckdb" / name).read_bytes() == (tmp_path / "memory" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "memory/manifest.json").read_text())
    assert manifest["funnel"]["kept_hashtags_name_place"] == 4  # the German repost is kept, then dropped as a repost


# -- quickstart: what its thresholds drop, the settings a user gives, the scan agreeing with prepare ------


def _posts(records: list[dict]):
    from postloc.data.schema import Post

    return [
        Post(
            id=r["id"],
            text=r.get("text"),
            poi=r.get("poi"),
            user=r.get("user"),
            extra={"poi_name": r["poi_name"]} if "poi_name" in r else {},
        )
        for r in records
    ]


def test_quickstart_says_which_place_hashtags_its_threshold_would_drop():
    from postloc.quickstart.choices import choose, profile_posts

    choices = {c.name: c for c in choose(profile_posts(_posts(city_captions())), {"min_hashtag_count": 5})}
    assert "min-hashtag-count 5 would drop #perth: kept, they name POIs" in choices["min_hashtag_count"].why
    places = {c.name: c for c in choose(profile_posts(_posts(melbourne_places())))}
    assert "the language filter would drop 3 post(s) whose hashtags name a POI: kept" in places["languages"].why


def test_settings_given_to_quickstart_are_used_and_said_set_by_you(jsonl_file, tmp_path, capsys):
    from postloc.cli import build_parser
    from postloc.cli.quickstart import _settings
    from postloc.data.prepare import ReadOptions
    from postloc.quickstart.choices import prepare_config
    from postloc.quickstart.run import QuickstartConfig, _Quickstart

    argv = ["quickstart", "in.jsonl", "--out", "o", "--min-hashtag-count", "7", "--languages", "EN,de"]
    argv += ["--min-poi-posts", "4", "--min-poi-users", "2"]
    settings = _settings(build_parser().parse_args(argv))
    assert settings == {"min_hashtag_count": 7, "languages": "EN,de", "min_poi_posts": 4, "min_poi_users": 2}
    config = QuickstartConfig(read=ReadOptions(skip_bad=True), settings=settings)
    choices = _Quickstart(jsonl_file(city_captions()), tmp_path / "qs", config)._choices()
    prepared = prepare_config(choices)
    assert (prepared.min_hashtag_count, prepared.languages, prepared.min_poi_posts, prepared.min_poi_users) == (
        7,
        ("en", "de"),
        4,
        2,
    )
    printed = capsys.readouterr().err
    for line in ("min_hashtag_count = 7: (set by you)", "languages = en,de: (set by you)"):
        assert line in printed
    assert "min_poi_posts = 4: (set by you); keeps 3 of 3 POIs" in printed
    assert "min_poi_users = 2: (set by you)" in printed
    with pytest.raises(Exception, match=r"--min-poi-posts \(PrepareConfig.min_poi_posts\) must be at least 1, got 0"):
        _settings(build_parser().parse_args(["quickstart", "x", "--out", "o", "--min-poi-posts", "0"]))


def test_the_scan_predicts_the_pois_prepare_keeps(jsonl_file, tmp_path):
    """A POI whose posts the language and duplicate filters thin below the threshold: the raw count says it
    stays, prepare drops it; the scan now counts as prepare counts."""
    import re

    from postloc.quickstart.choices import choose, prepare_config, profile_posts

    records = [r for r in city_captions() if not (r["poi"] == "perth" and int(r["id"].split("-")[1]) >= 12)]
    german = "Heute Nachmittag waren wir mit der ganzen Familie unterwegs, es war wunderschön"
    for i in range(3):  # perth: 9 English + 3 German (dropped) + 2 reposts (dropped) = 14 raw, 9 kept
        records[40 + i] = dict(records[40 + i], text=f"{german} Nummer {i}")
    records += [dict(records[45], id="repost-1"), dict(records[46], id="repost-2")]
    profile = profile_posts(_posts(records))
    choices = {c.name: c for c in choose(profile, {"min_poi_posts": 13})}
    said = re.search(r"keeps (\d+) of (\d+) POIs", choices["min_poi_posts"].why)
    assert said and said.group(2) == "3" and profile.poi_posts["perth"] == 14
    result = prepare(jsonl_file(records), tmp_path / "out", prepare_config(choices.values()))
    assert result.summary["all"]["pois"] == int(said.group(1)) == 2


def test_pois_help_and_warning_agree_that_the_name_is_optional(tmp_path, capsys):
    from postloc.cli import build_parser
    from postloc.quickstart.run import QuickstartConfig, _Quickstart

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("prepare", "quickstart"):
        pois = next(a for a in sub.choices[command]._actions if a.dest == "pois")
        assert "poi,lat,lon[,name]" in pois.help
    table = tmp_path / "centres.csv"
    table.write_text("poi,lat,lon\nsydney,-33.87,151.21\nhobart,-42.88,147.33\n")
    out = tmp_path / "qs"
    (out / "prepared").mkdir(parents=True)
    (out / "prepared/pois.csv").write_text("poi,lat,lon,name,posts,users\nsydney,-33.87,151.21,,20,5\n")
    _Quickstart(tmp_path / "in.jsonl", out, QuickstartConfig(pois_csv=str(table)))._names()
    printed = capsys.readouterr().err
    assert "--pois has no name column (poi,lat,lon[,name]): its POIs give centres only" in printed
    assert "needs the columns" not in printed
