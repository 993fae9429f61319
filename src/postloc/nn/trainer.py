"""The epoch loop shared by neural models: RMSprop, x0.8 on plateau, early stopping, checkpoints.

The trainer knows nothing about MRLF. It gets a module mapping a batch dict to logits, data
objects with ``len()`` and ``batch(index) -> dict`` (holding ``y``), and two callables from the
model: ``export(folder)`` writes a loadable model folder and ``restore(folder)`` reads weights
back. Everything that makes a run resumable lives in the checkpoint folder: the exported model,
the optimizer (safetensors + JSON), and ``trainer_state.json`` (epoch, best score, learning
rate, patience counters, history, RNG states).

Shuffling uses a generator seeded by ``(seed, epoch)``, and the torch RNG state (dropout) is
restored on resume, so "2 epochs, crash, resume to 4" gives the same weights as 4 epochs in one go.

Under ``torchrun`` (see :mod:`postloc.nn.distributed` and docs/scale-training.md) the
same loop runs data-parallel: the module is wrapped in DistributedDataParallel, each rank
trains on its share of every epoch's batches (``batch_size`` stays the global batch size),
validation is split over the ranks and summed, rank 0's numbers drive the schedule and early
stopping on every rank, and only rank 0 writes files or draws progress bars. Without torchrun
none of that code runs.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from postloc.errors import PostlocError
from postloc.io.atomic import write_folder_atomically
from postloc.io.inputs import read_small_json
from postloc.io.run_folder import BEST, CURVES_PNG, RunFolder
from postloc.nn import checkpoints as ck
from postloc.nn import distributed as dist
from postloc.nn.config import TrainerConfig, resolve_threads


class DivergedError(PostlocError):
    """The loss (or the weights) stopped being finite: training cannot recover, and resuming repeats it.

    Raised before the epoch is checkpointed or kept as ``best/``; its per-epoch row (NaN as null) is
    in ``metrics.jsonl``.
    """

    def __init__(self, epoch: int, lr: float):
        super().__init__(
            f"diverged at epoch {epoch}: lower the learning rate (the loss stopped being finite "
            f"at trainer.lr={lr:g}; try 10 to 100 times lower)"
        )
        self.epoch = epoch


class BatchData(Protocol):
    def __len__(self) -> int: ...

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]: ...


#: a batch's loss: ``loss(logits, batch) -> scalar tensor`` (``batch`` holds ``y``, -1: unlabelled)
LossFn = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def cross_entropy_loss(
    logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    *,
    label_smoothing: float = 0.0,
    soft_targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy over the labelled posts of a batch (``y >= 0``), weighted by ``batch["weight"]`` if present.

    Without weights, smoothing and soft targets this is exactly
    ``F.cross_entropy(logits, y, ignore_index=-1)`` (the same call, so the same bits). With
    ``batch["weight"]`` (one non-negative number per post) it is the weighted mean
    ``sum(w_i * loss_i) / sum(w_i)`` over the labelled posts: a post of weight 0 does not move the
    loss. ``label_smoothing`` is torch's (``1 - eps`` on the label, ``eps / K`` on every class);
    ``soft_targets`` (``K x K``, rows summing to 1) replaces it: row ``y`` is the target distribution
    of a post labelled ``y``.
    """
    y = batch["y"]
    weight = batch.get("weight")
    if weight is None and soft_targets is None:
        return F.cross_entropy(logits, y, ignore_index=-1, label_smoothing=label_smoothing)
    labelled = y >= 0
    if soft_targets is not None:
        targets = soft_targets.to(device=logits.device, dtype=logits.dtype)[y.clamp(min=0)]
        per_post = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    else:
        per_post = F.cross_entropy(logits, y, ignore_index=-1, reduction="none", label_smoothing=label_smoothing)
    w = labelled.to(per_post.dtype)
    if weight is not None:
        w = w * weight.to(device=per_post.device, dtype=per_post.dtype)
    return (per_post * w).sum() / w.sum().clamp_min(torch.finfo(per_post.dtype).tiny)


