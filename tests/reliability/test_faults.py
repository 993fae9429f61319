"""SIGKILL at chosen moments of ``prepare``, ``images`` and ``train``: never a corrupt output.

The harness (``tests/support/fault_harness.py``) runs each command in a forked child that kills itself
with SIGKILL just before its N-th file-system operation under the output folder. After each kill
the output must be the previous complete state or the new complete state (checked with the
project's own loaders and against a clean run's bytes), and a re-run (``--resume`` for training)
must succeed, leave no temporaries and, for training, give bit-identical weights and the same
validation accuracy as an uninterrupted run. The default run kills at a few chosen points (the
commit renames, one seeded random point); ``-m reliability`` kills at many seeded points, and
``tests/reliability/faults.py`` tabulates them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fault_harness import ImagesScenario, PrepareScenario, TrainScenario, Zygote, kill_points, run_postloc
from postloc.io.atomic import atomic_open, recover_folder, remove_stale_temporaries, write_folder_atomically


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A SYNTHETIC post set with photos (3 POIs x 8 posts)."""
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    root = tmp_path_factory.mktemp("faults-src")
    generate(root / "syn", SyntheticPostsConfig(pois=3, posts_per_poi=8, seed=5, width=64, height=48))
    return root / "syn"


@pytest.fixture(scope="module")
def prepare_scenario(zygote, photos, tmp_path_factory) -> PrepareScenario:
    return PrepareScenario(zygote, photos / "posts.jsonl", photos / "pois.csv", tmp_path_factory.mktemp("prep"))


@pytest.fixture(scope="module")
def train_scenario(zygote, tmp_path_factory) -> TrainScenario:
    from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared

    base = tmp_path_factory.mktemp("train")
    prepared = write_synthetic_prepared(
        base / "prepared",
        SyntheticFeaturesConfig(n_pois=3, n_posts=150, n_users=24, caption_words=(3, 6), image_dim=8, seed=7),
    )
    return TrainScenario(zygote, prepared, base / "work", epochs=3)


def _assert_clean(trials) -> None:
    for t in trials:
        assert t.killed, t
        assert t.state in ("previous", "new", "absent", "partial-run"), t
        assert t.rerun_ok, t


# --- default run: the commit renames (where non-atomic writers break), one random point -----


@pytest.mark.slow  # forks and kills a prepare at each rename: 9 s here under load
def test_prepare_killed_at_every_commit_rename(prepare_scenario):
    s = prepare_scenario
    points = s.interesting()
    # the last two renames commit (old folder aside, new folder in); any earlier one stays inside the temporary
    # folder (the spool settled after the language filter), where a kill leaves the previous output
    assert len(points) >= 2 and all("/.out.tmp-" in s.events[n - 1].split(" -> ")[1] for n in points[:-2])
    trials = [s.trial(n) for n in points]
    _assert_clean(trials)
    assert all(t.state in ("previous", "new") for t in trials), trials
    between = trials[points.index(points[-1])]
    assert between.state == "previous" and "restored" in between.detail  # the window between the two renames


@pytest.mark.slow  # forks and kills image runs: 8 s here under load
def test_images_killed_at_a_commit_rename_and_a_random_point(zygote, prepare_scenario, tmp_path_factory):
    s = ImagesScenario(zygote, prepare_scenario.ref_a, tmp_path_factory.mktemp("images"))
    points = sorted({s.interesting()[0], *kill_points(len(s.events), 1, seed=12)})
    _assert_clean([s.trial(n) for n in points])


@pytest.mark.slow  # forks and kills a training: 10 s here under load
def test_train_killed_between_renames_of_best_then_resumed_bit_identically(train_scenario):
    s = train_scenario
    best_swaps = [i for i, e in enumerate(s.events, 1) if e.startswith("os.rename") and "/best ->" in e]
    assert best_swaps, s.events  # best/ is replaced at least once (it improved after epoch 1)
    trial = s.trial(best_swaps[0] + 1)  # best/ is aside, the new one not yet in
    _assert_clean([trial])
    assert trial.state == "partial-run", trial


# --- regression tests of the atomic-write fixes ----------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    dead, target = _dead_pid(), tmp_path / "out.json"
    (tmp_path / f".out.json.{dead}-abc123.tmp").write_text("half")
    (tmp_path / f".out.json.{os.getpid()}-live99.tmp").write_text("ours, still writing")
    folder = tmp_path / "folder"
    (tmp_path / f".folder.tmp-{dead}-xyz").mkdir()
    with atomic_open(target) as handle:
        handle.write("{}")
    write_folder_atomically(folder, lambda work: (work / "a.txt").write_text("a"))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["folder", "out.json", f".out.json.{os.getpid()}-live99.tmp"])


def test_a_folder_left_aside_by_a_kill_is_put_back(tmp_path):
    dead = _dead_pid()
    aside = tmp_path / f".prepared.old-{dead}"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    assert recover_folder(tmp_path / "prepared")
    assert (tmp_path / "prepared" / "manifest.json").exists() and not aside.exists()
    assert not recover_folder(tmp_path / "prepared")  # nothing to do when the target exists
    assert remove_stale_temporaries(tmp_path / "prepared") == 0


def test_shard_store_removes_a_shard_half_written_by_a_killed_process(tmp_path):
    from postloc.vision.store import ShardStore

    dead = _dead_pid()
    half = tmp_path / f".shard-1-{dead}-0001.safetensors.{dead}-q1w2e3.tmp"
    half.write_bytes(b"\x00" * 10)
    store = ShardStore(tmp_path, shard_size=2)
    store.put("a", {"v": np.ones(2)})
    store.close()
    assert not half.exists() and len(ShardStore(tmp_path)) == 1


# --- long run: many seeded kill points (make reliability) -----------------------------------


@pytest.mark.reliability
@pytest.mark.parametrize("seed", [1, 2])
def test_prepare_many_kill_points(prepare_scenario, seed):
    s = prepare_scenario
    _assert_clean([s.trial(n) for n in kill_points(len(s.events), len(s.events), seed)])  # every event


@pytest.mark.reliability
def test_images_many_kill_points(zygote, prepare_scenario, tmp_path_factory):
    s = ImagesScenario(zygote, prepare_scenario.ref_a, tmp_path_factory.mktemp("images-many"))
    _assert_clean([s.trial(n) for n in kill_points(len(s.events), 12, seed=21)])


@pytest.mark.reliability
def test_train_many_kill_points(train_scenario):
    s = train_scenario
    _assert_clean([s.trial(n) for n in kill_points(len(s.events), 12, seed=31)])


@pytest.mark.reliability
def test_timer_kills_in_fresh_interpreters(prepare_scenario, tmp_path):
    """Timer kills land inside C-level writes (pyarrow, safetensors) that raise no audit event."""
    s = prepare_scenario
    for delay in np.random.default_rng(41).uniform(0.5, 6.0, 4):
        target = tmp_path / "out"
        run_postloc(s.args_b + [target], tmp_path, kill_after=float(delay))
        if target.exists():
            from postloc.data.prepared import load_prepared

            load_prepared(target)
        rerun = run_postloc(s.args_b + [target], tmp_path)
        assert rerun.returncode == 0, rerun.stderr
