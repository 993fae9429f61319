"""The out-of-core engine (``--engine duckdb``): same bytes as the default engine, bounded memory, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import postloc
from postloc import PrepareConfig, datasets, prepare
from postloc.cli import main
from postloc.data.prepare import ReadOptions

# DuckDB is an optional extra of postloc; `make test` installs it (the `scale` extra), so these
# tests run rather than skip. The last two need it absent or blocked and work either way.

SMALL = PrepareConfig(min_hashtag_count=3, min_poi_posts=10, min_poi_users=2, train=0.5, val=0.25, test=0.25)


def _outputs(folder) -> dict[str, bytes]:
    """Every output file's bytes; the manifest without the engine's own fields (engine, duckdb version)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    manifest = json.loads(files.pop("manifest.json"))
    manifest["config"].pop("engine")
    manifest["versions"].pop("duckdb", None)
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return files


def _both(source, tmp_path, config: PrepareConfig, read: ReadOptions | None = None, **kwargs):
    memory = prepare(source, tmp_path / "memory", config, read, **kwargs)
    duck = prepare(source, tmp_path / "duckdb", _with(config, engine="duckdb"), read, **kwargs)
    return memory, duck


def _with(config: PrepareConfig, **changes) -> PrepareConfig:
    from dataclasses import replace

    return replace(config, **changes)


def mixed_posts(n_places: int = 3, per_place: int = 30) -> list[dict]:
    """Posts at a few places: labelled and not, users missing, reposts, foreign and empty captions."""
    rng = np.random.default_rng(1)
    records = []
    for k in range(n_places):
        lat, lon = 51.03 + 0.01 * k, 13.70 + 0.015 * k
        for i in range(per_place):
            record = {
                "id": f"p{k}-{i}",
                "text": f"Lovely evening walk number {i} by the river #place{k} #city",
                "lat": lat + rng.normal(0, 1e-4),
                "lon": lon + rng.normal(0, 1e-4),
                "user": f"u{k}-{i % 6}" if i % 10 else None,
                "image": f"img/{k}-{i}.jpg" if i % 3 else [],
            }
            if i % 7 == 0:
                record["text"] = f"#place{k} #rare{i}"
            records.append(record)
    records += [
        {
            "id": "repost",
            "text": "Lovely evening walk number 1 by the river #place0 #city",
            "lat": records[1]["lat"],
            "lon": records[1]["lon"],
            "user": "u0-1",
        },
        {
            "id": "german",
            "text": "Das ist ein wunderschöner Abend an der Brücke",
            "lat": 51.03,
            "lon": 13.70,
            "user": "g",
        },
        {"id": "nowhere", "text": "Lovely evening walk far away from everything", "user": "far"},
        {
            "id": "outlier",
            "text": "Lovely evening walk on the far side of the hill",
            "lat": 51.5,
            "lon": 14.5,
            "user": "o",
        },
        {"id": "empty", "hashtags": ["rare-only"], "lat": 51.03, "lon": 13.70, "user": "e"},
    ]
    return records


@pytest.mark.slow  # two full Dresden runs (HDBSCAN on 17,879 points each): 18 s here at load average 4
def test_dresden_prepares_byte_identically(tmp_path):
    """The acceptance check: `postloc prepare dresden` with either engine writes the same files."""
    read = datasets.read_options("dresden")
    memory, duck = _both(datasets.path("dresden"), tmp_path, PrepareConfig(), read)
    assert duck.summary == memory.summary and memory.summary["all"]["posts"] > 3000
    assert _outputs(tmp_path / "duckdb") == _outputs(tmp_path / "memory")
    manifest = json.loads((tmp_path / "duckdb/manifest.json").read_text())
    assert manifest["config"]["engine"] == "duckdb" and manifest["config"]["memory_limit"] == "1GB"
    assert "duckdb" in manifest["versions"]
    assert sorted(p.name for p in (tmp_path / "duckdb").iterdir()) == sorted(manifest["outputs"])  # no scratch left


