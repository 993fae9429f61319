"""What ``train`` prints: a bar on a terminal, one line per epoch in a log file (issue 14, target 6)."""

from __future__ import annotations

import io
import sys

import numpy as np
import torch
from torch import nn

from postloc.nn.config import TrainerConfig
from postloc.nn.trainer import Trainer

EPOCHS = 3


class _Data:
    """40 posts of 4 features, 2 classes: ten batches of 4, so a bar would redraw often."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(40, 4)).astype(np.float32))
        self.y = torch.from_numpy((rng.random(40) > 0.5).astype(np.int64))

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(batch["x"])


def _fit() -> None:
    torch.manual_seed(0)
    config = TrainerConfig(epochs=EPOCHS, batch_size=4, threads=1, early_stopping=0, progress=True)
    Trainer(config).fit(_Net(), _Data(), None, export=lambda folder: None, restore=lambda folder: None)


def test_log_file_gets_one_line_per_epoch_and_no_bar_frames(capfd):
    _fit()  # under pytest neither stdout nor stderr is a terminal: what `train > log 2>&1` sees
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == EPOCHS
    assert [line.split(":")[0] for line in lines] == [f"epoch {e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_keeps_the_bar(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _fit()
    assert "\r" in terminal.getvalue()  # the bar's redraws
    assert "batch" in terminal.getvalue()
    assert capsys.readouterr().out.count("epoch ") == EPOCHS
