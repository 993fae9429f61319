"""Kill ``postloc`` with SIGKILL at a chosen file-system event, and judge what it left on disk.

Why events rather than timers: a timer mostly lands in CPU work and rarely in the few
microseconds between two renames, where a non-atomic writer would show its damage. Here the
child process counts the file-system operations it makes under a watched folder (opens for
writing, renames, mkdir, unlink, rmtree) with a Python audit hook (:func:`sys.addaudithook`) and
kills itself with SIGKILL just *before* operation number N runs. Picking N at random (seeded)
over the count of a clean run therefore hits every stage: mid-build, just before the commit
rename, between the "move old aside" and "move new in" renames, during checkpoint pruning.

The hook lives only in this test helper: the child is ``python tests/support/fault_harness.py --kill-at N
--watch DIR -- <postloc arguments>``, which installs the hook and then calls
:func:`postloc.cli.main`. Normal runs of ``postloc`` carry no hook and no check at all (zero cost).
Writes done inside C extensions (pyarrow's Parquet writer, safetensors' Rust writer) raise no
audit event; they happen between events, and :func:`run_postloc` also accepts ``kill_after``
seconds for timer kills that land inside them.

Also usable as a library by ``tests/reliability/faults.py``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {
    "os.rename": 2,
    "os.mkdir": 1,
    "os.remove": 1,
    "os.rmdir": 1,
    "shutil.rmtree": 1,
    "os.truncate": 1,
    "os.link": 2,
    "os.symlink": 2,
}


# --- child side ------------------------------------------------------------------------------


def _under(path, root: str) -> bool:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        return os.path.abspath(os.fspath(path)).startswith(root)
    except (TypeError, ValueError):
        return False


def install_hook(watch: str, kill_at: int | None, count_file: str | None):
    """Count write-like file-system events under ``watch``; SIGKILL this process before event ``kill_at``."""
    root = os.path.abspath(watch)
    state = {"n": 0}
    log: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if not writing or not _under(path, root):
                return
        elif event in _PATH_EVENTS:
            if not any(_under(a, root) for a in args[: _PATH_EVENTS[event]]):
                return
        else:
            return
        state["n"] += 1
        if count_file:
            where = args[0] if event != "os.rename" else f"{args[0]} -> {args[1]}"
            log.append(
                f"{event}\t{os.path.relpath(os.fsdecode(where) if isinstance(where, bytes) else str(where), root)}"
                if isinstance(where, (str, bytes, os.PathLike))
                else event
            )
        if kill_at is not None and state["n"] >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def report() -> None:
        if count_file:
            with open(count_file + ".part", "w") as handle:  # outside ``watch``: not counted
                handle.write("\n".join(log))
            os.replace(count_file + ".part", count_file)

    sys.addaudithook(hook)
    return report


def _child(argv: Sequence[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="fault_harness")
    parser.add_argument("--watch", required=True)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--count-to")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    report = install_hook(args.watch, args.kill_at, args.count_to)
    from postloc.cli import main

    try:
        return main(rest)
    finally:
        report()


# --- zygote: import once, fork per run -------------------------------------------------------

PRELOAD = (
    "pandas",
    "pyarrow.parquet",
    "torch",
    "safetensors.torch",
    "postloc.cli",
    "postloc.data.prepare",
    "postloc.training.api",
    "postloc.models.mrlf",
    "postloc.vision.pipeline",
    "postloc.inference.batch",
)


def _zygote() -> int:
    """Serve run requests (JSON lines on stdin): fork a child per request, answer its exit status.

    Importing torch, pandas and pyarrow costs seconds per interpreter on a busy 2-core machine;
    forking a process that has imported them (and run nothing, so no thread pools exist yet)
    makes each kill point cost only the work of the command itself.
    """
    import importlib
    import json

    for name in PRELOAD:
        importlib.import_module(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(null, 1)
                os.dup2(err, 2)
                # the forked child's streams for the rest of its life, which ends in os._exit below
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.environ.update(request.get("env") or {})
                report = install_hook(request["watch"], request.get("kill_at"), request.get("count_to"))
                from postloc.cli import main

                try:
                    code = main(request["argv"])
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
                except BaseException:  # noqa: BLE001 - show it like the interpreter would
                    import traceback

                    traceback.print_exc()
                    code = 1
                report()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        deadline = time.monotonic() + request["kill_after"] if request.get("kill_after") else None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = None
            time.sleep(0.01)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"returncode": code}), flush=True)
    return 0


class Zygote:
    """A warm interpreter that runs ``postloc`` commands in forked children (see :func:`_zygote`)."""

    def __init__(self, env: Mapping[str, str] | None = None):
        import json

        self._json = json
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "--zygote"],
            env=child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self.process.stdout.readline()
        if not ready.strip():
            raise RuntimeError("the fault-injection zygote did not start")

    def run(
        self,
        args: Sequence[str],
        watch: str | Path,
        *,
        kill_at: int | None = None,
        kill_after: float | None = None,
        count: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Outcome:
        tag = f"{os.getpid()}-{time.time_ns()}"
        side = Path(watch).parent
        stderr = side / f".stderr-{tag}"
        count_file = str(side / f".events-{tag}") if count else None
        request = {
            "argv": [str(a) for a in args],
            "watch": str(watch),
            "kill_at": kill_at,
            "kill_after": kill_after,
            "count_to": count_file,
            "stderr": str(stderr),
            "env": dict(env or {}),
        }
        started = time.perf_counter()
        self.process.stdin.write(self._json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._json.loads(self.process.stdout.readline())
        seconds = time.perf_counter() - started
        err = stderr.read_text(errors="replace") if stderr.exists() else ""
        stderr.unlink(missing_ok=True)
        events = None
        if count_file and Path(count_file).exists():
            text = Path(count_file).read_text()
            events = text.split("\n") if text else []
            Path(count_file).unlink()
        code = answer["returncode"]
        return Outcome(code, code == -signal.SIGKILL, events, err, seconds)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- parent side -----------------------------------------------------------------------------


@dataclass
class Outcome:
    returncode: int
    killed: bool
    events: list[str] | None  # the events of a clean run with count=True: "event<TAB>path" (1-based order)
    stderr: str
    seconds: float


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TQDM_DISABLE": "1",
    }
    env.update(extra or {})
    return env


def run_postloc(
    args: Sequence[str],
    watch: str | Path,
    *,
    kill_at: int | None = None,
    kill_after: float | None = None,
    count: bool = False,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``postloc ARGS`` in a child; kill it at event ``kill_at`` or after ``kill_after`` seconds."""
    command = [sys.executable, str(HERE), "--watch", str(watch)]
    count_file = None
    if kill_at is not None:
        command += ["--kill-at", str(kill_at)]
    if count:
        count_file = str(Path(watch).parent / f".events-{os.getpid()}-{time.time_ns()}")
        command += ["--count-to", count_file]
    command += ["--", *map(str, args)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=child_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        if kill_after is not None:
            try:
                _, err = process.communicate(timeout=kill_after)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                _, err = process.communicate(timeout=timeout)
        else:
            _, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = None
    if count_file and Path(count_file).exists():
        text = Path(count_file).read_text()
        events = text.split("\n") if text else []
        Path(count_file).unlink()
    return Outcome(
        process.returncode, process.returncode == -signal.SIGKILL, events, err, time.perf_counter() - started
    )


def rename_points(events: Sequence[str]) -> list[int]:
    """Event numbers of the renames (each kill there lands just before that rename happens)."""
    return [i for i, e in enumerate(events, start=1) if e.startswith("os.rename")]


def kill_points(total: int, n: int, seed: int) -> list[int]:
    """``n`` distinct event numbers in ``1..total`` (always including the last), seeded."""
    import random

    rng = random.Random(seed)
    points = {total} if total else set()
    while len(points) < min(n, total):
        points.add(rng.randint(1, total))
    return sorted(points)


# --- judging what is on disk -----------------------------------------------------------------


def snapshot(folder: Path, skip: Iterable[str] = ()) -> dict[str, str] | None:
    """``relative path -> sha256`` of every visible file under ``folder`` (``None`` if absent).

    Names starting with ``.`` (temporaries) and the top-level names in ``skip`` are left out.
    """
    folder = Path(folder)
    if not folder.exists():
        return None
    skip = set(skip)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or rel.parts[0] in skip or not path.is_file():
            continue
        out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def hidden_leftovers(folder: Path) -> list[str]:
    """Temporary names (``.x.tmp``/``.x.old-PID``) under ``folder`` and next to it."""
    folder = Path(folder)
    found = [p.name for p in folder.parent.glob(f".{folder.name}.*")]
    if folder.exists():
        found += [str(p.relative_to(folder)) for p in folder.rglob(".*")]
    return sorted(found)


def classify(current: dict[str, str] | None, previous: dict[str, str] | None, new: dict[str, str]) -> str:
    """'previous', 'new', 'absent' or 'corrupt' for a folder snapshot after a kill."""
    if current == new:
        return "new"
    if current == previous:
        return "previous" if previous is not None else "absent"
    return "corrupt"


# --- scenarios: one per command, shared by tests/reliability/test_faults.py and tests/reliability/faults.py --

SMALL_MRLF = {
    "filters": 8,
    "heads": 2,
    "char_dim": 4,
    "word_dim": 4,
    "hidden": 8,
    "max_text_chars": 40,
    "max_hashtag_chars": 24,
    "max_text_words": 10,
}


@dataclass
class Trial:
    """What one kill left, and whether the re-run (or ``--resume``) repaired it."""

    command: str
    kill_at: int | None
    killed: bool
    state: str  # previous / new / absent / partial-run / corrupt
    rerun_ok: bool
    detail: str = ""

    @property
    def corrupt(self) -> bool:
        return self.state == "corrupt" or not self.rerun_ok


def _fresh(folder: Path) -> Path:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)
    for leftover in folder.parent.glob(f".{folder.name}.*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    return folder


class PrepareScenario:
    """``prepare`` with settings B over an earlier complete output of settings A.

    Complete = the folder loads with :func:`postloc.data.prepared.load_prepared`, lists exactly
    the files its manifest names, and is byte-identical to a clean run's output (prepare is
    deterministic), so "previous" and "new" are checked file by file, hash by hash.
    """

    name = "prepare"

    def __init__(self, zygote: Zygote, posts: Path, pois: Path, work: Path):
        self.z, self.work = zygote, Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        base = [posts, "--pois", pois, "--min-poi-posts", "1", "--min-poi-users", "1", "--quiet"]
        self.args_a = ["prepare", *base, "--min-hashtag-count", "1", "--out"]
        self.args_b = ["prepare", *base, "--min-hashtag-count", "3", "--out"]
        self.ref_a = self.work / "ref-a"
        ok = self.z.run(self.args_a + [self.ref_a], self.work)
        assert ok.returncode == 0, ok.stderr
        self.before = snapshot(self.ref_a)
        target = self._reset()
        clean = self.z.run(self.args_b + [target], self.work, count=True)
        assert clean.returncode == 0, clean.stderr
        self.events = clean.events or []
        self.after = snapshot(target)
        assert self.before != self.after, "settings A and B must give different outputs"

    def _reset(self) -> Path:
        import shutil

        target = _fresh(self.work / "out")
        shutil.copytree(self.ref_a, target)
        return target

    def interesting(self) -> list[int]:
        return rename_points(self.events)

    def trial(self, kill_at: int | None = None, kill_after: float | None = None) -> Trial:
        from postloc.data.prepared import load_prepared
        from postloc.io.atomic import recover_folder

        target = self._reset()
        outcome = self.z.run(self.args_b + [target], self.work, kill_at=kill_at, kill_after=kill_after)
        current = snapshot(target)
        detail = ""
        if current is None:  # killed between "old aside" and "new in": the old one is aside, whole
            recovered = recover_folder(target)
            current = snapshot(target)
            detail = "old folder was aside; restored" if recovered else "absent and nothing aside"
        state = classify(current, self.before, self.after)
        if state in ("previous", "new"):
            data = load_prepared(target)
            listed = set(data.manifest["outputs"])
            if listed != set(snapshot(target)):
                state, detail = "corrupt", f"manifest lists {sorted(listed)}"
        rerun = self.z.run(self.args_b + [target], self.work)
        rerun_ok = rerun.returncode == 0 and snapshot(target) == self.after and not hidden_leftovers(target)
        if not rerun_ok:
            detail += f" rerun rc={rerun.returncode} leftovers={hidden_leftovers(target)} {rerun.stderr[-300:]}"
        return Trial(self.name, kill_at, outcome.killed, state, rerun_ok, detail.strip())


class ImagesScenario:
    """``images`` on a prepared folder: each output file is absent or complete, the cache stays readable.

    Complete = ``image_features.parquet`` loads with :func:`postloc.data.image_features.load_image_features`
    and equals a clean run's ids and vectors; ``image_status.csv`` equals the clean run's (all
    columns but ``source``, computed/cached); ``image_summary.json`` parses; every cache shard opens
    and its rows equal the clean run's.
    """

    name = "images"
    OUTPUTS = ("image_features.parquet", "image_status.csv", "image_summary.json")

    def __init__(self, zygote: Zygote, prepared: Path, work: Path):
        import shutil

        self.z, self.work = zygote, Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.pristine = Path(prepared)
        self.args = [
            "images",
            "--image-noise",
            "keep",
            "--workers",
            "0",
            "--threads",
            "1",
            "--batch-size",
            "4",
            "--quiet",
        ]
        target = self._reset()
        clean = self.z.run(self.args + [target], self.work, count=True)
        assert clean.returncode == 0, clean.stderr
        self.events = clean.events or []
        self.reference = self._outputs(target)
        self.cache = self._cache(target)
        shutil.rmtree(self.work / "ref", ignore_errors=True)
        shutil.copytree(target, self.work / "ref")

    def _reset(self) -> Path:
        import shutil

        target = _fresh(self.work / "prepared")
        shutil.copytree(self.pristine, target)
        return target

    @staticmethod
    def _outputs(folder: Path) -> dict[str, object]:
        import json

        import numpy as np

        from postloc.data.image_features import load_image_features

        out: dict[str, object] = {}
        if (folder / "image_features.parquet").exists():
            ids, matrix = load_image_features(folder)
            out["image_features.parquet"] = (tuple(ids), hashlib.sha256(np.ascontiguousarray(matrix)).hexdigest())
        if (folder / "image_status.csv").exists():  # "source" says computed/cached: differs after a resume
            import csv

            with open(folder / "image_status.csv", encoding="utf-8", newline="") as handle:
                rows = [{k: v for k, v in row.items() if k != "source"} for row in csv.DictReader(handle)]
            out["image_status.csv"] = hashlib.sha256(repr(rows).encode()).hexdigest()
        if (folder / "image_summary.json").exists():
            out["image_summary.json"] = sorted(json.loads((folder / "image_summary.json").read_text()))
        return out

    @staticmethod
    def _cache(folder: Path) -> dict[str, str]:
        import numpy as np

        from postloc.vision.store import ShardStore

        rows = {}
        for root in sorted({p.parent for p in (folder / "image_cache").rglob("shard-*.safetensors")}):
            store = ShardStore(root)
            for key in sorted(store.keys()):
                row = store.get(key)
                rows[f"{root.name}/{key}"] = hashlib.sha256(
                    repr(
                        sorted((k, np.asarray(v).tobytes() if not isinstance(v, str) else v) for k, v in row.items())
                    ).encode()
                ).hexdigest()
        return rows

    def interesting(self) -> list[int]:
        return rename_points(self.events)

    def trial(self, kill_at: int | None = None, kill_after: float | None = None) -> Trial:
        target = self._reset()
        outcome = self.z.run(self.args + [target], self.work, kill_at=kill_at, kill_after=kill_after)
        found = self._outputs(target)
        broken = [k for k, v in found.items() if v != self.reference[k]]
        cache = self._cache(target)
        broken += [k for k, v in cache.items() if self.cache.get(k) != v]
        present = [k for k in self.OUTPUTS if k in found]
        state = (
            "corrupt"
            if broken
            else ("new" if len(present) == len(self.OUTPUTS) else "absent" if not present else "partial-run")
        )
        rerun = self.z.run(self.args + [target], self.work)
        leftovers = [str(p.relative_to(target)) for p in target.rglob(".*")]
        rerun_ok = (
            rerun.returncode == 0
            and self._outputs(target) == self.reference
            and self._cache(target) == self.cache
            and not leftovers
        )
        detail = f"broken={broken}" if broken else ""
        if not rerun_ok:
            detail += f" rerun rc={rerun.returncode} leftovers={leftovers} {rerun.stderr[-300:]}"
        return Trial(self.name, kill_at, outcome.killed, state, rerun_ok, detail.strip())


class TrainScenario:
    """``train`` killed anywhere, then ``--resume`` (or a plain re-run when no run was started yet).

    Complete = every checkpoint that :func:`postloc.nn.checkpoints.list_checkpoints` lists
    passes :func:`~postloc.nn.checkpoints.verify_checkpoint` and loads as a model, ``best/``
    loads when present, metrics parse. After resuming, ``best/`` must hold the same weights, bit for
    bit, and ``run.json`` the same validation accuracy as an uninterrupted run.
    """

    name = "train"

    def __init__(self, zygote: Zygote, prepared: Path, work: Path, epochs: int = 3):
        self.z, self.work = zygote, Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        sets = [x for k, v in SMALL_MRLF.items() for x in ("--set", f"{k}={v}")]
        self.args = [
            "train",
            "--model",
            "mrlf",
            "--data",
            prepared,
            "--epochs",
            str(epochs),
            "--quiet",
            "--set",
            "threads=1",
            "--set",
            "early_stopping=0",
            "--set",
            "batch_size=32",
            *sets,
            "--out",
        ]
        self.epochs = epochs
        target = _fresh(self.work / "ref")
        clean = self.z.run(self.args + [target], self.work, count=True)
        assert clean.returncode == 0, clean.stderr
        self.events = clean.events or []
        self.weights, self.val_acc = self._result(target)

    @staticmethod
    def _result(run: Path) -> tuple[str, float]:
        import json

        summary = json.loads((run / "run.json").read_text())
        return hashlib.sha256((run / "best" / "weights.safetensors").read_bytes()).hexdigest(), summary["val_acc"]

    def interesting(self) -> list[int]:
        return rename_points(self.events)

    def check_complete(self, run: Path) -> str:
        """'' when everything on disk is complete, else what is not."""
        import json

        from postloc.models import load_model
        from postloc.nn import checkpoints as ck

        problems = []
        for folder in ck.list_checkpoints(run):
            try:
                ck.verify_checkpoint(folder)
                load_model(folder)
            except Exception as error:  # noqa: BLE001 - reported, counted as corrupt
                problems.append(f"{folder.name}: {error}")
        for name in ("best",):
            if (run / name).exists():
                try:
                    load_model(run / name)
                except Exception as error:  # noqa: BLE001 - reported, counted as corrupt
                    problems.append(f"{name}: {error}")
        for name in ("metrics.jsonl",):
            if (run / name).exists():
                try:
                    [json.loads(line) for line in (run / name).read_text().splitlines()]
                except ValueError as error:
                    problems.append(f"{name}: {error}")
        for name in ("config.json", "data.json", "run.json"):
            if (run / name).exists():
                try:
                    json.loads((run / name).read_text())
                except ValueError as error:
                    problems.append(f"{name}: {error}")
        return "; ".join(problems)

    def trial(self, kill_at: int | None = None, kill_after: float | None = None) -> Trial:
        target = _fresh(self.work / "run")
        outcome = self.z.run(self.args + [target], self.work, kill_at=kill_at, kill_after=kill_after)
        problems = self.check_complete(target) if target.exists() else ""
        if problems:
            state = "corrupt"
        elif (target / "run.json").exists():
            state = "new"
        elif not target.exists() or not any(target.iterdir()):
            state = "absent"
        else:
            state = "partial-run"  # complete checkpoints of some epochs: what --resume continues from
        resume = ["--resume"] if (target / "config.json").exists() else []
        rerun = self.z.run(self.args + [target] + resume, self.work)
        rerun_ok = rerun.returncode == 0
        detail = problems
        if rerun_ok:
            weights, val_acc = self._result(target)
            rerun_ok = weights == self.weights and val_acc == self.val_acc and not self.check_complete(target)
            if not rerun_ok:
                detail += f" resumed val_acc {val_acc} vs {self.val_acc}, weights equal: {weights == self.weights}"
        else:
            detail += f" rerun rc={rerun.returncode} {rerun.stderr[-400:]}"
        return Trial(self.name, kill_at, outcome.killed, state, rerun_ok, detail.strip())


if __name__ == "__main__":
    sys.exit(_zygote() if sys.argv[1:] == ["--zygote"] else _child(sys.argv[1:]))