class WeightedData:
    """``data`` whose batches also hold ``weight`` (one loss weight per post, in ``data``'s order).

    Everything else (``len``, ``lengths``, ``groups``) is ``data``'s, so batching is unchanged.
    """

    def __init__(self, data: BatchData, weights: np.ndarray):
        if len(weights) != len(data):
            raise ValueError(f"{len(weights)} weights for {len(data)} posts")
        self.data = data
        self.weights = np.asarray(weights, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str) -> Any:  # lengths(), groups(), ... when ``data`` has them
        if name in ("data", "weights"):
            raise AttributeError(name)
        return getattr(self.data, name)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return {**self.data.batch(index), "weight": torch.from_numpy(self.weights[index])}


class Callback:
    """Hooks into the loop; tests use them to interrupt a run at a chosen point."""

    def on_batch_end(self, epoch: int, step: int, loss: float) -> None:
        pass

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        pass


@dataclass
class TrainState:
    """What the trainer must remember between epochs (and across an interruption)."""

    epoch: int = 0  # last completed epoch
    lr: float = 0.0
    best_score: float = -math.inf  # higher is better (the negated loss when monitoring a loss)
    best_epoch: int = 0
    lr_bad_epochs: int = 0
    stop_bad_epochs: int = 0
    finished: bool = False
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> TrainState:
        return cls(**read_small_json(folder / ck.TRAINER_STATE))


