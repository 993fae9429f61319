"""A small async micro-batcher: concurrent requests share one model call.

A model call on CPU costs a fixed overhead plus a little per row, so answering 32 concurrent
requests with one batch of 32 rows is much cheaper than 32 calls. Requests put their rows into a
queue; one task takes what has arrived (waiting at most ``max_wait_s`` for more, up to
``max_rows``), runs the model in a single worker thread (the event loop stays responsive, and
torch is not entered from several threads at once) and hands every request its slice.

The default wait is 0: the batch is whatever queued while the previous model call ran
("greedy" batching). A lone client then pays no window at all, and under load the batches
grow by themselves, since requests pile up exactly while the model is busy. A fixed window
only adds its length to every request's latency once the model is the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar


class Rows(Protocol):
    """What a model call gives back for a batch of rows: one entry per row, sliced back to each request."""

    def __getitem__(self, rows: slice, /) -> Any: ...


R = TypeVar("R", bound=Rows)
#: rows -> their probabilities (:meth:`postloc.inference.predictor.Predictor.probabilities`, an array)
ProbaFn = Callable[[list[Any]], R]


class MicroBatcher(Generic[R]):
    def __init__(self, proba: ProbaFn[R], max_rows: int = 64, max_wait_s: float = 0.0):
        self.proba, self.max_rows, self.max_wait_s = proba, max_rows, max_wait_s
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # statistics, for the benchmark and /healthz
        self.rows = 0

    def _pool(self) -> ThreadPoolExecutor:
        """The model thread; made anew after :meth:`stop`, since an app's lifespan may run again
        (a second test client, a reload) and a shut-down executor refuses work."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postloc-model")
        return self._executor

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Without a consumer the queue would swallow later calls forever: they go direct again.
        self._queue, self._task = None, None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def __call__(self, rows: list[Any]) -> R:
        """Probabilities for ``rows`` (one request's rows always stay in one model call)."""
        if self._queue is None:  # not started (e.g. used outside the app's lifespan): call directly
            return await asyncio.get_running_loop().run_in_executor(self._pool(), self.proba, rows)
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0][0])
            while size < self.max_rows and not self._queue.empty():  # what queued meanwhile: no wait
                job = self._queue.get_nowait()
                jobs.append(job)
                size += len(job[0])
            deadline = loop.time() + self.max_wait_s
            while size < self.max_rows and self.max_wait_s > 0:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job[0])
            rows = [row for job_rows, _ in jobs for row in job_rows]
            try:
                matrix = await loop.run_in_executor(self._pool(), self.proba, rows)
            except Exception as error:  # noqa: BLE001 - every waiting request gets the failure
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.batches += 1
            self.rows += len(rows)
            start = 0
            for job_rows, future in jobs:
                if not future.done():
                    future.set_result(matrix[start : start + len(job_rows)])
                start += len(job_rows)
