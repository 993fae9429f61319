"""A full disk: ``prepare``, ``images``, ``train`` and ``predict --out`` stop cleanly and keep earlier outputs.

Each command writes into a small tmpfs that already holds complete earlier outputs and is then
filled up to a few KB. It must exit non-zero with one line naming the output and saying there is
no space left (a :class:`postloc.errors.DiskFullError`, no traceback), leave the earlier outputs
byte-identical and loadable, and leave no half-written or temporary file behind.

Mounting needs root: as root the tmpfs is mounted directly; otherwise this file re-runs itself
inside ``unshare --user --map-root-user --mount``. If neither is possible the tests fail with a
message saying so (they are never skipped silently).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fault_harness import SMALL_MRLF, Zygote, snapshot

INSIDE = "POSTLOC_TEST_FULL_DISK_NAMESPACE"
SIZE_MB = 16
LEAVE_FREE = 8 * 1024


def _can_mount_here() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a {SIZE_MB} MB tmpfs at {path} although running as root: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int = LEAVE_FREE) -> None:
    """Fill ``disk`` until only about ``leave`` bytes are free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(disk / ".filler", "wb") as handle:
        remaining = max(0, free - leave)
        block = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= handle.write(block[: min(len(block), remaining)])


def unfill(disk: Path) -> None:
    (disk / ".filler").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Earlier outputs made on the normal disk: a prepared folder, a trained run, predictions."""
    from postloc.data.prepare import PrepareConfig, prepare
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate
    from postloc.inference.batch import predict_file
    from postloc.training import RunConfig, TrainerConfig, train

    base = tmp_path_factory.mktemp("fulldisk-src")
    generate(base / "syn", SyntheticPostsConfig(pois=3, posts_per_poi=8, seed=5, width=64, height=48))
    prepare(
        base / "syn" / "posts.jsonl",
        base / "prepared",
        PrepareConfig(min_hashtag_count=1, min_poi_posts=1, min_poi_users=1),
        pois_csv=base / "syn" / "pois.csv",
    )
    train(
        base / "prepared",
        base / "run",
        RunConfig(
            "mrlf",
            dict(SMALL_MRLF),
            TrainerConfig(epochs=1, batch_size=32, progress=False, threads=1, early_stopping=0),
        ),
    )
    predict_file(base / "run", base / "syn" / "posts.jsonl", base / "predictions.jsonl", progress=False, images=False)
    return base


@pytest.fixture(scope="module")
def zygote():
    with Zygote() as z:
        yield z


@pytest.fixture
def disk(world, tmp_path) -> Iterator[Path]:
    """A small tmpfs holding copies of the earlier outputs."""
    _needs_root()
    with small_disk(tmp_path / "disk") as mount:
        shutil.copytree(world / "prepared", mount / "prepared")
        shutil.copytree(world / "run", mount / "run")
        shutil.copy(world / "predictions.jsonl", mount / "predictions.jsonl")
        yield mount


def _check(outcome, disk: Path, before: dict, output: str) -> None:
    """Clear one-line error naming ``output``; earlier outputs untouched; no leftovers."""
    err = outcome.stderr
    assert outcome.returncode == 2, (outcome.returncode, err)
    assert "no space left on device" in err.lower(), err
    assert output in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("postloc ") and ": error: " in err, err
    print(err.strip())
    unfill(disk)
    assert snapshot(disk) == before  # every earlier file byte-identical, nothing new and visible
    hidden = sorted(str(p.relative_to(disk)) for p in disk.rglob(".*"))
    assert hidden == [], hidden
    from postloc.data.prepared import load_prepared
    from postloc.models import load_model

    load_prepared(disk / "prepared")
    load_model(disk / "run" / "best")
    assert (disk / "predictions.jsonl").read_text().count("\n") > 0


def test_not_root_reruns_inside_a_user_namespace():
    """As root this is a no-op; otherwise the whole file runs again under ``unshare`` and must pass."""
    if _can_mount_here():
        return
    if shutil.which("unshare") is None:
        pytest.fail("full-disk tests need root or `unshare` (util-linux) to mount a small tmpfs; neither is here")
    done = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            "not namespace",
        ],
        env={**os.environ, INSIDE: "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, (
        f"full-disk tests inside `unshare` failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
    )


def _needs_root():
    """Not root: the namespace test above runs these (and fails loudly if they fail); here they step aside."""
    if not _can_mount_here():
        if os.environ.get(INSIDE) == "1":
            pytest.fail("inside `unshare --map-root-user` but still not root: cannot mount a tmpfs")
        pytest.skip("not root: run inside `unshare` by test_not_root_reruns_inside_a_user_namespace")


def test_prepare_on_a_full_disk(world, disk, zygote):
    _needs_root()
    before = snapshot(disk)
    fill(disk)
    out = zygote.run(
        [
            "prepare",
            world / "syn" / "posts.jsonl",
            "--out",
            disk / "prepared",
            "--pois",
            world / "syn" / "pois.csv",
            "--min-hashtag-count",
            "2",
            "--min-poi-posts",
            "1",
            "--min-poi-users",
            "1",
            "--quiet",
        ],
        disk,
    )
    _check(out, disk, before, str(disk / "prepared"))


def test_images_on_a_full_disk(disk, zygote):
    _needs_root()
    before = snapshot(disk)
    fill(disk)
    out = zygote.run(
        ["images", disk / "prepared", "--image-noise", "keep", "--workers", "0", "--threads", "1", "--quiet"], disk
    )
    _check(out, disk, before, str(disk / "prepared"))


@pytest.mark.slow  # trains twice on a full disk: 5 s here under load
def test_train_on_a_full_disk_new_run_and_resume(world, disk, zygote):
    _needs_root()
    sets = [x for k, v in SMALL_MRLF.items() for x in ("--set", f"{k}={v}")]
    common = [
        "train",
        "--model",
        "mrlf",
        "--data",
        disk / "prepared",
        "--quiet",
        "--set",
        "threads=1",
        "--set",
        "early_stopping=0",
        "--set",
        "batch_size=32",
        *sets,
    ]
    before = snapshot(disk)
    fill(disk)
    out = zygote.run(common + ["--out", disk / "run2", "--epochs", "1"], disk)
    shutil.rmtree(disk / "run2", ignore_errors=True)  # an empty run folder may have been created first
    _check(out, disk, before, str(disk / "run2"))
    fill(disk, leave=64 * 1024)  # room for the small JSON files, not for a checkpoint
    out = zygote.run(common + ["--out", disk / "run", "--epochs", "3", "--resume"], disk)
    unfill(disk)
    assert out.returncode == 2 and "no space left" in out.stderr.lower() and "Traceback" not in out.stderr, out.stderr
    assert str(disk / "run") in out.stderr, out.stderr
    from postloc.models import load_model
    from postloc.nn import checkpoints as ck

    for checkpoint in ck.list_checkpoints(disk / "run"):  # the earlier checkpoint is still whole
        ck.verify_checkpoint(checkpoint)
    load_model(disk / "run" / "best")
    assert sorted(str(p.relative_to(disk)) for p in disk.rglob(".*")) == []


def test_predict_out_on_a_full_disk(world, disk, zygote):
    _needs_root()
    before = snapshot(disk)
    fill(disk)
    big = disk.parent / "many.jsonl"  # enough predictions to overflow the few free KB
    lines = (world / "syn" / "posts.jsonl").read_text().splitlines()
    big.write_text("\n".join(line.replace('"id": "', f'"id": "r{i}-') for i in range(40) for line in lines) + "\n")
    out = zygote.run(["predict", disk / "run", big, "-o", disk / "predictions.jsonl", "--no-images", "--quiet"], disk)
    _check(out, disk, before, str(disk / "predictions.jsonl"))
