"""``postloc images`` end to end on a small synthetic set with broken files mixed in."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_vision_decode import png_bomb

from postloc.data.image_features import load_image_features
from postloc.data.prepare import PrepareConfig, prepare
from postloc.datasets.synthetic import SyntheticPostsConfig, generate
from postloc.errors import PostlocError
from postloc.vision.backbones import FrozenBackbone, get_backbone
from postloc.vision.decode import decode_image
from postloc.vision.deps import MissingDependency
from postloc.vision.inpaint import InpaintConfig
from postloc.vision.pipeline import ImagesConfig, extract_images

DATA = Path(__file__).parents[1] / "support" / "photos"
EXPECTED_BROKEN = {
    "zero.jpg": "zero_byte",
    "page.jpg": "not_image",
    "cut.jpg": "truncated",
    "bomb.png": "too_large",
    "gone.jpg": "missing",
}
EXPECTED_CONVERTED = {"cmyk.jpg": "CMYK", "alpha.png": "alpha", "anim.gif": "frames", "turned.jpg": "orientation 6"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _broken_files(folder: Path) -> None:
    folder.mkdir()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "page.jpg").write_text("<html><body>login required</body></html>")
    data = (DATA / "building.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    (folder / "bomb.png").write_bytes(png_bomb())
    photo = Image.open(DATA / "building.jpg").convert("RGB").resize((160, 110))
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    photo.save(folder / "anim.gif", save_all=True, append_images=[photo.rotate(90)], duration=50)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(folder / "turned.jpg", exif=exif.tobytes())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A synthetic set (3 POIs) plus posts pointing at broken and unusual files, prepared."""
    root = tmp_path_factory.mktemp("images")
    result = generate(
        root / "syn",
        SyntheticPostsConfig(
            pois=3,
            posts_per_poi=10,
            seed=5,
            width=160,
            height=120,
            selfie_rate=0.3,
            tourist_rate=0.2,
            second_image_rate=0.2,
        ),
    )
    _broken_files(root / "syn" / "odd")
    names = list(EXPECTED_BROKEN) + list(EXPECTED_CONVERTED)
    with open(result.out_dir / "posts.jsonl", "a", encoding="utf-8") as handle:
        for i, name in enumerate(names):
            handle.write(
                json.dumps(
                    {
                        "id": f"syn-odd-{i:02d}",
                        "text": "A strange file posted at the old tower today.",
                        "hashtags": [],
                        "image": [f"odd/{name}"],
                        "poi": "syn-poi-000",
                        "user": f"syn-user-odd{i}",
                        "synthetic": True,
                    }
                )
                + "\n"
            )
        # one post whose only image is broken next to one whose second image is broken
        handle.write(
            json.dumps(
                {
                    "id": "syn-odd-mixed",
                    "text": "Two photos from the tower, one did not upload.",
                    "image": ["images/syn-p000-00001.jpg", "odd/zero.jpg"],
                    "poi": "syn-poi-000",
                    "user": "syn-user-odd99",
                    "synthetic": True,
                }
            )
            + "\n"
        )
    prepare(
        result.out_dir / "posts.jsonl",
        root / "prepared",
        PrepareConfig(min_hashtag_count=1, min_poi_posts=1, min_poi_users=1),
        pois_csv=result.out_dir / "pois.csv",
    )
    return root


@pytest.fixture
def prepared(source, tmp_path) -> Path:
    """A fresh copy of the prepared folder (each test has its own cache and outputs)."""
    return Path(shutil.copytree(source / "prepared", tmp_path / "prepared"))


def _status(prepared: Path) -> dict[str, dict]:
    with open(prepared / "image_status.csv", encoding="utf-8") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


def _persons(source: Path) -> dict[str, str]:
    records = [json.loads(line) for line in (source / "syn" / "posts.jsonl").read_text().splitlines()]
    return {
        Path(r["image"][0]).name: r["syn_person"] for r in records if r.get("image") and r["id"].startswith("syn-p")
    }


def test_keep_mode_writes_the_contract_file_and_statuses(prepared, source):
    result = extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1, batch_size=8))
    ids, matrix = load_image_features(prepared)
    assert matrix.shape == (len(ids), 1280) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    status = _status(prepared)
    for name, expected in EXPECTED_BROKEN.items():
        assert status[name]["status"] == expected, (name, status[name])
    for name, note in EXPECTED_CONVERTED.items():
        assert status[name]["status"] == "kept" and note in status[name]["note"], status[name]
    summary = result.summary
    assert summary["unusable_files"] == len(EXPECTED_BROKEN)
    assert json.loads((prepared / "image_summary.json").read_text())["status"] == summary["status"]
    # posts whose images are all broken get no row; a post with one good image keeps it
    broken_posts = {f"syn-odd-{i:02d}" for i in range(len(EXPECTED_BROKEN))}
    assert not broken_posts & set(ids) and "syn-odd-mixed" in ids
    assert summary["posts"]["posts_all_images_unusable"] == len(EXPECTED_BROKEN)
    assert "unusable files" in result.text