@pytest.mark.parametrize(
    "changes",
    [
        {},  # hdbscan (no labels)
        {"poi_method": "dbscan", "poi_eps_m": 60.0, "poi_min_samples": 5},
        {"poi_method": "grid", "poi_cell_m": 400.0},
        {"poi_method": "grid", "poi_cell_deg": 0.004},
        {"drop_duplicates": False, "drop_empty": False, "languages": ()},
        {"min_hashtag_count": 0, "min_poi_users": 1, "seed": 7, "train": 0.6, "val": 0.0, "test": 0.4},
    ],
    ids=["hdbscan", "dbscan", "grid", "grid-degrees", "keep-all", "thresholds"],
)
def test_engines_agree_on_derived_pois(jsonl_file, tmp_path, changes):
    config = _with(SMALL, **{"poi_min_samples": 5, "min_poi_posts": 15, **changes})
    memory, duck = _both(jsonl_file(mixed_posts()), tmp_path, config)
    assert duck.summary == memory.summary and memory.summary["all"]["pois"] >= 2
    assert _outputs(tmp_path / "duckdb") == _outputs(tmp_path / "memory")


def test_engines_agree_on_labels_and_known_centres(jsonl_file, tmp_path):
    records = [
        dict(r, poi=f"lab{r['id'][1]}", poi_name=f"Place {r['id'][1]}") for r in mixed_posts() if r["id"][0] == "p"
    ]
    records += [{"id": "unlabelled", "text": "Lovely evening walk by the river again", "user": "x"}]
    centres = tmp_path / "centres.csv"
    centres.write_text("poi,lat,lon,name\nlab1,51.0,13.0,Known One\n")
    _both(jsonl_file(records), tmp_path, SMALL, pois_csv=centres)
    assert _outputs(tmp_path / "duckdb") == _outputs(tmp_path / "memory")
    pois = (tmp_path / "duckdb/pois.csv").read_text()
    assert "lab1,51.0000000,13.0000000,Known One" in pois and "Place 0" in pois


@pytest.mark.slow  # DuckDB runs with worker processes: 5 s here under load
def test_parallel_workers_keep_order_and_results(jsonl_file, tmp_path):
    """--workers cleans chunks in other processes; output is the same bytes as one process."""
    records = [
        dict(r, id=f"{r['id']}-{j}", user=f"{r['user']}-{j % 3}" if r["user"] else None)
        for j in range(25)
        for r in mixed_posts()
    ]  # > 2 chunks of WORKER_CHUNK posts
    path = jsonl_file(records)
    config = _with(SMALL, engine="duckdb", min_poi_posts=50)
    prepare(path, tmp_path / "one", config)
    prepare(path, tmp_path / "two", _with(config, workers=2))
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert json.loads(two.pop("manifest.json"))["config"]["workers"] == 2
    one.pop("manifest.json")
    assert one == two


@pytest.mark.slow  # worker processes: a few seconds
def test_parallel_workers_skip_and_reject_bad_records_as_one_process(jsonl_file, tmp_path):
    """With --workers the skip report, the warnings, the outputs and the first error are one process's."""
    records = [dict(r, id=f"{r['id']}-{j}") for j in range(60) for r in mixed_posts()]  # 5,700: 3 chunks
    records[4500]["lat"] = "north"  # a bad record in the third chunk
    records[5000]["id"] = records[10]["id"]  # an id repeated across chunks
    records[2100]["created"] = "yesterday-ish"  # kept, with a warning
    path = jsonl_file(records)
    config = _with(SMALL, engine="duckdb", min_poi_posts=50)
    skip = ReadOptions(skip_bad=True)
    one = prepare(path, tmp_path / "one", config, skip)
    two = prepare(path, tmp_path / "two", _with(config, workers=2), skip)
    assert one.skip_report.to_dict() == two.skip_report.to_dict()
    assert one.skip_report.skipped == 2 and one.skip_report.warned == 1
    assert {k: v for k, v in _outputs(tmp_path / "one").items() if k != "manifest.json"} == {
        k: v for k, v in _outputs(tmp_path / "two").items() if k != "manifest.json"
    }
    with pytest.raises(postloc.errors.BadInputError) as alone:
        prepare(path, tmp_path / "three", config)
    with pytest.raises(postloc.errors.BadInputError) as parallel:
        prepare(path, tmp_path / "four", _with(config, workers=2))
    assert str(alone.value) == str(parallel.value) and ":4501:" in str(alone.value)
    assert not (tmp_path / "four").exists()


