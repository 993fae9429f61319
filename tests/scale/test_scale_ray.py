"""``--engine ray``: batch prediction and image features on a local Ray, checked against the local path.

Ray starts once for the module (about 10 s here); the engine reuses an initialised Ray as it is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from postloc.cli import main
from postloc.errors import PostlocError
from postloc.inference import batch
from postloc.inference.images import FeaturizerInfo, PhotoFeatures
from postloc.inference.predictor import load
from serve_support import decisive_tag, mean_colour_featurizer, png_bytes, small_run

DATA = Path(__file__).parents[1] / "support" / "photos"


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_run(tmp_path_factory)


def _posts(n: int, tag: str, start: int = 0) -> list[dict]:
    posts = []
    for i in range(start, start + n):
        post = {"id": f"p{i}", "text": f"caption {i}", "hashtags": [tag] if i % 2 else ["unknown"]}
        if i % 3 == 0:
            post["image"] = ["a.png", "bad.jpg"] if i % 2 else ["bad.jpg"]
        posts.append(post)
    return posts


def _read_folder(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_nothing_imports_ray_by_default():
    code = (
        "import sys, postloc, postloc.scale, postloc.cli.predict, postloc.inference.batch, postloc.cli.images\n"
        "from postloc.cli import build_parser\n"
        "build_parser()\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    from postloc.scale import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(PostlocError, match=r"pip install 'postloc\[ray\]'"):
        require_ray()
    source = tmp_path / "posts.parquet"
    pd.DataFrame(_posts(3, "x")).to_parquet(source)
    run = tmp_path / "run"  # never opened: the missing extra is reported first
    code = main(["predict", str(run), str(source), "-o", str(tmp_path / "out"), "--engine", "ray", "--quiet"])
    assert code == 2 and "pip install 'postloc[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["images", str(tmp_path), "--engine", "ray", "--quiet"]) == 2
    assert "pip install 'postloc[ray]'" in capsys.readouterr().err


@pytest.mark.slow  # starts a local Ray cluster and trains a run: 84 s here under load
def test_predictions_equal_the_local_predictor(ray_local, run, tmp_path):
    from postloc.scale import predict_ray

    tag, poi = decisive_tag(run)
    folder = tmp_path / "posts"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "bad.jpg").write_bytes(b"not an image")
    posts = _posts(30, tag)
    for k in range(3):  # a folder of three input files
        pd.DataFrame(posts[k * 10 : (k + 1) * 10]).to_parquet(folder / f"chunk-{k}.parquet")
    featurizer = mean_colour_featurizer().featurizer
    out = tmp_path / "predictions"
    counts = predict_ray(run, folder, out, workers=2, top_k=3, batch_size=4, threads=1, featurizer=featurizer)
    assert counts["posts"] == 30 and counts["skipped"] == 0 and counts["files"] >= 2  # streamed in several files
    got = _read_folder(out)
    assert list(got["id"]) == [p["id"] for p in posts]  # files in name order keep the input order
    table = pq.read_table(sorted(out.glob("part-*.parquet"))[0])
    assert table.schema.equals(pq.read_schema(_local_parquet(run, posts, folder, tmp_path, featurizer)))

    predictor = load(run)
    photos = PhotoFeatures(FeaturizerInfo(featurizer, "test"), 10**8)
    records = []
    for post in posts:
        record = {"id": post["id"], "text": post["text"], "hashtags": post["hashtags"]}
        vector, _ = photos.post_vector([str(folder / p) for p in post.get("image", [])])
        if vector is not None:
            record["image_vector"] = vector
        records.append(record)
    assert sum("image_vector" in r for r in records) == 5  # photos did reach the model
    expected = predictor.predict(records, top_k=3)
    for (_, row), exp in zip(got.iterrows(), expected, strict=True):
        assert [p["poi"] for p in row["predictions"]] == [e["poi"] for e in exp]
        assert np.allclose([p["probability"] for p in row["predictions"]], [e["probability"] for e in exp], atol=1e-6)
    assert got["predictions"][1][0]["poi"] == poi


def _local_parquet(run, posts, folder, tmp_path, featurizer) -> Path:
    """``postloc predict``'s own Parquet output for the same posts (the schema both engines share)."""
    source = folder.parent / "all.jsonl"
    source.write_text(
        "".join(json.dumps({**p, "image": [str(folder / i) for i in p.get("image", [])]}) + "\n" for p in posts)
    )
    out = tmp_path / "local.parquet"
    batch.predict_file(run, source, out, top_k=3, progress=False, featurizer=featurizer)
    return out


