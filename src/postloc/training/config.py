"""Training configuration: dataclasses, a TOML file, and ``key=value`` overrides from the CLI.

A run is described by :class:`RunConfig`: which registered model, that model's own parameters
(``params``, validated by the model's config dataclass) and the optimisation settings
(:class:`TrainerConfig`). The same object is written to ``RUN/config.json`` so that a run can
be resumed, evaluated and reproduced from its folder alone.

TOML layout (every key optional)::

    model = "mrlf"
    [trainer]
    epochs = 30
    seed = 1
    [params]
    fusion = "concat"
    modalities = ["text", "hashtags"]
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from postloc.errors import PostlocError

MONITORS = ("val_loss", "val_acc")


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings of the epoch-based trainer (the paper's Sec. IV-A where it has numbers).

    The paper: RMSprop, learning rate x0.8 when the validation score stops improving for
    ``lr_patience`` epochs; the numbers it gave for the rate, the patience and the epochs were
    lost, so the defaults here are argued in docs/mrlf.md.
    """

    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3  # Keras' RMSprop default; the paper used TensorFlow
    lr_factor: float = 0.8  # paper
    lr_patience: int = 2  # epochs without improvement before the rate is multiplied by lr_factor
    min_lr: float = 1e-5
    early_stopping: int = 6  # epochs without improvement before training stops; 0: never
    monitor: str = "val_loss"  # what "improvement" means; also picks the best/ weights
    min_delta: float = 1e-4
    grad_clip: float = 5.0  # max gradient norm; 0: no clipping
    seed: int = 0
    threads: int = 2  # torch intra-op threads; results are bit-identical for a seed at a fixed thread count
    eval_batch_size: int = 256
    keep_checkpoints: int = 2  # epoch checkpoints kept on disk (the newest ones)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise PostlocError(f"trainer.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "threads", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise PostlocError(f"trainer.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr_factor <= 1:
            raise PostlocError(f"trainer.lr_factor must be in (0, 1], got {self.lr_factor}")
        if self.lr <= 0:
            raise PostlocError(f"trainer.lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class RunConfig:
    """Everything ``train`` needs besides the data: model name, model params, trainer settings."""

    model: str = "mrlf"
    params: Mapping[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": dict(self.params), "trainer": asdict(self.trainer)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        unknown = set(data) - {"model", "params", "trainer"}
        if unknown:
            raise PostlocError(f"unknown top-level config keys {sorted(unknown)}; use model, [params], [trainer]")
        trainer = dict(data.get("trainer") or {})
        return cls(model=str(data.get("model", "mrlf")), params=dict(data.get("params") or {}),
                   trainer=make_dataclass_config(TrainerConfig, trainer, "trainer"))


def make_dataclass_config(cls, values: Mapping[str, Any], section: str):
    """``cls(**values)`` with a PostlocError naming the unknown keys and their valid alternatives."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PostlocError(f"unknown {section} setting(s) {unknown}; valid: {', '.join(sorted(names))}")
    coerced = {}
    for f in fields(cls):
        if f.name in values:
            coerced[f.name] = _coerce(values[f.name], f.type, f"{section}.{f.name}")
    try:
        return cls(**coerced)
    except (TypeError, ValueError) as error:
        raise PostlocError(f"bad {section} settings: {error}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read a TOML config file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PostlocError(f"cannot read config {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PostlocError(f"{path}: not valid TOML: {error}") from None
    return RunConfig.from_dict(data)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The config a run was started with (``RUN/config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise PostlocError(f"{run_dir} is not a training run (no config.json)")
    return RunConfig.from_dict(json.loads(path.read_text())["config"])


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


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Light type checking of config values (TOML and JSON only know a few types)."""
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    kind = kind.replace(" ", "")
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind == "str":
            return str(value)
        if kind.startswith("tuple[str"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if kind.startswith("tuple[float"):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise PostlocError(f"{where}: expected {kind}, got {value!r}") from None
    return value


def with_trainer(config: RunConfig, **changes: Any) -> RunConfig:
    """A copy with some trainer settings changed (used by the CLI's --epochs/--seed)."""
    return replace(config, trainer=replace(config.trainer, **changes))