def test_tiny_memory_limit_spills_and_still_agrees(jsonl_file, tmp_path):
    """With a memory limit far below what the data would take, DuckDB spills instead of failing."""
    records = [
        dict(r, id=f"{r['id']}-{j}", text=r.get("text", "") + " and more words" * 12)
        for j in range(30)
        for r in mixed_posts()
    ]
    config = _with(SMALL, min_poi_posts=50, poi_method="grid", drop_duplicates=False)
    memory, duck = _both(jsonl_file(records), tmp_path, _with(config, memory_limit="16MB"))
    assert duck.summary == memory.summary and duck.summary["all"]["posts"] > 2000
    assert _outputs(tmp_path / "duckdb") == _outputs(tmp_path / "memory")


def test_connection_is_bounded_and_spills_into_the_work_folder(tmp_path):
    from postloc.data.prepare.duckdb_connection import connect

    con = connect(tmp_path / "scratch", "64MB")
    try:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        temp = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert limit.replace(" ", "").upper().startswith(("61.0MIB", "64.0MB", "61MIB", "64MB"))
        assert temp.startswith(str(tmp_path / "scratch"))
        # a sort of ~200 MB of rows under a 64 MB limit must spill to that folder, not fail
        con.execute(
            "CREATE TABLE big AS SELECT range AS i, repeat('x', 200) || range::VARCHAR AS s FROM range(1000000)"
        )
        top = con.execute("SELECT s FROM (SELECT s FROM big ORDER BY s DESC) LIMIT 1").fetchone()[0]
        assert top.endswith("999999")
    finally:
        con.close()


def test_sampled_clustering_assigns_by_nearest_centre(jsonl_file, tmp_path):
    """Above poi_sample points, HDBSCAN runs on a seeded sample; every post goes to its nearest centre or noise."""
    config = _with(SMALL, poi_min_samples=5, min_poi_posts=15, engine="duckdb")
    path = jsonl_file(mixed_posts(n_places=3, per_place=60))
    full = prepare(path, tmp_path / "full", config)
    sampled = prepare(path, tmp_path / "sampled", _with(config, poi_sample=90))
    prepare(path, tmp_path / "again", _with(config, poi_sample=90))
    assert full.summary["all"]["pois"] == sampled.summary["all"]["pois"] == 3
    a = postloc.load_prepared(tmp_path / "full").posts.set_index("id")["poi"]
    b = postloc.load_prepared(tmp_path / "sampled").posts.set_index("id")["poi"]
    common = a.index.intersection(b.index)
    assert len(common) >= 0.9 * len(a)
    assert (a[common] == b[common]).all()  # well-separated places: the same partition
    assert "outlier" not in b.index  # 50 km away: outside every cluster's radius
    assert _outputs(tmp_path / "sampled") == _outputs(tmp_path / "again")  # seeded: re-runs agree


def test_nearest_cluster_radius_rule():
    from postloc.data.pois import to_unit_xyz
    from postloc.data.prepare.poi_sample import nearest_cluster, sample_centres

    lat = np.array([51.0, 51.0001, 51.0002, 52.0, 52.0001])
    lon = np.array([13.0, 13.0001, 13.0, 14.0, 14.0001])
    centres, radii = sample_centres(lat, lon, np.array([0, 0, 0, 1, 1]))
    assert radii.max() < 0.05  # km
    probe = to_unit_xyz(np.array([51.0001, 52.00005, 51.5]), np.array([13.00005, 14.00005, 13.5]))
    assert nearest_cluster(probe, centres, radii).tolist() == [0, 1, -1]
    assert nearest_cluster(probe, centres[:0], radii[:0]).tolist() == [-1, -1, -1]


