"""The synthetic generator: labelled synthetic everywhere, reproducible, ready for `postloc prepare`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from postloc.data.prepare import PrepareConfig, prepare
from postloc.datasets.synthetic import SyntheticPostsConfig, generate
from postloc.errors import PostlocError

SMALL = SyntheticPostsConfig(pois=3, posts_per_poi=12, seed=3, width=96, height=72, selfie_rate=0.2, tourist_rate=0.2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("syn") / "set", SMALL)


def _records(result):
    return [json.loads(line) for line in (result.out_dir / "posts.jsonl").read_text().splitlines()]


def test_every_output_says_synthetic(dataset):
    manifest = json.loads((dataset.out_dir / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["counts"]["posts"] == 36
    assert "SYNTHETIC" in (dataset.out_dir / "README.md").read_text()
    records = _records(dataset)
    assert all(r["id"].startswith("syn-") and r["synthetic"] is True for r in records)
    assert all(r["poi"].startswith("syn-poi-") and r["user"].startswith("syn-user-") for r in records)
    image = Image.open(dataset.out_dir / records[[("image" in r) for r in records].index(True)]["image"][0])
    assert b"synthetic" in image.info.get("comment", b"")


def test_records_are_complete_and_modalities_go_missing(dataset):
    records = _records(dataset)
    pois = (dataset.out_dir / "pois.csv").read_text().splitlines()
    assert pois[0] == "poi,lat,lon,name" and len(pois) == 4
    for r in records:
        assert -90 <= r["lat"] <= 90 and r["poi_name"] and r["created"]
        assert r.get("image") or r["text"] or r["hashtags"]
        for path in r.get("image", []):
            with Image.open(dataset.out_dir / path) as im:
                assert im.size == (96, 72)
    assert {r["syn_person"] for r in records} == {"none", "selfie", "tourist"}
    many = generate(
        dataset.out_dir.parent / "rates",
        SyntheticPostsConfig(
            pois=2,
            posts_per_poi=60,
            width=48,
            height=48,
            missing_image_rate=0.5,
            missing_text_rate=0.5,
            missing_hashtags_rate=0.5,
            selfie_rate=0,
            tourist_rate=0,
        ),
    )
    counts = many.manifest["counts"]
    for key in ("no_image", "no_text", "no_hashtags"):
        assert 30 <= counts[key] <= 90, counts


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    config = SyntheticPostsConfig(pois=2, posts_per_poi=3, width=64, height=48, seed=7)
    a, b = generate(tmp_path / "a", config), generate(tmp_path / "b", config)
    assert (a.out_dir / "posts.jsonl").read_bytes() == (b.out_dir / "posts.jsonl").read_bytes()
    for path in (a.out_dir / "images").iterdir():
        assert path.read_bytes() == (b.out_dir / "images" / path.name).read_bytes()
    c = generate(tmp_path / "c", SyntheticPostsConfig(pois=2, posts_per_poi=3, width=64, height=48, seed=8))
    assert (a.out_dir / "posts.jsonl").read_bytes() != (c.out_dir / "posts.jsonl").read_bytes()


def test_images_carry_a_per_poi_signature(tmp_path):
    """Mean colour of a POI's photos is closer to its own photos than to other POIs' (what the image branch learns)."""
    result = generate(
        tmp_path / "sig",
        SyntheticPostsConfig(
            pois=4, posts_per_poi=8, width=64, height=48, selfie_rate=0, tourist_rate=0, missing_image_rate=0
        ),
    )
    by_poi: dict[str, list[np.ndarray]] = {}
    for r in _records(result):
        colour = np.asarray(Image.open(result.out_dir / r["image"][0]).convert("RGB"), np.float32).mean(axis=(0, 1))
        by_poi.setdefault(r["poi"], []).append(colour)
    centres = {p: np.mean(v, axis=0) for p, v in by_poi.items()}
    right = sum(
        min(centres, key=lambda p: np.linalg.norm(c - centres[p])) == poi
        for poi, colours in by_poi.items()
        for c in colours
    )
    assert right / 32 > 0.8


def test_prepare_accepts_the_output_and_keeps_english_captions(dataset, tmp_path):
    result = prepare(
        dataset.out_dir / "posts.jsonl",
        tmp_path / "prepared",
        PrepareConfig(min_hashtag_count=2, min_poi_posts=5, min_poi_users=2),
        pois_csv=dataset.out_dir / "pois.csv",
    )
    assert result.summary["funnel"].get("dropped_language", 0) == 0
    assert result.summary["funnel"]["kept"] == 36


def test_refuses_to_replace_a_foreign_folder_and_bad_rates(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(PostlocError, match="not a synthetic data set"):
        generate(tmp_path / "mine", SyntheticPostsConfig(pois=1, posts_per_poi=1))
    with pytest.raises(PostlocError, match="rates"):
        generate(tmp_path / "x", SyntheticPostsConfig(selfie_rate=0.8, tourist_rate=0.5))


def test_cli_entry(tmp_path, capsys):
    from postloc.cli import synthetic as synthetic_cli

    parser = argparse.ArgumentParser(prog="postloc")
    synthetic_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "synthetic",
            "--out",
            str(tmp_path / "cli"),
            "--pois",
            "2",
            "--posts-per-poi",
            "4",
            "--seed",
            "1",
            "--size",
            "64x48",
        ]
    )
    assert args.run(args) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert len((tmp_path / "cli" / "posts.jsonl").read_text().splitlines()) == 8


def test_prepared_from_synthetic_posts_is_synthetic_but_not_generated(dataset, tmp_path):
    """The two questions of data.prepared: posts of `postloc synthetic` prepared by `postloc prepare` are
    synthetic (every record's mark survives in ``extra``) but the folder was not generated, so ``prepare``'s
    manifest has no "synthetic" key; a generated folder is both. A run trained on such posts says it is
    synthetic (it said not, before issue 30), in its config and its evaluation."""
    from postloc.data.prepared import SYNTHETIC_KEY, is_generated, is_synthetic, read_manifest
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    out = tmp_path / "prepared"
    config = PrepareConfig(min_hashtag_count=2, min_poi_posts=5, min_poi_users=2)
    prepare(dataset.out_dir / "posts.jsonl", out, config, pois_csv=dataset.out_dir / "pois.csv")
    assert SYNTHETIC_KEY not in read_manifest(out)
    assert not is_generated(read_manifest(out)) and is_synthetic(out)
    generated = write_synthetic_prepared(
        tmp_path / "generated", SyntheticFeaturesConfig(n_pois=3, n_posts=60, n_users=12)
    )
    assert is_generated(read_manifest(generated)) and is_synthetic(generated)
    from postloc.data.prepared import load_prepared
    from postloc.io.run_folder import RunFolder
    from postloc.training import RunConfig, TrainerConfig, evaluate, train

    assert load_prepared(out).synthetic and load_prepared(generated).synthetic
    train(out, tmp_path / "run", RunConfig("majority", {}, TrainerConfig(epochs=1, seed=0)))
    assert json.loads(RunFolder(tmp_path / "run").manifest_path.read_text())["synthetic"] is True
    assert evaluate(tmp_path / "run", "test")["synthetic"] is True
