"""``stack``'s independent regressions as Ray tasks: the default model trained past one machine.

A ``stack`` fit is a handful of regressions that do not depend on each other (each learner's C
path on each inner fold, then each learner's refit; :mod:`postloc.models.stack.fits`). This
executor sends the shared inputs (the feature matrices, labels and weights) to the object store
once, runs every call as a task, and returns the results in the calls' order, so the fitted model
is the one a local fit gives (each call is a pure function of its inputs; the float32 products can
differ in the last bits across machines' thread counts, far below 1e-6 in probability).

One task takes ``cpus_per_task`` CPUs and uses as many torch threads. On one machine Ray adds
start-up and copying to the thread executor's work; it pays once the workers are other machines
(``ray start --head`` on one, ``ray start --address HEAD:6379`` on the others, then
``postloc train --engine ray --ray-address auto``; docs/scale-stack.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from postloc.models.stack.fits import Done
from postloc.scale._ray import RaySettings, ray_session

R = TypeVar("R")


def _call_with_threads(threads: int, fn: Callable[..., R], *args: Any) -> R:
    """Run one call in a Ray worker with ``threads`` torch threads (a worker's default may be 1, or every core)."""
    import torch

    torch.set_num_threads(max(1, threads))
    return fn(*args)


def map_tasks(
    ray: Any, fn: Callable[..., R], shared: tuple[Any, ...], calls: Sequence[tuple[Any, ...]], done: Done, cpus: int
) -> list[R]:
    """``fn(*shared, *call)`` for every call as a task of ``cpus`` CPUs, results in ``calls``' order.

    ``shared`` goes to the object store once; ``done(i)`` as call ``i`` finishes. If a call fails,
    the calls still pending are cancelled before the error goes up: no task keeps working (or
    writing) for a command that has ended.
    """
    refs = [ray.put(value) for value in shared]
    remote = ray.remote(num_cpus=cpus)(_call_with_threads)
    futures = [remote.remote(cpus, fn, *refs, *call) for call in calls]
    index = {future: i for i, future in enumerate(futures)}
    results: dict[int, R] = {}
    pending = list(futures)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = index[ready[0]]
            results[i] = ray.get(ready[0])
            done(i)
    except BaseException:
        for future in pending:
            ray.cancel(future, force=True)
        raise
    return [results[i] for i in range(len(calls))]


@dataclass(frozen=True)
class RayExecutor:
    """:class:`postloc.models.stack.fits.Executor` on a Ray cluster (local, or joined through ``settings``)."""

    settings: RaySettings = field(default_factory=RaySettings)
    cpus_per_task: int = 1

    def map(
        self, fn: Callable[..., R], shared: tuple[Any, ...], calls: Sequence[tuple[Any, ...]], done: Done
    ) -> list[R]:
        with ray_session(self.settings, workers=len(calls)) as ray:
            return map_tasks(ray, fn, shared, calls, done, self.cpus_per_task)