@contextlib.contextmanager
def deterministic(threads: int | str) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count for the duration of a fit, restored after.

    ``threads`` is ``trainer.threads``: a number, or ``"auto"`` (see :func:`postloc.nn.config.free_cores`).
    """
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(resolve_threads(threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_det, warn_only=previous_warn)


class Trainer:
    """Runs epochs over a module; see the module docstring."""

    def __init__(
        self,
        config: TrainerConfig,
        *,
        run_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        progress: bool | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = list(callbacks)
        self.progress = config.progress if progress is None else progress

    def fit(
        self,
        module: nn.Module,
        train: BatchData,
        val: BatchData | None,
        export: Callable[[Path], None],
        restore: Callable[[Path], None],
        resume_from: Path | None = None,
        loss: LossFn | None = None,
    ) -> TrainState:
        """Train ``module``; ``loss`` is the training loss per batch (default :func:`cross_entropy_loss`).

        Validation, the schedule and early stopping always use the plain cross-entropy of
        :func:`evaluate_loss`, whatever the training loss.
        """
        cfg = self.config
        loss_fn = loss if loss is not None else cross_entropy_loss
        ctx = dist.current()
        out = self.run_dir if ctx is None or ctx.is_main else None  # only rank 0 touches the run folder
        if ctx is not None:
            module.to(ctx.device)
        optimizer = torch.optim.RMSprop(module.parameters(), lr=cfg.lr)
        state = TrainState(lr=cfg.lr)
        if resume_from is not None:
            state = TrainState.read(resume_from)
            ck.read_optimizer(resume_from, optimizer)
            ck.set_rng_state(dist.rank_rng_state(state.rng, ctx))
            if state.finished and state.epoch < cfg.epochs and state.stop_reason == "epochs":
                state.finished = False  # more epochs were asked for than the run had: continue it
        elif ctx is not None:
            torch.manual_seed(dist.rank_seed(cfg.seed, ctx.rank))  # different dropout masks per rank
        net = dist.wrap(module, ctx) if ctx is not None else module
        val_data = val if val is not None and len(val) > 0 else None
        monitor = cfg.monitor if val_data is not None else "train_loss"
        best_memory = {k: v.detach().clone() for k, v in module.state_dict().items()}

        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            if state.finished:
                break
            for group in optimizer.param_groups:
                group["lr"] = state.lr
            started = time.perf_counter()
            train_loss, train_acc = self._train_epoch(net, optimizer, train, epoch, ctx, loss_fn)
            seconds = time.perf_counter() - started
            row: dict[str, Any] = {"epoch": epoch, "lr": state.lr, "train_loss": train_loss, "train_acc": train_acc}
            if val_data is not None:
                val_loss, val_acc = (
                    evaluate_loss(module, val_data, cfg.eval_batch_size)
                    if ctx is None
                    else _evaluate_sharded(module, val_data, cfg.eval_batch_size, ctx)
                )
                row.update(val_loss=val_loss, val_acc=val_acc)
            row["seconds"] = round(seconds, 3)
            if ctx is not None:
                row = dist.broadcast_object(row, ctx)  # rank 0's numbers: every rank takes the same decisions
            if diverged(row, module):
                state.history.append(row)
                if out is not None:
                    RunFolder(out).write_metrics(state.history)  # the NaN epoch, for the user to see (as null)
                raise DivergedError(epoch, state.lr)
            score = monitored_score(row, monitor)
            improved = score > state.best_score + cfg.min_delta
            if improved:
                state.best_score, state.best_epoch = score, epoch
                state.lr_bad_epochs = state.stop_bad_epochs = 0
                best_memory = {k: v.detach().clone() for k, v in module.state_dict().items()}
                if out is not None:
                    write_folder_atomically(out / BEST, export)
            else:
                state.lr_bad_epochs += 1
                state.stop_bad_epochs += 1
                if state.lr_bad_epochs >= cfg.lr_patience:
                    state.lr = max(state.lr * cfg.lr_factor, cfg.min_lr)
                    state.lr_bad_epochs = 0
            row["best"] = improved
            state.history.append(row)
            state.epoch = epoch
            if cfg.early_stopping and state.stop_bad_epochs >= cfg.early_stopping:
                state.finished, state.stop_reason = (
                    True,
                    f"early stopping: no {monitor} improvement in {cfg.early_stopping} epochs",
                )
            elif epoch == cfg.epochs:
                state.finished, state.stop_reason = True, "epochs"
            state.rng = ck.rng_state()
            if ctx is not None:
                state.finished = dist.broadcast_stop(state.finished, ctx)
                if ctx.world_size > 1:  # each rank's dropout stream, so a resumed run continues every rank's
                    state.rng = {**state.rng, "ranks": dist.gather_objects(state.rng, ctx)}
            if out is not None:
                self._checkpoint(out, state, optimizer, export)
                RunFolder(out).write_metrics(state.history)
            if self.progress and (ctx is None or ctx.is_main):
                _echo(_epoch_line(row, cfg.epochs))
            for callback in self.callbacks:
                callback.on_epoch_end(epoch, row)

        if out is not None and (out / BEST).exists():
            restore(out / BEST)
        else:
            module.load_state_dict(best_memory)
        if ctx is not None:
            dist.broadcast_module(module, ctx)  # every rank ends with rank 0's best weights
            module.to("cpu")  # prediction and saving after training expect CPU tensors
        if out is not None and state.history:
            plot_curves(state.history, out / CURVES_PNG)
        return state

    def _train_epoch(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: BatchData,
        epoch: int,
        ctx: dist.DistContext | None = None,
        loss_fn: LossFn = cross_entropy_loss,
    ) -> tuple[float, float]:
        cfg = self.config
        module.train()
        rng = np.random.default_rng([cfg.seed, epoch])  # the same on every rank, so the batch plans agree
        repeats = 0
        if ctx is None:
            batches = epoch_batches(data, cfg.batch_size, rng)
        else:
            batches = epoch_batches(data, dist.per_rank_batch_size(cfg.batch_size, ctx.world_size), rng)
            batches, repeats = dist.shard_batches(batches, ctx.rank, ctx.world_size)
        total_loss, correct, seen = 0.0, 0, 0
        bar = _bar(len(batches), f"epoch {epoch}/{cfg.epochs}", self.progress and (ctx is None or ctx.is_main))
        for step, index in enumerate(batches, start=1):
            batch = data.batch(index)
            if ctx is not None:
                batch = _to_device(batch, ctx.device)
            logits = module(batch)
            loss = loss_fn(logits, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_value = loss.item()
            if step <= len(batches) - repeats:  # the last `repeats` pad this rank's share: trained, not counted
                labelled = batch["y"] >= 0
                n = int(labelled.sum())
                total_loss += loss_value * n
                correct += int((logits.detach().argmax(dim=1) == batch["y"])[labelled].sum())
                seen += n
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.3f}")
            for callback in self.callbacks:
                callback.on_batch_end(epoch, step, loss_value)
        if bar is not None:
            bar.close()
        if ctx is not None:
            total_loss, all_correct, all_seen = dist.all_reduce_sums([total_loss, correct, seen], ctx)
            return total_loss / max(all_seen, 1), all_correct / max(all_seen, 1)
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def _checkpoint(
        self, run_dir: Path, state: TrainState, optimizer: torch.optim.Optimizer, export: Callable[[Path], None]
    ) -> None:
        def fill(folder: Path) -> None:
            export(folder)
            ck.write_optimizer(folder, optimizer)
            ck.write_json(folder / ck.TRAINER_STATE, asdict(state))

        write_folder_atomically(ck.checkpoint_dir(run_dir, state.epoch), fill)
        ck.prune_checkpoints(run_dir, self.config.keep_checkpoints)


def diverged(row: dict[str, Any], module: nn.Module) -> bool:
    """Whether an epoch left training unrecoverable: a non-finite train loss, weights or val loss.

    A NaN validation loss with a finite accuracy means the probabilities themselves are NaN; a NaN
    loss *and* accuracy only means no val post is labelled (see :func:`monitored_score`).
    """
    if not math.isfinite(row["train_loss"]):
        return True
    val_loss, val_acc = row.get("val_loss"), row.get("val_acc")
    if val_loss is not None and not math.isfinite(val_loss) and val_acc is not None and math.isfinite(val_acc):
        return True
    with torch.no_grad():
        return not all(bool(torch.isfinite(p).all()) for p in module.parameters())


def monitored_score(row: dict[str, Any], monitor: str) -> float:
    """The epoch's score, higher is better: the monitored value, or the negated train loss when that
    value is NaN (no labelled val post), so that some epoch always becomes ``best/``."""
    value = row.get(monitor)
    if value is None or not math.isfinite(value):
        return -row["train_loss"]
    return value if monitor.endswith("acc") else -value


def epoch_batches(data: BatchData, batch_size: int, rng: np.random.Generator, bucket: int = 50) -> list[np.ndarray]:
    """Shuffled batches; with ``data.lengths()``, posts of similar length share a batch.

    Each batch is cut to its longest post, so one 200-character hashtag list in a batch of
    short ones makes the whole batch pay for 200 characters. Sorting within random windows of
    ``bucket`` batches, then shuffling the batch order, keeps the randomness of SGD while most
    batches stay short.
    """
    order = rng.permutation(len(data))
    lengths = data.lengths() if hasattr(data, "lengths") else None
    if lengths is not None:
        window = batch_size * bucket
        order = (
            np.concatenate(
                [
                    chunk[np.argsort(lengths[chunk], kind="stable")]
                    for chunk in np.array_split(order, max(1, -(-len(order) // window)))
                ]
            )
            if len(order)
            else order
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))] if lengths is not None else batches


def evaluate_loss(module: nn.Module, data: BatchData, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the labelled posts of ``data`` (eval mode, no grad)."""
    proba, y = predict_proba_batches(module, data, batch_size, with_labels=True)
    labelled = y >= 0
    if not labelled.any():
        return float("nan"), float("nan")
    p = np.clip(proba[labelled, y[labelled]], 1e-12, 1.0)
    return float(-np.log(p).mean()), float((proba[labelled].argmax(axis=1) == y[labelled]).mean())


