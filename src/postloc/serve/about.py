"""``GET /v1/about``: one line of text on how far the served run can be trusted, for the page.

A run made by ``quickstart`` (``OUT/run`` with ``OUT/quickstart.json`` beside it) has a verdict:
whether the model places posts better than always answering the majority POI, and than the
reference, by more than noise (:mod:`postloc.experiments.verdict`). Any other run shows its own
test score, when ``postloc evaluate`` (or ``train``) wrote ``eval-test.json``. The text is built
here, once at start, from files of the run's folder; the page writes it as text, never as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

from postloc.errors import PostlocError
from postloc.io import quickstart_folder
from postloc.io.inputs import read_small_json
from postloc.io.ownership import read_marker
from postloc.io.run_folder import RunFolder


class About(BaseModel):
    kind: str = Field(description="verdict (a quickstart run), test_score (the run's own), or none")
    text: str = Field(description="one sentence for people; empty when nothing is known")


def describe_run(run: Path) -> About:
    """The verdict of the quickstart that made ``run``, else its own test score, else nothing."""
    verdict = _quickstart_verdict(run)
    if verdict:
        return About(kind="verdict", text=f"Cross-validated on its training data: {verdict}")
    score = _test_score(run)
    if score:
        return About(kind="test_score", text=score)
    return About(kind="none", text="")


def _quickstart_verdict(run: Path) -> str | None:
    out = quickstart_folder.quickstart_of_run(run)
    if out is None:
        return None
    manifest = read_marker(out, quickstart_folder.MANIFEST)
    if not manifest or quickstart_folder.MARKER_KEY not in manifest:
        return None
    verdict = manifest.get("verdict")
    sentence = verdict.get("sentence") if isinstance(verdict, dict) else None
    return sentence if isinstance(sentence, str) and sentence else None


def _test_score(run: Path) -> str | None:
    path = RunFolder(run).eval_file("test")
    try:
        report: Any = read_small_json(path) if path.is_file() else None
    except (PostlocError, ValueError, OSError):  # an unreadable score is no score, not a server that fails to start
        return None
    if not isinstance(report, dict):
        return None
    accuracy, posts = report.get("accuracy"), report.get("posts")
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
        return None
    counted = f" on {posts:,} test posts" if isinstance(posts, int) and not isinstance(posts, bool) else ""
    return f"This run's own test score: accuracy {accuracy:.3f}{counted} (the run's user-disjoint test split)."


def add_about(app: FastAPI, run: Path) -> None:
    """Register ``GET /v1/about`` on ``app``, its answer computed now (the run does not change while served)."""
    body = describe_run(run).model_dump_json()

    @app.get("/v1/about", response_model=About)
    async def about():
        """How far the loaded run can be trusted: its quickstart verdict or its own test score, as text."""
        return Response(body, media_type="application/json")