def test_vector_is_the_mean_of_the_posts_images(prepared):
    extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1))
    import pandas as pd

    posts = pd.read_parquet(prepared / "posts.parquet")
    two = posts[posts["image"].map(len) == 2]
    two = two[two["id"].str.startswith("syn-p")].iloc[0]
    ids, matrix = load_image_features(prepared)
    backbone = get_backbone()
    expected = backbone.embed([decode_image(p).image for p in two["image"]]).mean(axis=0)
    np.testing.assert_allclose(matrix[ids.index(two["id"])], expected, atol=1e-4)


def test_rerun_does_no_work_and_writes_the_same_features(prepared):
    first = extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1))
    before = load_image_features(prepared)
    second = extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1))
    assert first.summary["computed"] > 0 and second.summary["computed"] == 0
    assert second.summary["source"]["cached"] == first.summary["images"] - first.summary["source"]["failed"]
    after = load_image_features(prepared)
    assert before[0] == after[0] and np.array_equal(before[1], after[1])


def test_interrupted_run_resumes_where_it_stopped(prepared, monkeypatch):
    calls = {"n": 0}
    original = FrozenBackbone.forward

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(FrozenBackbone, "forward", flaky)
    config = ImagesConfig(noise="keep", workers=0, threads=1, batch_size=4, shard_size=4)
    with pytest.raises(KeyboardInterrupt):
        extract_images(prepared, config)
    assert not (prepared / "image_features.parquet").exists()
    monkeypatch.setattr(FrozenBackbone, "forward", original)
    resumed = extract_images(prepared, config)
    assert resumed.summary["source"]["cached"] >= 8  # the two finished batches were kept
    full = resumed.summary["computed"] + resumed.summary["source"]["cached"]
    assert full == resumed.summary["images"] - resumed.summary["source"]["failed"]


def test_drop_mode_removes_selfies_only(prepared, source):
    result = extract_images(prepared, ImagesConfig(noise="drop", workers=0, threads=1))
    status, persons = _status(prepared), _persons(source)
    dropped = {n for n, row in status.items() if row["status"] == "dropped_portrait"}
    selfies = {n for n, p in persons.items() if p == "selfie"}
    assert dropped and dropped <= selfies and len(dropped) >= 0.6 * len(selfies)
    for name, person in persons.items():
        if person == "none":
            assert float(status[name]["portrait_ratio"]) == 0.0, (name, status[name])
    ids, _ = load_image_features(prepared)
    for name in dropped:
        single = f"{Path(name).stem}_1.jpg" not in status
        assert (Path(name).stem in ids) != single  # a selfie post keeps a vector only through its second image
    assert result.summary["status"]["dropped_portrait"] == len(dropped)


@pytest.mark.slow  # two image runs, one inpainting: 6 s here under load
def test_switching_to_inpaint_only_computes_the_inpainted_images(prepared, source):
    extract_images(prepared, ImagesConfig(noise="drop", workers=0, threads=1))
    result = extract_images(
        prepared,
        ImagesConfig(noise="inpaint", workers=0, threads=1, inpaint=InpaintConfig(method="telea"), thumbnails=3),
    )
    status, persons = _status(prepared), _persons(source)
    inpainted = {n for n, row in status.items() if row["status"] == "inpainted"}
    assert inpainted and inpainted <= {n for n, p in persons.items() if p in ("tourist", "selfie")}
    assert result.summary["computed"] == len(inpainted)
    thumbs = list((prepared / "image_cache" / "thumbnails").glob("*.jpg"))
    assert len(thumbs) == min(3, len(inpainted)) and Image.open(thumbs[0]).format == "JPEG"


@pytest.mark.slow  # DataLoader worker processes: 8 s here under load
def test_dataloader_workers_give_the_same_vectors(prepared, tmp_path):
    extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1, cache_dir=str(tmp_path / "c0")))
    in_process = load_image_features(prepared)
    extract_images(prepared, ImagesConfig(noise="keep", workers=1, batch_size=5, cache_dir=str(tmp_path / "c1")))
    with_workers = load_image_features(prepared)
    assert in_process[0] == with_workers[0]
    np.testing.assert_allclose(in_process[1], with_workers[1], atol=1e-5)


def test_missing_mediapipe_fails_before_any_work(prepared, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingDependency, match="mediapipe"):
        extract_images(prepared, ImagesConfig(noise="drop"))
    assert not (prepared / "image_cache").exists()
    extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1))  # keep mode needs no mediapipe


