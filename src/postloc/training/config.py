"""Training configuration: dataclasses, a TOML file, and ``key=value`` overrides from the CLI.

A run is described by :class:`RunConfig`: which registered model, that model's own parameters
(``params``, validated by the model's config dataclass) and the optimisation settings
(:class:`TrainerConfig`). The same object is written to ``RUN/config.json`` so that a run can
be resumed, evaluated and reproduced from its folder alone.

TOML layout (every key optional)::

    model = "stack"   # the default; "mrlf" for the paper's model
    [trainer]
    epochs = 30
    seed = 1
    [params]
    fusion = "concat"
    modalities = ["text", "hashtags"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from postloc.errors import BadInputError, PostlocError
from postloc.io.inputs import read_small_text
from postloc.io.run_folder import MANIFEST, RunFolder
from postloc.nn.config import MONITORS, TrainerConfig
from postloc.settings import make_dataclass_config

__all__ = [
    "MONITORS",
    "RunConfig",
    "TrainerConfig",
    "apply_overrides",
    "load_config",
    "make_dataclass_config",
    "parse_value",
    "read_run_config",
    "with_trainer",
]


#: what ``postloc train`` trains when neither ``--model`` nor the config names one: postloc's own
#: ``stack``, which beats MRLF and the baselines on user-disjoint folds (docs/winning-model.md);
#: ``make demo`` still trains ``mrlf`` by name, to reproduce the paper
DEFAULT_MODEL = "stack"


@dataclass(frozen=True)
class RunConfig:
    """Everything ``train`` needs besides the data: model name, model params, trainer settings."""

    model: str = DEFAULT_MODEL
    params: Mapping[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": dict(self.params), "trainer": asdict(self.trainer)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        unknown = set(data) - {"model", "params", "trainer"}
        if unknown:
            raise PostlocError(f"unknown top-level config keys {sorted(unknown)}; use model, [params], [trainer]")
        trainer = dict(data.get("trainer") or {})
        return cls(
            model=str(data.get("model", DEFAULT_MODEL)),
            params=dict(data.get("params") or {}),
            trainer=make_dataclass_config(TrainerConfig, trainer, "trainer"),
        )


#: a run config is a few lines of TOML
CONFIG_MAX_BYTES = 1 << 20


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML config file."""
    path = Path(path)
    try:
        data = tomllib.loads(read_small_text(path, CONFIG_MAX_BYTES))
    except BadInputError as error:
        raise PostlocError(f"cannot read config {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PostlocError(f"{path}: not valid TOML: {error}") from None
    return RunConfig.from_dict(data)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The config a run was started with (the run's manifest, ``RUN/config.json``)."""
    run = RunFolder(run_dir)
    if not run.is_started():
        raise PostlocError(f"{run_dir} is not a training run (no {MANIFEST})")
    return RunConfig.from_dict(run.read_manifest()["config"])


def apply_overrides(config: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """Apply ``key=value`` strings: ``trainer.epochs=5``, ``params.fusion=concat``, ``model=majority``.

    A key without a section goes to ``trainer`` when it names a trainer setting, else to
    ``params``. Values are read as TOML (``5``, ``0.3``, ``true``, ``["text", "image"]``) and
    fall back to a plain string, so ``fusion=concat`` needs no quotes.
    """
    trainer = asdict(config.trainer)
    params = dict(config.params)
    model = config.model
    trainer_keys = set(trainer)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PostlocError(f"--set expects KEY=VALUE, got {item!r}")
        value = parse_value(raw.strip())
        section, dot, name = key.rpartition(".")
        if not dot:
            section, name = ("trainer" if key in trainer_keys else "params"), key
            if key == "model":
                section = ""
        if section == "" and name == "model":
            model = str(value)
        elif section == "trainer":
            if name not in trainer_keys:
                raise PostlocError(f"unknown trainer setting {name!r}; valid: {', '.join(sorted(trainer_keys))}")
            trainer[name] = value
        elif section in ("params", "model"):
            params[name] = value
        else:
            raise PostlocError(f"unknown config section {section!r} in {key!r}; use trainer.NAME or params.NAME")
    return RunConfig(model=model, params=params, trainer=make_dataclass_config(TrainerConfig, trainer, "trainer"))


def parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def with_trainer(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy with some trainer settings changed (used by the CLI's --epochs/--seed)."""
    return replace(config, trainer=replace(config.trainer, **changes))
