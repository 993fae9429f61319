"""Importing and starting Ray: lazily, quietly, and only for the ``--engine ray`` paths.

Why a module of its own: ``import postloc`` and every default command must work without Ray
installed (it is the optional ``postloc[ray]`` extra), so nothing outside :mod:`postloc.scale`
imports it, and inside it only the functions here do. Ray is started in local mode
(``ray.init(num_cpus=...)``, no dashboard, worker logs kept out of the terminal) unless an
address is given (``--ray-address`` or ``RAY_ADDRESS``), in which case the job joins that cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postloc.errors import PostlocError

INSTALL = "pip install 'postloc[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`PostlocError` that says how to install it."""
    try:
        import ray
        import ray.data  # the [data] extra (pyarrow, fsspec) is what the engine uses
    except ImportError as error:
        raise PostlocError(
            f"--engine ray needs Ray Data, which is not installed ({error}); install it with: {INSTALL}"
        ) from None
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where the job runs: a local Ray started here, or an existing cluster.

    ``address`` None: ``$RAY_ADDRESS`` if set, else a local Ray with ``num_cpus`` logical CPUs
    (default: enough for ``workers`` actors plus one CPU for reading and writing).
    ``"auto"`` joins the cluster started on this machine with ``ray start --head``.
    """

    address: str | None = None
    num_cpus: int | None = None
    progress: bool = False


def resolve_address(settings: RaySettings) -> str | None:
    return settings.address or os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def ray_session(settings: RaySettings, workers: int) -> Iterator[Any]:
    """Yield ``ray`` initialised; shut it down afterwards only if this call started it.

    An already initialised Ray (a notebook, a test module's fixture) is reused as it is.
    """
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        # Ray's C++ core logs warnings (e.g. about actor restarts) straight to this terminal
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
        address = resolve_address(settings)
        quiet = dict(log_to_driver=False, configure_logging=True, logging_level=logging.WARNING)
        if address:
            ray.init(address=address, **quiet)
        else:
            cpus = settings.num_cpus or max(os.cpu_count() or 1, workers + 1)
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        started = True
    quiet_data(settings.progress)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def quiet_data(progress: bool) -> None:
    """No per-operator log lines or progress bars from Ray Data unless asked for."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True  # output files follow the input order
    # Ray Data logs a failed task at ERROR before raising it; the caller reports it once, cleanly.
    logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.CRITICAL)


def user_error(error: BaseException) -> BaseException:
    """The :class:`PostlocError` a Ray task raised, recovered from Ray's wrapper (else ``error`` itself).

    Ray Data re-raises a failed actor call as ``RayTaskError(UserCodeException)`` whose cause chain
    no longer holds the original exception, only its formatted traceback; the user's message (a
    bad record's file and key) is taken from there.
    """
    import re

    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            break
        if isinstance(current, PostlocError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    found = re.findall(r"postloc\.errors\.\w+: (.+)", str(error))
    return PostlocError(found[-1].strip()) if found else error


def part_names(file_format: str = "parquet") -> Any:
    """``part-000000-<write id>.parquet``, ...: one file per write task, numbered in the order of the data
    (Ray requires the write's id in the name so that two writes never overwrite each other's files)."""
    from ray.data.datasource import FilenameProvider

    class _Parts(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"part-{task_index:06d}-{write_uuid}.{file_format}"

    return _Parts(file_format=file_format)


def write_parquet_parts(dataset: Any, out: Path, rows_per_file: int | None) -> None:
    """Run ``dataset`` into a folder of ``part-*.parquet`` files swapped in atomically at ``out``.

    Both Ray jobs end this way; a failure inside an actor surfaces as the user's own error.
    """
    from postloc.io.atomic import write_folder_atomically

    def fill(tmp: Path) -> None:
        dataset.write_parquet(str(tmp), filename_provider=part_names(), min_rows_per_file=rows_per_file)

    try:
        write_folder_atomically(out, fill)
    except Exception as error:  # noqa: BLE001 - Ray wraps the actor's error; show the user's own
        raise user_error(error) from None