def _evaluate_sharded(
    module: nn.Module, data: BatchData, batch_size: int, ctx: dist.DistContext
) -> tuple[float, float]:
    """:func:`evaluate_loss` over the whole of ``data``, each rank scoring every ``world_size``-th post."""
    proba, y = predict_proba_batches(module, dist.shard_posts(data, ctx), batch_size, with_labels=True)
    labelled = y >= 0
    p = np.clip(proba[labelled, y[labelled]], 1e-12, 1.0)
    nll, correct, n = dist.all_reduce_sums(
        [float(-np.log(p).sum()), float((proba[labelled].argmax(axis=1) == y[labelled]).sum()), float(labelled.sum())],
        ctx,
    )
    if n == 0:
        return float("nan"), float("nan")
    return nll / n, correct / n


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on ``device`` (the same objects when that is where they already are)."""
    return {k: v.to(device) for k, v in batch.items()}


def predict_proba_batches(module: nn.Module, data: BatchData, batch_size: int, *, with_labels: bool = False):
    """Softmax probabilities for all posts of ``data`` in order, batch by batch, under inference mode."""
    was_training = module.training
    if was_training:  # eval() and train() walk every submodule: a loaded model stays in eval mode (single posts)
        module.eval()
    order, bounds = inference_batches(data, batch_size)
    device = next(iter(module.parameters()), torch.empty(0)).device  # CPU except in a data-parallel run on GPUs
    chunks, labels = [], []
    with torch.inference_mode():
        for start, end in bounds:
            batch = data.batch(order[start:end])
            labels.append(batch["y"].numpy())
            if device.type != "cpu":
                batch = _to_device(batch, device)
            chunks.append(torch.softmax(module(batch), dim=1).double().cpu().numpy())
    if was_training:
        module.train()
    log_prior = getattr(module, "log_prior", None)
    n_classes = log_prior.shape[0] if log_prior is not None else 0
    proba = np.zeros((len(data), n_classes))
    y = np.zeros(len(data), dtype=np.int64)
    if chunks:
        proba[order] = np.concatenate(chunks)
        y[order] = np.concatenate(labels)
    proba /= np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)  # exact sum 1 in float64
    if with_labels:
        return proba, y
    return proba


def inference_batches(
    data: BatchData, batch_size: int, *, slack: float = 1.25, extra: int = 8
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A post order and ``(start, end)`` batches of it that waste little work on padding.

    Each batch is cut to its longest post, so posts are sorted by ``data.groups()`` (which
    inputs a post has: a batch without captions skips the text branch) and then by
    ``data.lengths()``; a batch ends at ``batch_size`` posts, at a group change, or when a post
    is longer than ``slack`` x the batch's first post + ``extra``: padding then stays a bounded
    fraction of the work, and per-batch overhead stays small. Posts' results do not depend on
    their batch (padding is masked), only on floating-point summation order (< 1e-6).
    """
    n = len(data)
    lengths = np.asarray(data.lengths() if hasattr(data, "lengths") else np.zeros(n), dtype=np.int64)
    groups = np.asarray(data.groups() if hasattr(data, "groups") else np.zeros(n), dtype=np.int64)
    order = np.lexsort((lengths, groups))
    lengths, groups = lengths[order], groups[order]
    group_ends = np.r_[np.nonzero(np.diff(groups))[0] + 1, n]
    bounds = []
    start = 0
    for group_end in group_ends:
        while start < group_end:
            limit = int(lengths[start] * slack) + extra
            end = min(start + batch_size, int(group_end))
            end = max(start + 1, min(end, int(np.searchsorted(lengths[start:end], limit, side="right")) + start))
            bounds.append((start, end))
            start = end
    return order, bounds


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "val"):
            values = [r.get(f"{split}_{key}") for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    best = [r["epoch"] for r in history if r.get("best")]
    if best:
        ax_loss.axvline(best[-1], color="grey", linestyle="--", linewidth=1)
        ax_acc.axvline(best[-1], color="grey", linestyle="--", linewidth=1)
    fig.suptitle("training curves (dashed: best epoch)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    line = f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f} acc {row['train_acc']:.3f}"
    if "val_loss" in row:
        line += f" | val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}"
    return line + f" | lr {row['lr']:.2g} | {row['seconds']:.1f} s" + (" | best" if row.get("best") else "")


def _bar(total: int, desc: str, enabled: bool):
    """A per-batch bar on stderr, drawn only when stderr is a terminal.

    In a log file every redraw of a bar is a carriage-return frame (an 11-epoch demo run wrote
    ~990 of them), so off a terminal the one line per epoch of :func:`_echo` is all the output.
    """
    if not enabled or not _is_terminal(sys.stderr):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False, file=sys.stderr)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _echo(message: str) -> None:
    """One line on stdout, written above a bar that may be drawn on the terminal."""
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stdout)
