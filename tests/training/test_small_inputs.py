"""Small inputs, long names, odd characters and stdin: issue 29's "small" defects.

Every registered model on 300 posts of 6 users with an empty val split (what a user-disjoint
split of so few users can give) ends in a trained run, never a traceback; a legal 250-byte output
name can be written (the temporary name is short, its crash cleanup still works); DuckDB is given
paths with ``? * [ ' "`` and spaces; ``postloc predict RUN -`` reads posts from standard input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
from postloc.errors import EmptyDatasetError
from postloc.models.registry import create_model, get_model, list_models
from postloc.training import RunConfig, TrainerConfig, train

# over ~2 s each on the shared 2-core machine (deepgeo 5.6 s, mrlf-plus 3.1 s, stack 2.6 s)
SLOW_MODELS = {"deepgeo", "mrlf-plus", "stack"}


@pytest.fixture(scope="module")
def six_users(tmp_path_factory):
    """300 posts of 6 users at 4 POIs, no val posts, with image features (every model can run)."""
    config = SyntheticFeaturesConfig(
        n_pois=4, n_posts=300, n_users=6, val=0.0, image_dim=8, caption_words=(3, 8), seed=3
    )
    return write_synthetic_prepared(tmp_path_factory.mktemp("six") / "prepared", config)


def _tiny_run(name: str) -> RunConfig:
    trainer = TrainerConfig(epochs=1, batch_size=32, progress=False, threads=1, early_stopping=0)
    return RunConfig(model=name, params=dict(get_model(name).quick_params), trainer=trainer)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in list_models()]
)
def test_every_model_trains_on_six_users_with_an_empty_val_split(name, six_users, tmp_path, one_torch_thread):
    from postloc.data.image_features import attach_image_features, load_image_features
    from postloc.data.prepared import load_prepared
    from postloc.models.registry import load_model

    result = train(six_users, tmp_path / "run", _tiny_run(name))
    assert result.summary["status"] == "complete" and result.summary["val_posts"] == 0
    test = attach_image_features(load_prepared(six_users).split("test").head(5), load_image_features(six_users))
    proba = load_model(tmp_path / "run" / "best").predict_proba(test)
    assert proba.shape == (5, 4) and np.allclose(proba.sum(axis=1), 1.0)


def test_the_slow_list_names_registered_models():
    assert set(list_models()) >= SLOW_MODELS


def _posts(n: int = 40) -> pd.DataFrame:
    words = ["tower", "bridge", "harbour", "museum"]
    return pd.DataFrame(
        {
            "text": [f"{words[i % 4]} view {i}" for i in range(n)],
            "hashtags": [[words[i % 4]] for i in range(n)],
            "poi": [f"p{i % 4}" for i in range(n)],
        }
    )


@pytest.mark.parametrize("val", [None, "empty"])
def test_tfidf_logreg_without_val_posts_uses_one_value_of_its_grid(val):
    posts = _posts()
    model = create_model("tfidf-logreg", {}).fit(posts, posts.head(0) if val else None)
    assert model.C_ in model.config.c_grid
    assert model.predict(posts.head(4)) == ["p0", "p1", "p2", "p3"]


def test_tfidf_logreg_refuses_a_non_positive_grid_value_in_one_line():
    from postloc.errors import PostlocError

    posts = _posts()
    with pytest.raises(PostlocError, match="c_grid"):
        create_model("tfidf-logreg", {"c_grid": [1.0, 0.0]}).fit(posts, posts)


@pytest.mark.parametrize("name", ["majority", "tfidf-logreg"])
def test_no_training_posts_is_a_one_line_error(name):
    with pytest.raises(EmptyDatasetError, match="no training posts"):
        create_model(name, {}).fit(_posts().head(0), classes=["p0", "p1"])


# --- long output names: temporaries stay within NAME_MAX, crash cleanup still finds them --------

LONG = "r" * 246 + ".txt"  # 250 bytes: a legal name, too long for ".NAME.PID-xxxxxxxx.tmp"
LONG_UTF8 = "é" * 123 + ".txt"  # 250 bytes in UTF-8


def _killed_writer(code: str) -> None:
    """Run ``code`` in a child that SIGKILLs itself at the marked moment, as a crash would."""
    import subprocess
    import sys

    prelude = (
        "import os, signal\nfrom postloc.io import atomic\ndef die(*_):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr


@pytest.mark.parametrize("name", [LONG, LONG_UTF8])
def test_a_legal_250_byte_output_name_is_written(tmp_path, name):
    from postloc.io.atomic import atomic_open, write_folder_atomically

    with atomic_open(tmp_path / name) as handle:
        handle.write("one")
    with atomic_open(tmp_path / name) as handle:  # replacing it too
        handle.write("two")
    folder = tmp_path / name.replace(".txt", ".dir")
    write_folder_atomically(folder, lambda work: (work / "a").write_text("1"))
    write_folder_atomically(folder, lambda work: (work / "a").write_text("2"))  # old one moved aside, removed
    assert (tmp_path / name).read_text() == "two" and (folder / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, folder.name])


def test_temporaries_of_a_killed_writer_of_a_long_name_are_removed_by_the_next_write(tmp_path):
    from postloc.io.atomic import atomic_open, write_folder_atomically

    target, folder = tmp_path / LONG, tmp_path / ("d" * 250)
    _killed_writer(f"with atomic.atomic_open({str(target)!r}) as h:\n    h.write('half'); h.flush(); die()\n")
    _killed_writer(
        f"atomic.write_folder_atomically({str(folder)!r}, lambda w: (w / 'a').write_text('half') and die())\n"
    )
    assert len(list(tmp_path.iterdir())) == 2  # one hidden temporary file, one hidden temporary folder
    with atomic_open(target) as handle:
        handle.write("whole")
    write_folder_atomically(folder, lambda work: (work / "a").write_text("whole"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LONG, folder.name])


def test_a_long_named_folder_left_aside_by_a_kill_is_put_back(tmp_path):
    from postloc.io.atomic import recover_folder, write_folder_atomically

    folder = tmp_path / ("d" * 250)
    write_folder_atomically(folder, lambda work: (work / "a").write_text("old"))
    # killed between "old folder renamed aside" and "new folder renamed in"
    _killed_writer(
        "real, calls = os.replace, []\n"
        "def replace(a, b):\n"
        "    calls.append(a)\n"
        "    real(a, b)\n"
        "    if len(calls) == 1: die()\n"
        "atomic.os.replace = replace\n"
        f"atomic.write_folder_atomically({str(folder)!r}, lambda w: (w / 'a').write_text('new'))\n"
    )
    assert not folder.exists()
    assert recover_folder(folder) and (folder / "a").read_text() == "old"
    write_folder_atomically(folder, lambda work: (work / "a").write_text("new"))  # and the next write cleans up
    assert [p.name for p in tmp_path.iterdir()] == [folder.name] and (folder / "a").read_text() == "new"


# --- DuckDB engine: output paths are never read as SQL, globs or connection strings ------------

ODD_NAMES = ["dd?y", "a*b", "x[1]", "[ab]", "it's", 'say "hi"', "with space", "back\\slash", "a{b,c}"]


def _labelled_posts(n_pois: int = 3, per_poi: int = 12) -> list[dict]:
    return [
        {
            "id": f"p{k}-{i}",
            "text": f"Evening walk number {i} by the old river #place{k} #city",
            "poi": f"place-{k}",
            "lat": 51.03 + 0.01 * k,
            "lon": 13.70,
            "user": f"u{k}-{i % 4}",
        }
        for k in range(n_pois)
        for i in range(per_poi)
    ]


def _small_prepare(engine: str):
    from postloc import PrepareConfig

    return PrepareConfig(
        engine=engine,
        min_hashtag_count=2,
        min_poi_posts=5,
        min_poi_users=2,
        languages=(),
        train=0.5,
        val=0.25,
        test=0.25,
    )


@pytest.mark.parametrize("name", [*ODD_NAMES, "odd?[*] parent/out"])
def test_duckdb_engine_writes_outputs_whose_paths_hold_sql_and_glob_characters(jsonl_file, tmp_path, name):
    from postloc import prepare

    source = jsonl_file(_labelled_posts())
    memory = prepare(source, tmp_path / "memory", _small_prepare("memory"))
    out = tmp_path / "odd" / name
    duck = prepare(source, out, _small_prepare("duckdb"))
    assert duck.summary == memory.summary and memory.summary["all"]["posts"] == 36
    assert (out / "posts.parquet").read_bytes() == (tmp_path / "memory" / "posts.parquet").read_bytes()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no scratch left beside it
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nor inside


def test_cli_prepare_duckdb_into_dd_question_mark_y(jsonl_file, tmp_path, monkeypatch, capsys):
    from postloc.cli import main

    monkeypatch.chdir(tmp_path)
    source = jsonl_file(_labelled_posts())
    args = ["prepare", str(source), "--engine", "duckdb", "--out", "dd?y", "--min-poi-posts", "5"]
    assert main([*args, "--min-poi-users", "2", "--min-hashtag-count", "2", "--languages", "", "--quiet"]) == 0
    assert (tmp_path / "dd?y" / "manifest.json").exists()


def test_a_connection_under_an_odd_path_is_bounded_and_spills_into_it(tmp_path):
    from postloc.data.prepare.duckdb_connection import connect, plain_path

    work = tmp_path / "q?x\\y"
    work.mkdir()
    with plain_path(work) as plain:
        assert "?" not in str(plain) and "\\" not in str(plain)
        con = connect(plain / ".duckdb", "16MB")
        try:  # ~60 MB of rows under a 16 MB limit: spilled into the work folder, not failed, not elsewhere
            con.execute("CREATE TABLE big AS SELECT repeat('x', 200) || range::VARCHAR AS s FROM range(300000)")
            assert con.execute("SELECT max(s) FROM big").fetchone()[0].endswith("99999")
            assert any((work / ".duckdb" / "tmp").iterdir())
        finally:
            con.close()
    assert not plain.exists() and work.is_dir()  # the alias is gone, the folder it named is not


# --- postloc predict RUN -: posts from standard input --------------------------------------------


@pytest.fixture(scope="module")
def small_run(six_users, tmp_path_factory):
    return train(six_users, tmp_path_factory.mktemp("run") / "run", _tiny_run("tfidf-logreg")).run_dir


def _predict_stdin(run, stdin: bytes, *extra: str):
    import subprocess
    import sys

    command = [sys.executable, "-m", "postloc", "predict", str(run), "-", "-o", "-", "--quiet", *extra]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120)


def test_predict_reads_jsonl_posts_from_stdin_with_the_usual_record_bound(small_run):
    import json

    from postloc.data.readers import MAX_RECORD_BYTES

    posts = [json.dumps({"id": f"s{i}", "text": "a walk by the water", "hashtags": ["city"]}) for i in range(3)]
    too_long = json.dumps({"id": "huge", "text": "x" * MAX_RECORD_BYTES})
    stdin = "\n".join([posts[0], too_long, *posts[1:]]).encode() + b"\n"
    result = _predict_stdin(small_run, stdin, "--skip-bad")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2"] and all(r["predictions"] for r in rows)
    assert b"3 posts, 1 bad records skipped" in result.stderr


def test_a_bad_record_on_stdin_is_one_line_naming_stdin_and_its_line(small_run):
    result = _predict_stdin(small_run, b'{"id": "a", "text": "fine"}\n{"id": "b", \n')
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "stdin:2" in lines[0] and "invalid JSON" in lines[0], lines


def test_stdin_is_read_as_jsonl_only(small_run, tmp_path, capsys):
    from postloc.cli import main

    args = ["predict", str(small_run), "-", "-o", str(tmp_path / "out.jsonl"), "--format", "csv"]
    assert main(args) == 2
    assert "standard input" in capsys.readouterr().err and not (tmp_path / "out.jsonl").exists()
