"""Data-parallel training under ``torchrun``: launch detection, the process group, small collectives.

``torchrun`` (``python -m torch.distributed.run``, part of torch) starts one process per
worker and tells each who it is through environment variables (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`session` reads them, joins the
process group (gloo on CPU, NCCL when the device is CUDA) and leaves it at the end; without
them it yields ``None`` and nothing here changes the single-process path.

The trainer uses the rest: :func:`shard_batches` (every rank must take the same number of
optimizer steps, or DDP's gradient all-reduce waits forever for the rank that stopped early),
:func:`all_reduce_sums` (epoch metrics over all ranks), :func:`broadcast_object` (rank 0's
numbers decide the learning-rate schedule and early stopping, so every rank decides the same),
:func:`on_main` (run folder checks and reads happen on rank 0 only; a failure there is raised
on every rank instead of leaving the others waiting) and :func:`mirror_latest_checkpoint`
(``--resume`` without the other ranks reading the run folder, which may live on rank 0's
disk only). See docs/scale-training.md.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from postloc.errors import PostlocError

BACKENDS = ("gloo", "nccl")
LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")
T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Who this process is in a data-parallel run, and where its tensors live."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CONTEXT: DistContext | None = None


# --- launch and process group ----------------------------------------------------------------


def launched_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """True when the variables torchrun sets for its workers are all present."""
    env = os.environ if env is None else env
    return all(env.get(name) for name in LAUNCH_VARIABLES)


def launch_info(env: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from torchrun's variables, or None outside torchrun."""
    env = os.environ if env is None else env
    if not launched_by_torchrun(env):
        return None
    values = {}
    for name, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "0")):
        raw = env.get(name, default)
        try:
            values[name] = int(raw if raw is not None else "")
        except ValueError:
            raise PostlocError(f"environment variable {name} must be an integer, got {raw!r}") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise PostlocError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return rank, world, local


def resolve_backend(backend: str | None) -> str:
    """``None``/``"auto"``: NCCL when CUDA is available, else gloo. NCCL without a GPU is an error."""
    if backend in (None, "", "auto"):
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in BACKENDS:
        raise PostlocError(f"unknown distributed backend {backend!r}; use auto, {', '.join(BACKENDS)}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise PostlocError("backend nccl needs CUDA GPUs, and torch sees none here; use --backend gloo")
    return backend


def current() -> DistContext | None:
    """The running data-parallel context, or None for an ordinary single-process run.

    Inside :func:`session` that is the session's context; a process group a caller set up
    itself (``torch.distributed.init_process_group``) is picked up too.
    """
    if _CONTEXT is not None:
        return _CONTEXT
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return _context_from_group()
    return None


@contextlib.contextmanager
def session(backend: str | None = None) -> Iterator[DistContext | None]:
    """Join the process group when torchrun launched this process; yield the context (or None).

    Re-entrant: inside a running session (or a process group set up by the caller) it yields
    that context and leaves it alone at the end. ``backend`` outside torchrun is a mistake
    (it would silently do nothing), so it raises.
    """
    global _CONTEXT
    existing = current()
    if existing is not None:
        yield existing
        return
    info = launch_info()
    if info is None:
        if backend not in (None, "", "auto"):
            raise PostlocError(
                f"backend {backend!r} only applies to runs launched by torchrun "
                f"({', '.join(LAUNCH_VARIABLES)} are not all set)"
            )
        yield None
        return
    rank, world, local_rank = info
    name = resolve_backend(backend)
    if name == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise PostlocError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible; "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    torch.distributed.init_process_group(
        backend=name,
        init_method="env://",
        rank=rank,
        world_size=world,
        device_id=device if name == "nccl" else None,
    )
    _CONTEXT = DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=name, device=device)
    try:
        yield _CONTEXT
    finally:
        _CONTEXT = None
        torch.distributed.destroy_process_group()


def _context_from_group() -> DistContext:
    backend = str(torch.distributed.get_backend())
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend, device=device)


# --- batches ---------------------------------------------------------------------------------


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """The configured batch size is the *global* one; each rank takes ``batch_size // world_size``.

    That keeps a 2-process run comparable to a 1-process run with the same settings (same
    posts per optimizer step, same steps per epoch). When it does not divide, the global batch
    is ``world_size * (batch_size // world_size)``, slightly smaller, and a warning says so.
    """
    if world_size > batch_size:
        raise PostlocError(
            f"trainer.batch_size={batch_size} is the global batch size and must be at least "
            f"the number of processes ({world_size})"
        )
    if batch_size % world_size:
        warnings.warn(
            f"trainer.batch_size={batch_size} is not divisible by {world_size} processes; each "
            f"takes {batch_size // world_size} posts per step (global batch "
            f"{world_size * (batch_size // world_size)})",
            stacklevel=2,
        )
    return batch_size // world_size