def test_cli(prepared, capsys, tmp_path):
    from postloc.cli import images as images_cli

    parser = argparse.ArgumentParser(prog="postloc")
    images_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["images", str(prepared), "--image-noise", "keep", "--workers", "0", "--threads", "1", "--quiet"]
    )
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "efficientnet-lite0" in out and "image_features.parquet" in out
    args = parser.parse_args(["images", "--list-backbones"])
    assert args.run(args) == 0 and "| vgg19 | 512 |" in capsys.readouterr().out
    with pytest.raises(PostlocError, match="not a prepared dataset"):
        args = parser.parse_args(["images", str(tmp_path / "nothing")])
        args.run(args)


@pytest.mark.slow
def test_patchmatch_inpainting_with_two_workers_and_mobilenet(prepared, source):
    """The heavier combination: PatchMatch in two DataLoader workers, the other offline backbone."""
    result = extract_images(prepared, ImagesConfig(backbone="mobilenet-v2", noise="inpaint", workers=2, batch_size=4))
    ids, matrix = load_image_features(prepared)
    assert matrix.shape[1] == 1280 and result.summary["status"].get("inpainted", 0) > 0
    status, persons = _status(prepared), _persons(source)
    for name, row in status.items():
        if row["status"] == "inpainted":
            assert persons[name] in ("tourist", "selfie")
    assert len(list((prepared / "image_cache" / "thumbnails").glob("*.jpg"))) == result.summary["status"]["inpainted"]


def test_an_unexpected_error_in_one_image_does_not_stop_the_batch(prepared, monkeypatch):
    from postloc.vision import work

    original = work.Preprocessing.__call__

    def sometimes(self, image):
        if image.size == (160, 110):  # the converted odd files
            raise RuntimeError("simulated failure in a model")
        return original(self, image)

    monkeypatch.setattr(work.Preprocessing, "__call__", sometimes)
    result = extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1))
    status = _status(prepared)
    assert status["cmyk.jpg"]["status"] == "processing_error" and "simulated" in status["cmyk.jpg"]["note"]
    assert result.summary["status"]["processing_error"] == len(EXPECTED_CONVERTED) - 1  # turned.jpg is 110x160
    assert result.summary["status"]["kept"] > 20


@pytest.mark.slow  # DataLoader worker processes after MediaPipe: 10 s here under load
def test_workers_still_run_after_mediapipe_was_used_in_this_process(prepared):
    """A forked copy of live mediapipe graphs aborts; the pipeline spawns its workers then."""
    from postloc.vision.portrait import PersonSegmenter

    PersonSegmenter().measure(Image.open(DATA / "messi5.jpg").convert("RGB"))
    result = extract_images(prepared, ImagesConfig(noise="drop", workers=1, batch_size=16))
    assert result.summary["status"]["kept"] > 20 and result.summary["status"].get("dropped_portrait", 0) > 0


def test_folded_backbone_gives_the_vectors_of_the_network_as_loaded(prepared, tmp_path):
    plain_config = ImagesConfig(noise="keep", workers=0, threads=1, fold=False, micro_batch=4)
    extract_images(prepared, replace(plain_config, cache_dir=str(tmp_path / "plain")))
    plain = load_image_features(prepared)
    result = extract_images(prepared, ImagesConfig(noise="keep", workers=0, threads=1, cache_dir=str(tmp_path / "f")))
    folded = load_image_features(prepared)
    assert result.summary["settings"]["fold"] is True and result.summary["settings"]["micro_batch"] == 2
    assert plain[0] == folded[0]
    assert np.abs(folded[1] - plain[1]).max() <= 1e-4 * np.abs(plain[1]).max()


def test_cli_draft_side(prepared, tmp_path):
    from postloc.cli import images as images_cli

    parser = argparse.ArgumentParser(prog="postloc")
    images_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    base = ["images", str(prepared), "--image-noise", "keep", "--workers", "0", "--threads", "1", "--quiet"]
    args = parser.parse_args([*base, "--draft-side", "256", "--cache", str(tmp_path / "c")])
    assert args.run(args) == 0
    summary = json.loads((prepared / "image_summary.json").read_text())
    assert summary["settings"]["decode"]["draft_side"] == 256
    args = parser.parse_args([*base, "--draft-side", "0", "--cache", str(tmp_path / "c")])
    assert args.run(args) == 0
    assert json.loads((prepared / "image_summary.json").read_text())["settings"]["decode"]["draft_side"] is None
    with pytest.raises(PostlocError, match="draft-side"):
        args = parser.parse_args([*base, "--draft-side", "-1"])
        args.run(args)