@pytest.mark.slow
def test_jsonl_input_bad_records_and_the_command_line(ray_local, run, tmp_path, capsys):
    tag, _ = decisive_tag(run)
    source = tmp_path / "posts.jsonl"
    lines = [json.dumps(p) for p in _posts(6, tag)] + ['{"id": "bad", "hashtags": "notalist"}']
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = [
        "predict",
        str(run),
        str(source),
        "-o",
        str(out),
        "--engine",
        "ray",
        "--workers",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--no-images",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "posts.jsonl" in err and "hashtags" in err and not out.exists()  # names the file and the key
    assert main(args + ["--skip-bad"]) == 0
    assert "6 posts" in capsys.readouterr().out
    assert sorted(_read_folder(out)["id"]) == sorted(f"p{i}" for i in range(6))


def _prepared(folder: Path, images: dict[str, list[str]]) -> Path:
    """The two files `postloc images` reads from a prepared folder (id + image paths)."""
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    pd.DataFrame({"id": list(images), "image": list(images.values())}).to_parquet(folder / "posts.parquet")
    return folder


@pytest.fixture
def photo_posts(tmp_path) -> dict[str, list[str]]:
    """Posts with good photos, a cut-off JPEG, an HTML page saved as .jpg and a missing file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("orange.jpg", "building.jpg", "squirrel_cls.jpg"):
        shutil.copy(DATA / name, photos / name)
    (photos / "corrupt.jpg").write_bytes((DATA / "orange.jpg").read_bytes()[:400])  # a cut-off download
    (photos / "page.jpg").write_text("<html>not found</html>")
    p = lambda name: str(photos / name)  # noqa: E731
    return {
        "a": [p("orange.jpg"), p("building.jpg")],
        "b": [p("squirrel_cls.jpg")],
        "c": [p("corrupt.jpg")],
        "d": [],
        "e": [p("missing.jpg"), p("page.jpg"), p("orange.jpg")],
    }


def _local_features(tmp_path: Path, images: dict[str, list[str]]) -> Path:
    from postloc.vision.pipeline import ImagesConfig, extract_images

    local = _prepared(tmp_path / "local", images)
    extract_images(local, ImagesConfig(noise="keep", workers=0, threads=1, thumbnails=0))
    return local


def _check_same_artifacts(local: Path, remote: Path) -> pd.DataFrame:
    """Same image_features.parquet (what `postloc train` reads) and statuses; returns the per-image rows."""
    from postloc.data.image_features import load_image_features

    want, got = load_image_features(local), load_image_features(remote)
    assert got[0] == want[0] == ["a", "b", "e"]
    assert np.allclose(got[1], want[1], atol=1e-4, rtol=1e-4)
    rows = _read_folder(remote / "image_vectors")
    assert len(rows) == 7
    status = dict(zip(rows["path"].map(lambda s: Path(s).name), rows["status"], strict=True))
    assert status["missing.jpg"] == "missing" and status["page.jpg"] == "not_image"
    assert status["corrupt.jpg"] in ("truncated", "corrupt") and status["orange.jpg"] == "kept"
    assert rows.loc[rows["status"] != "kept", "vector"].isna().all()
    kept = rows[rows["status"] == "kept"]
    assert kept["sha256"].str.len().eq(64).all() and len(kept["vector"].iloc[0]) == 1280
    local_status = pd.read_csv(local / "image_status.csv").set_index("path")["status"]
    remote_status = pd.read_csv(remote / "image_status.csv").set_index("path")["status"]
    assert remote_status.sort_index().to_dict() == local_status.sort_index().to_dict()
    summary = json.loads((remote / "image_summary.json").read_text())
    assert summary["backbone"] == "efficientnet-lite0" and summary["engine"]["name"] == "ray"
    return rows


def test_embed_actor_and_pooling_equal_the_local_pipeline(tmp_path, photo_posts, one_torch_thread):
    """The actor's per-image rows and the driver's pooling, run in this process (no Ray needed)."""
    import pyarrow as pa

    from postloc.scale.ray_features import EmbedActor, explode_images, write_artifacts
    from postloc.vision.backbones import backbone_spec
    from postloc.vision.pipeline import ImagesConfig
    from postloc.vision.work import WorkSettings

    local = _local_features(tmp_path, photo_posts)
    remote = _prepared(tmp_path / "remote", photo_posts)
    config = ImagesConfig(noise="keep")
    spec = backbone_spec(config.backbone)
    settings = WorkSettings(
        noise="keep",
        preprocessing=spec.preprocessing,
        portrait=config.portrait,
        inpaint=config.inpaint,
        decode=config.decode,
        thumbnails=False,
    )
    actor = EmbedActor(settings, config.backbone, None, threads=1)
    exploded = explode_images(pd.read_parquet(remote / "posts.parquet"), str(remote))
    (remote / "image_vectors").mkdir()
    for k, start in enumerate(range(0, len(exploded), 3)):  # three batches, three files, as Ray would write them
        table = actor(exploded.iloc[start : start + 3].reset_index(drop=True))
        assert isinstance(table, pa.Table)
        pq.write_table(table, remote / "image_vectors" / f"part-{k:06d}-x.parquet")
    backbone = actor.backbone
    write_artifacts(
        remote,
        pd.read_parquet(remote / "posts.parquet"),
        remote / "image_vectors",
        config,
        backbone,
        1.0,
        0.0,
        workers=1,
        threads=1,
    )
    _check_same_artifacts(local, remote)


@pytest.mark.slow
def test_image_features_on_ray_from_the_command_line(ray_local, tmp_path, photo_posts, capsys, one_torch_thread):
    local = _local_features(tmp_path, photo_posts)
    remote = _prepared(tmp_path / "ray", photo_posts)
    code = main(
        [
            "images",
            str(remote),
            "--engine",
            "ray",
            "--workers",
            "2",
            "--threads",
            "1",
            "--batch-size",
            "2",
            "--image-noise",
            "keep",
            "--quiet",
        ]
    )
    assert code == 0 and "3 of 5 have an image vector" in capsys.readouterr().out
    _check_same_artifacts(local, remote)
    assert len(list((remote / "image_vectors").glob("part-*.parquet"))) >= 2  # streamed as several files