def shard_batches(batches: Sequence[T], rank: int, world_size: int) -> tuple[list[T], int]:
    """Rank ``rank``'s share of an epoch's batches (every ``world_size``-th), padded to equal length.

    Every rank gets ``ceil(len(batches) / world_size)`` batches, because DDP all-reduces the
    gradients of each step and a rank with fewer steps would leave the others waiting. Ranks
    whose share is short repeat batches from the start of the list. Returns the share and how
    many of its trailing batches are such repeats (trained on, but not counted in metrics).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise PostlocError(f"rank {rank} is not in a world of {world_size} processes")
    n = len(batches)
    if n == 0:
        return [], 0
    steps = -(-n // world_size)
    positions = range(rank, steps * world_size, world_size)
    return [batches[i % n] for i in positions], sum(1 for i in positions if i >= n)


class Subset:
    """The posts at ``ids`` of a batch data object (``len``, ``batch``, optional ``lengths``)."""

    def __init__(self, data: Any, ids: np.ndarray):
        self.data = data
        self.ids = np.asarray(ids, dtype=np.int64)
        if hasattr(data, "lengths"):
            self.lengths = lambda: data.lengths()[self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return self.data.batch(self.ids[np.asarray(index, dtype=np.int64)])


def shard_posts(data: Any, ctx: DistContext) -> Subset:
    """Every ``world_size``-th post, for evaluation split over the ranks (no padding needed)."""
    return Subset(data, np.arange(ctx.rank, len(data), ctx.world_size))


# --- model -----------------------------------------------------------------------------------


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` (already on ``ctx.device``) in DistributedDataParallel.

    ``find_unused_parameters=True`` because which parameters take part in a step is the
    model's business: a modality subset or a baseline may leave some out of the graph, and
    DDP without the flag would wait forever for their gradients.
    """
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def rank_seed(seed: int, rank: int) -> int:
    """A torch seed per rank so that dropout masks differ between ranks (rank 0 keeps ``seed``)."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def broadcast_module(module: nn.Module, ctx: DistContext, src: int = 0) -> None:
    """Overwrite every parameter and buffer with rank ``src``'s values (in place)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            torch.distributed.broadcast(tensor, src=src)


# --- collectives -----------------------------------------------------------------------------


def all_reduce_sums(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64, so counts stay exact)."""
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_object(value: T, ctx: DistContext, src: int = 0) -> T:
    """Rank ``src``'s ``value`` on every rank (any picklable object)."""
    box: list[Any] = [value if ctx.rank == src else None]
    torch.distributed.broadcast_object_list(box, src=src, device=_object_device(ctx))
    return box[0]


def gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    box: list[Any] = [None] * ctx.world_size
    torch.distributed.all_gather_object(box, value)
    return box


def broadcast_stop(stop: bool, ctx: DistContext) -> bool:
    """Rank 0's stop decision on every rank, so no rank starts an epoch the others skip."""
    return bool(broadcast_object(bool(stop), ctx))


def on_main(function: Callable[[], T], ctx: DistContext | None) -> T:
    """Run ``function`` on rank 0 only and hand its result to every rank.

    If it raises, every rank raises (rank 0 its own error, the others a PostlocError quoting
    it), instead of rank 0 dying while the others wait in the next collective. Outside a
    data-parallel run it simply calls ``function``.
    """
    if ctx is None:
        return function()
    outcome: tuple[bool, Any] = (True, None)
    error: BaseException | None = None
    if ctx.is_main:
        try:
            outcome = (True, function())
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
            error = exc
            outcome = (False, f"{type(exc).__name__}: {exc}" if not isinstance(exc, PostlocError) else str(exc))
    ok, value = broadcast_object(outcome, ctx)
    if error is not None:
        raise error
    if not ok:
        raise PostlocError(f"rank 0 failed: {value}")
    return value


def rank_rng_state(rng: Mapping[str, Any], ctx: DistContext | None) -> Mapping[str, Any]:
    """This rank's saved RNG state from a checkpoint: its own when the world size matches, else rank 0's."""
    ranks = rng.get("ranks")
    if ctx is not None and ranks and len(ranks) == ctx.world_size:
        return ranks[ctx.rank]
    return rng


# --- files -----------------------------------------------------------------------------------


def mirror_latest_checkpoint(run_dir: Path, dest: Path, ctx: DistContext) -> Path | None:
    """Copy rank 0's newest checkpoint of ``run_dir`` into ``dest`` on the other ranks.

    Rank 0 reads the files and broadcasts them; the others write them under ``dest`` with the
    same layout (``checkpoints/epoch-NNNN/...``), so the model's resume code finds them there
    and no rank but 0 reads the run folder. Returns the folder to resume from (``run_dir`` on
    rank 0, ``dest`` elsewhere), or None when there is no checkpoint.
    """
    from postloc.nn import checkpoints as ck

    def read() -> dict[str, bytes]:
        latest = ck.latest_checkpoint(run_dir)
        if latest is None:
            return {}
        return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(latest.rglob("*")) if p.is_file()}

    files = on_main(read, ctx)
    if not files:
        return None
    if ctx.is_main:
        return run_dir
    for relative, content in files.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return dest


def _object_device(ctx: DistContext) -> torch.device | None:
    return ctx.device if ctx.backend == "nccl" else None
