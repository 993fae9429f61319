"""The cells of ``crossval``, ``experiments`` and ``quickstart`` as Ray tasks: their folds past one machine.

A cross-validation is K x models x seeds *cells* that do not depend on each other (each trains on
the other folds and scores its fold; :mod:`postloc.experiments.runner`). With ``--engine ray`` the
runner hands them to :class:`RayFoldExecutor`, which has the shape of ``stack``'s
:class:`postloc.models.stack.fits.Executor`: each cell becomes one task of ``cpus_per_task`` CPUs
(the run's ``--threads``) and the results come back in the cells' order, so the results table,
the per-post outcomes and the paired intervals are those of the local run.

What travels: the cell (its model, params, seed, fold) and the experiment folder's *path*. A task
reads its fold's prepared copy and writes its run, its outcomes and its cell record into that
folder, so on several machines the folder must be on a filesystem every node mounts at the same
path; a worker that cannot see it refuses in one line
(:func:`postloc.experiments.folder.check_reachable`). Start the cluster with ``ray start --head``
on one machine and ``ray start --address HEAD:6379`` on the others, then run the command on the
head with ``--engine ray --ray-address auto`` (docs/scale-stack.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from postloc.errors import PostlocError
from postloc.models.stack.fits import Done
from postloc.scale._ray import RaySettings, ray_session, user_error
from postloc.scale.ray_fits import map_tasks

R = TypeVar("R")


@dataclass(frozen=True)
class RayFoldExecutor:
    """:class:`postloc.models.stack.fits.Executor` for whole cells: one Ray task per call, ``cpus_per_task`` CPUs each.

    Unlike :class:`postloc.scale.ray_fits.RayExecutor` (many small regressions of one fit), a call
    here is minutes of work that writes files: a failed call cancels the calls still pending, so
    that no task goes on writing into a folder whose command has ended, and its error is the
    user's one line, not Ray's traceback. A local Ray gets this machine's cores (at least one
    task's worth), not one CPU per call.
    """

    settings: RaySettings = field(default_factory=RaySettings)
    cpus_per_task: int = 1

    def map(
        self, fn: Callable[..., R], shared: tuple[Any, ...], calls: Sequence[tuple[Any, ...]], done: Done
    ) -> list[R]:
        settings = self.settings
        if settings.num_cpus is None:
            settings = replace(settings, num_cpus=max(os.cpu_count() or 1, self.cpus_per_task))
        with ray_session(settings, workers=0) as ray:
            _check_room(ray, self.cpus_per_task)
            try:
                return map_tasks(ray, fn, shared, calls, done, self.cpus_per_task)
            except BaseException as error:  # an interrupt goes up as it is; a task's error as the user's one line
                if isinstance(error, Exception):
                    raise user_error(error) from None
                raise


def _check_room(ray: Any, cpus: int) -> None:
    """Refuse a task size no node of the cluster can hold (Ray would wait for such a node for ever)."""
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    if largest < cpus:
        raise PostlocError(
            f"each cell asks for {cpus} CPUs (--threads), but the largest node of the Ray cluster has "
            f"{largest:g}: use --threads {max(1, int(largest))} or fewer"
        )
