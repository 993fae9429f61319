"""Photos at prediction time take training's path: the bounded reader, the portrait filter, the feature cache.

A run is trained on a synthetic set with planted selfies after ``postloc images --image-noise drop``;
``postloc predict`` over the same photos must drop the same selfies, reuse the vectors of the
prepared folder's cache, and report honestly what it did with every photo.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from postloc.inference import batch
from postloc.inference.images import FeaturizerInfo, PhotoFeatures
from postloc.vision.decode import UNREADABLE
from serve_support import mean_colour_featurizer, png_bytes, small_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _predict_within(seconds: float, **kwargs) -> dict:
    """``predict_file`` in a thread: a hang (a FIFO waiting for a writer) fails the test instead of the suite."""
    result: dict = {}

    def target():
        result["counts"] = batch.predict_file(**kwargs)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"predict did not finish within {seconds} s"
    return result["counts"]


@pytest.mark.skipif(not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"), reason="needs /dev/zero and FIFOs")
def test_a_device_or_fifo_named_as_a_photo_is_unreadable_not_read(tmp_path_factory, tmp_path):
    run = small_run(tmp_path_factory)
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # opening it for reading would wait forever for a writer
    (tmp_path / "a.png").write_bytes(png_bytes())
    source = tmp_path / "posts.jsonl"
    source.write_text(
        json.dumps({"id": "1", "text": "x", "image": ["/dev/zero", "a.png"]})
        + "\n"
        + json.dumps({"id": "2", "text": "y", "image": [str(fifo)]})
        + "\n"
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        counts = _predict_within(
            60,
            run=run,
            source=source,
            out=tmp_path / "out.jsonl",
            progress=False,
            featurizer=mean_colour_featurizer().featurizer,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 60
    assert peak < 64 * 1024 * 1024  # /dev/zero was not read into memory
    assert counts["photos"] == {"kept": 1, UNREADABLE: 2} and counts["images_used"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"]
    assert "2 unreadable (unreadable 2)" in batch.photo_summary(counts["photos"])


def test_an_oversized_photo_is_refused_by_size_before_it_is_read(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as handle:
        handle.truncate(65 * 1024 * 1024)  # sparse: larger than the decoder's max_bytes, costs no disk
    photos = PhotoFeatures(mean_colour_featurizer(), 10**6)
    outcome = photos.from_path(big)
    assert outcome.status == "too_large" and outcome.vector is None


# --- a run trained with portrait filtering ---------------------------------------------------------


@pytest.fixture(scope="module")
def filtered_run(tmp_path_factory):
    """Synthetic photos with planted selfies -> prepare -> ``postloc images`` (drop) -> a small MRLF run."""
    from postloc.vision import weights_available
    from postloc.vision.portrait import mediapipe_available

    if not mediapipe_available() or not weights_available("efficientnet-lite0"):
        pytest.skip("needs mediapipe and the efficientnet-lite0 weights")
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate
    from postloc.training import RunConfig, TrainerConfig, train
    from postloc.vision.pipeline import ImagesConfig, extract_images
    from serve_support import SMALL

    base = tmp_path_factory.mktemp("filtered")
    made = generate(
        base / "syn",
        SyntheticPostsConfig(
            pois=3, posts_per_poi=8, seed=5, width=160, height=120, selfie_rate=0.35, tourist_rate=0.1
        ),
    )
    prepare(
        made.out_dir / "posts.jsonl",
        base / "prepared",
        PrepareConfig(min_hashtag_count=1, min_poi_posts=1, min_poi_users=1),
        pois_csv=made.out_dir / "pois.csv",
    )
    extract_images(base / "prepared", ImagesConfig(noise="drop", workers=0, threads=1))
    train(
        base / "prepared",
        base / "run",
        RunConfig(
            "mrlf", dict(SMALL), TrainerConfig(epochs=1, batch_size=32, progress=False, threads=1, early_stopping=0)
        ),
    )
    return base


def _trained_rows(base: Path) -> dict[str, dict[str, str]]:
    with open(base / "prepared" / "image_status.csv", encoding="utf-8") as handle:
        return {str(Path(row["path"]).resolve()): row for row in csv.DictReader(handle)}


def _trained_status(base: Path) -> dict[str, str]:
    return {path: row["status"] for path, row in _trained_rows(base).items()}


def _source(base: Path, out: Path) -> tuple[Path, Counter]:
    """The prepared posts as a JSONL input (absolute photo paths) and the statuses training gave their photos."""
    posts = pd.read_parquet(base / "prepared" / "posts.parquet", columns=["id", "text", "hashtags", "image"])
    status = _trained_status(base)
    expected: Counter = Counter()
    with open(out, "w", encoding="utf-8") as handle:
        for post in posts.itertuples():
            images = [str((base / "prepared" / p).resolve()) for p in (post.image if post.image is not None else [])]
            expected.update(status[p] for p in images)
            handle.write(
                json.dumps({"id": post.id, "text": post.text, "hashtags": list(post.hashtags), "image": images}) + "\n"
            )
    return out, expected


@pytest.fixture
def embed_calls(monkeypatch):
    """Counts the photos that reach the backbone."""
    from postloc.vision.backbones import FrozenBackbone

    calls = Counter()
    original = FrozenBackbone.embed

    def counting(self, images, *args, **kwargs):
        calls["photos"] += len(images)
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(FrozenBackbone, "embed", counting)
    return calls


@pytest.mark.slow  # trains a run on real photos: about a minute on 2 cores
def test_predict_drops_portrait_noise_as_training_did_and_reuses_the_cache(filtered_run, tmp_path, embed_calls):
    source, expected = _source(filtered_run, tmp_path / "posts.jsonl")
    assert expected["dropped_portrait"] >= 2 and expected["kept"] >= 5  # the synthetic set planted selfies

    # the prepared folder's cache already holds every ratio and vector: nothing is computed
    counts = batch.predict_file(filtered_run / "run", source, tmp_path / "out.jsonl", progress=False)
    assert counts["photos"] == dict(expected) and embed_calls["photos"] == 0
    assert "dropped as portrait noise" in batch.photo_summary(counts["photos"])

    # without the cache the photos are measured again (mediapipe) and give the same decisions
    shutil.rmtree(filtered_run / "prepared" / "image_cache")
    (filtered_run / "prepared" / "image_cache" / "features").mkdir(parents=True)
    counts = batch.predict_file(filtered_run / "run", source, tmp_path / "out.jsonl", progress=False)
    assert counts["photos"] == dict(expected)
    kept_contents = {row["sha256"] for row in _trained_rows(filtered_run).values() if row["status"] == "kept"}
    assert embed_calls["photos"] == len(kept_contents)  # each content once

    # ... and stored: a second predict over the same photos hits the cache
    counts = batch.predict_file(filtered_run / "run", source, tmp_path / "out.jsonl", progress=False)
    assert counts["photos"] == dict(expected) and embed_calls["photos"] == len(kept_contents)


@pytest.mark.slow  # trains a run on real photos: about a minute on 2 cores
def test_without_mediapipe_the_filter_is_reported_not_skipped_silently(filtered_run, tmp_path, monkeypatch, capsys):
    from postloc.cli import main
    from postloc.vision import portrait
    from postloc.vision.deps import MissingDependency

    def missing():
        raise MissingDependency("mediapipe")

    monkeypatch.setattr(portrait, "require_mediapipe", missing)
    source, expected = _source(filtered_run, tmp_path / "posts.jsonl")
    shutil.rmtree(filtered_run / "prepared" / "image_cache", ignore_errors=True)
    assert main(["predict", str(filtered_run / "run"), str(source), "-o", str(tmp_path / "out.jsonl"), "--quiet"]) == 0
    captured = capsys.readouterr()
    usable = expected["kept"] + expected["dropped_portrait"]
    assert f"{usable} of the used without the portrait filter" in captured.out
    assert captured.err.count("portrait-filtered in training") == 1 and "mediapipe" in captured.err


@pytest.mark.slow  # trains a run on real photos: about a minute on 2 cores
def test_explain_and_serve_drop_a_selfie_upload(filtered_run):
    from postloc.inference.explain import photo_vector
    from postloc.inference.predictor import load

    status = _trained_status(filtered_run)
    selfie = next(p for p, s in status.items() if s == "dropped_portrait")
    kept = next(p for p, s in status.items() if s == "kept")
    predictor = load(filtered_run / "run")
    vector, note = photo_vector(filtered_run / "run", predictor, selfie)
    assert vector is None and "dropped_portrait" in note
    vector, _ = photo_vector(filtered_run / "run", predictor, kept)
    assert vector is not None and vector.shape == (1280,)
    if "fastapi" not in sys.modules:
        pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from postloc.serve.app import build_app

    with TestClient(build_app(filtered_run / "run"), base_url="http://localhost") as client:
        answer = client.post(
            "/v1/predict", files={"photo": ("x.jpg", Path(selfie).read_bytes(), "image/jpeg")}, data={"text": "hello"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["image"]["used"] is False and "portrait" in answer.json()["image"]["message"]


def test_a_bare_featurizer_uses_photos_as_they_are(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    photos = PhotoFeatures(FeaturizerInfo(mean_colour_featurizer().featurizer, "test"))
    vector, outcomes = photos.post_vector([str(tmp_path / "a.png"), str(tmp_path / "missing.png")])
    assert vector is not None and [o.status for o in outcomes] == ["kept", "missing"]
