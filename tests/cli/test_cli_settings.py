"""Settings once: a flag's name, type, default, choices and help come from its settings dataclass
(``postloc.settings.setting``, ``cli._args.add_flags``), and a bad value is refused by the settings
themselves, printed by the CLI as one line (exit 2)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from postloc.cli._args import add_flags, from_args
from postloc.errors import PostlocError
from postloc.settings import flag_of, setting, setting_error


@dataclass(frozen=True)
class Example:
    batch_rows: int = setting(64, help="most rows in one call (default %(default)s)")
    rate_per_second: float = setting(5.0, flag="--rate", help="requests/s (default %(default)s)")
    mode: Literal["drop", "keep"] = setting("drop", help="what to do (default %(default)s)")
    engine: str = setting("memory", choices=("memory", "duckdb"))
    threads: int | None = setting(None, metavar="N", help="threads (default: all)")
    docs: bool = setting(False, help="also serve the docs")
    hidden: int = 3  # no flag

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise setting_error(self, "batch_rows", "must be an integer of at least 1", self.batch_rows)
        if self.hidden < 0:
            raise setting_error(self, "hidden", "must be at least 0", self.hidden)


NAMES = ("batch_rows", "rate_per_second", "mode", "engine", "threads", "docs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postloc example")
    add_flags(parser, Example, *NAMES)
    return parser


def test_flags_take_name_type_default_choices_and_help_from_the_fields():
    parser = _parser()
    actions = {a.dest: a for a in parser._actions}
    assert actions["batch_rows"].option_strings == ["--batch-rows"] and actions["batch_rows"].type is int
    assert (
        actions["batch_rows"].default == 64
        and actions["batch_rows"].help == "most rows in one call (default %(default)s)"
    )
    assert actions["rate"].option_strings == ["--rate"] and actions["rate"].type is float  # the field's own flag
    assert actions["mode"].choices == ("drop", "keep") and actions["mode"].type is str  # from the Literal
    assert actions["engine"].choices == ("memory", "duckdb")
    assert actions["threads"].type is int and actions["threads"].default is None and actions["threads"].metavar == "N"
    assert isinstance(actions["docs"], argparse._StoreTrueAction)
    assert "hidden" not in actions
    text = parser.format_help()
    assert "most rows in one call (default 64)" in text and "requests/s (default 5.0)" in text


def test_flags_come_in_the_order_named_and_overrides_win():
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, "docs", "batch_rows", batch_rows={"default": 7})
    assert [a.dest for a in parser._actions[1:]] == ["docs", "batch_rows"]
    assert parser.parse_args([]).batch_rows == 7


def test_a_field_without_a_flag_cannot_become_one():
    with pytest.raises(TypeError, match="hidden"):
        add_flags(argparse.ArgumentParser(), Example, "hidden")


def test_settings_are_built_back_from_the_parsed_flags():
    args = _parser().parse_args(["--batch-rows", "8", "--rate", "2.5", "--mode", "keep", "--threads", "3", "--docs"])
    built = from_args(Example, args, *NAMES, hidden=1)
    assert built == Example(
        batch_rows=8, rate_per_second=2.5, mode="keep", engine="memory", threads=3, docs=True, hidden=1
    )
    assert from_args(Example, _parser().parse_args([]), *NAMES) == Example()


def test_a_bad_value_is_refused_by_the_settings_naming_the_flag_and_the_field():
    args = _parser().parse_args(["--batch-rows", "0"])
    with pytest.raises(PostlocError) as caught:
        from_args(Example, args, *NAMES)
    assert str(caught.value) == "--batch-rows (Example.batch_rows) must be an integer of at least 1, got 0"
    with pytest.raises(PostlocError, match=r"^Example\.hidden must be at least 0, got -1$"):  # no flag: the field
        Example(hidden=-1)
    assert flag_of(Example, "rate_per_second") == "--rate" and flag_of(Example, "hidden") is None


def test_a_value_error_of_the_settings_becomes_a_postloc_error():
    @dataclass(frozen=True)
    class Plain:
        n: int = setting(1)

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError(f"n must be >= 0, got {self.n}")

    parser = argparse.ArgumentParser()
    add_flags(parser, Plain, "n")
    with pytest.raises(PostlocError, match="n must be >= 0, got -2"):
        from_args(Plain, parser.parse_args(["--n", "-2"]), "n")


@pytest.mark.parametrize(
    "argv, start",
    [
        (["serve", "RUN", "--batch-rows", "0"], "postloc serve: error: --batch-rows (ServeSettings.batch_rows) "),
        (["serve", "RUN", "--port", "0"], "postloc serve: error: --port must be between 1 and 65535"),
        (["synthetic", "--out", "OUT", "--selfie-rate", "0.7", "--tourist-rate", "0.7"], "postloc synthetic: error: "),
        (["synthetic", "--out", "OUT", "--pois", "0"], "postloc synthetic: error: --pois "),
        (["quickstart", "IN", "--out", "OUT", "--port", "0"], "postloc quickstart: error: --port must be between"),
        (["quickstart", "IN", "--out", "OUT", "--folds", "1"], "postloc quickstart: error: --folds (QuickstartConfig"),
        (["quickstart", "IN", "--out", "OUT", "--min-poi-users", "0"], "postloc quickstart: error: --min-poi-users ("),
        (["prepare", "IN", "--out", "OUT", "--poi-min-samples", "0"], "postloc prepare: error: --poi-min-samples ("),
        (["images", "IN", "--draft-side", "-1"], "postloc images: error: --draft-side (DecodeConfig.draft_side) "),
        (["images", "IN", "--portrait-threshold", "2"], "postloc images: error: --portrait-threshold (PortraitConfig"),
        (["open-set", "IN", "--out", "OUT", "--leave-out", "0"], "postloc open-set: error: --leave-out (OpenSetConfig"),
        (["experiments", "IN", "--out", "OUT", "--folds", "1"], "postloc experiments: error: --folds must be 0"),
    ],
)
def test_the_cli_prints_the_settings_error_as_one_line(argv, start, capsys, tmp_path, monkeypatch):
    from postloc.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(start) and err.count("\n") == 1, err
    assert not (tmp_path / "OUT").exists()


def test_every_subcommand_flag_default_matches_its_settings_field():
    """The flags derived from a settings class show the class's defaults (no copy to drift)."""
    from postloc.cli import build_parser
    from postloc.serve.limits import ConnectionLimits, Limits
    from postloc.serve.settings import ServeSettings

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = {a.dest: a.default for a in sub.choices["serve"]._actions}
    assert serve["batch_rows"] == ServeSettings().batch_rows and serve["rate"] == Limits().rate_per_second
    assert serve["keep_alive"] == ConnectionLimits().keep_alive and serve["tiles"] is ServeSettings().tile_url

    from postloc.data.prepare import PrepareConfig
    from postloc.experiments.config import ExperimentConfig
    from postloc.vision.decode import DecodeConfig
    from postloc.vision.pipeline import ImagesConfig

    prepare = {a.dest: a for a in sub.choices["prepare"]._actions}
    assert prepare["min_poi_posts"].default == PrepareConfig().min_poi_posts
    assert prepare["engine"].choices == ("memory", "duckdb") and prepare["languages"].default == "en"
    images = {a.dest: a for a in sub.choices["images"]._actions}
    assert images["image_noise"].choices == ("drop", "inpaint", "keep") and images["image_noise"].default == "drop"
    assert images["draft_side"].default == DecodeConfig().draft_side and images["threads"].default is None
    assert images["batch_size"].default == ImagesConfig().batch_size
    experiments = {a.dest: a.default for a in sub.choices["experiments"]._actions}
    assert experiments["thresholds"] == ",".join(map(str, ExperimentConfig().thresholds))
    assert experiments["early_stopping"] == ExperimentConfig().early_stopping


def test_settings_check_themselves_when_made():
    """The checks the CLI used to make are the settings' own, for API users too."""
    from postloc.data.prepare import PrepareConfig
    from postloc.datasets.synthetic import SyntheticPostsConfig
    from postloc.vision.decode import DecodeConfig

    assert SyntheticPostsConfig(users=0).users == 0  # 0 was always "the default", posts / 6
    with pytest.raises(PostlocError, match=r"--users \(SyntheticPostsConfig.users\) must not be negative, got -1"):
        SyntheticPostsConfig(users=-1)
    with pytest.raises(PostlocError, match="rates"):
        SyntheticPostsConfig(selfie_rate=0.8, tourist_rate=0.5)
    with pytest.raises(PostlocError, match=r"--workers \(PrepareConfig.workers\) must be at least 1, got 0"):
        PrepareConfig(workers=0)
    assert DecodeConfig(draft_side=None).draft_side is None
    with pytest.raises(PostlocError, match="--draft-side"):
        DecodeConfig(draft_side=0)