def test_cli_engine_options_and_errors(jsonl_file, tmp_path, capsys):
    path = jsonl_file(mixed_posts())
    base = [
        "prepare",
        str(path),
        "--min-hashtag-count",
        "3",
        "--min-poi-posts",
        "15",
        "--min-poi-users",
        "2",
        "--poi-min-samples",
        "5",
    ]
    assert (
        main(
            [
                *base,
                "--out",
                str(tmp_path / "out"),
                "--engine",
                "duckdb",
                "--memory-limit",
                "256MB",
                "--workers",
                "1",
                "--poi-sample",
                "5000",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["config"]["engine"] == "duckdb" and manifest["config"]["memory_limit"] == "256MB"
    assert manifest["config"]["poi_sample"] == 5000
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad"), "--engine", "duckdb", "--memory-limit", "lots"]) == 2
    assert "--memory-limit 'lots'" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "bad"), "--workers", "0"]) == 2
    assert "--workers (PrepareConfig.workers) must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(postloc.PostlocError, match="unknown engine 'spark'"):
        prepare(path, tmp_path / "x", _with(SMALL, engine="spark"))


def test_missing_duckdb_says_how_to_install(jsonl_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb -> ImportError
    with pytest.raises(postloc.PostlocError, match=r"pip install 'postloc\[duckdb\]'"):
        prepare(jsonl_file(mixed_posts()), tmp_path / "out", _with(SMALL, engine="duckdb"))
    assert not (tmp_path / "out").exists()


def test_default_path_never_imports_duckdb(jsonl_file, tmp_path):
    """`import postloc`, the CLI parser and the default prepare work with duckdb impossible to import."""
    path = jsonl_file(mixed_posts())
    code = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "duckdb" or name.startswith("duckdb."):
                    raise ImportError("duckdb is blocked in this test")

        sys.meta_path.insert(0, Block())
        import postloc
        from postloc.cli import build_parser
        build_parser()
        config = postloc.PrepareConfig(min_hashtag_count=3, min_poi_posts=15, min_poi_users=2, poi_min_samples=5)
        result = postloc.prepare({str(path)!r}, {str(tmp_path / "out")!r}, config)
        assert result.summary["all"]["posts"] > 0
        assert "duckdb" not in sys.modules, "duckdb was imported"
        try:
            postloc.prepare({str(path)!r}, {str(tmp_path / "duck")!r}, postloc.PrepareConfig(engine="duckdb"))
        except postloc.PostlocError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'postloc[duckdb]'" in done.stdout


def test_empty_results_raise_the_same_errors(jsonl_file, tmp_path):
    config = _with(SMALL, engine="duckdb")
    with pytest.raises(postloc.EmptyDatasetError, match="the input holds no posts"):
        prepare(jsonl_file([]), tmp_path / "out", config)
    with pytest.raises(postloc.EmptyDatasetError, match="no posts left after the POI filters"):
        prepare(jsonl_file(mixed_posts()), tmp_path / "out", _with(config, min_poi_posts=1000))
    assert not (tmp_path / "out").exists()


def test_posts_without_users_count_as_users_of_their_own(jsonl_file, tmp_path):
    """Issue 17, item 11: posts without ``user`` counted as zero users, so every POI was dropped and the
    message blamed the thresholds. Now each is a user of its own, as the splits already treat them."""
    records = [dict(r, poi=f"lab{r['id'][1]}") for r in mixed_posts()]
    for record in records:
        record.pop("user", None)
    memory, duck = _both(jsonl_file(records), tmp_path, _with(SMALL, min_poi_users=3))
    assert memory.summary["all"]["pois"] == 3 and duck.summary["all"]["pois"] == 3
    assert _outputs(tmp_path / "duckdb") == _outputs(tmp_path / "memory")
