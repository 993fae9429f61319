"""One road from a post to its answer (docs/architecture.md): every route takes the predictor's road.

``postloc predict``, the HTTP API and ``explain`` each walk a post through :meth:`Predictor.records`
(validated once), :meth:`Predictor.probabilities` (the only caller of the model) and, where an answer is
given, :meth:`Predictor.answer` (the only place that ranks and decides); the answers they give for one
post are the same. A static check keeps ranking and the min-confidence decision out of every other module.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import postloc
from postloc.cli import main
from postloc.inference.predictor import Predictor, load
from postloc.models.base import ModelInputs
from postloc.serve.app import ServeSettings, create_app
from postloc.serve.limits import Limits
from serve_support import decisive_tag, small_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROAD = ("records", "probabilities", "answer")
PACKAGE = Path(postloc.__file__).resolve().parent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_run(tmp_path_factory)


@pytest.fixture
def walked(monkeypatch, run):
    """The road's steps each call passes, in order; the model may be reached only from inside ``probabilities``."""
    steps: list[str] = []
    inside = {"probabilities": 0}
    for name in ROAD:
        original = getattr(Predictor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            steps.append(_name)
            if _name == "probabilities":
                inside["probabilities"] += 1
            try:
                return _original(self, *args, **kwargs)
            finally:
                if _name == "probabilities":
                    inside["probabilities"] -= 1

        monkeypatch.setattr(Predictor, name, spy)
    model_class = type(load(run).model)
    predict_proba = model_class.predict_proba

    def guarded(self, frame):
        if list(frame["id"]) == ["self-test"]:  # loading a model tries it on an empty post (models.base)
            return predict_proba(self, frame)
        # the batcher calls the road in its model thread: the count is shared, the stack is not
        assert inside["probabilities"] > 0, "the model was called outside Predictor.probabilities"
        steps.append("model")
        return predict_proba(self, frame)

    monkeypatch.setattr(model_class, "predict_proba", guarded)
    return steps


def _post(run: Path) -> dict:
    tag, _ = decisive_tag(run)
    return {"text": "an evening walk by the river", "hashtags": [tag]}


def _passed(steps: list[str], *names: str) -> bool:
    """The route took each of the road's steps ``names`` (some more than once: records are made, then used)."""
    return set(names) <= set(steps)


def test_predict_http_and_explain_walk_the_same_road_to_the_same_answer(run, tmp_path, walked, capsys):
    post = _post(run)
    expected = load(run).answers([post], top_k=3, min_confidence=0.5)[0]
    assert _passed(walked, "records", "probabilities", "model", "answer")

    walked.clear()  # postloc predict (predict_file)
    source = tmp_path / "posts.jsonl"
    source.write_text(json.dumps({"id": "p", **post}) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["predict", str(run), str(source), "-o", str(out), "--top-k", "3", "--min-confidence", "0.5", "--quiet"]
    assert main(args) == 0
    assert _passed(walked, "records", "probabilities", "model", "answer")
    row = json.loads(out.read_text())
    assert {k: row[k] for k in expected} == expected

    walked.clear()  # the HTTP API, through the micro-batcher
    settings = ServeSettings(limits=Limits(rate_per_second=1000, burst=1000))
    with TestClient(create_app(load(run), settings), base_url="http://localhost") as client:
        walked.clear()
        body = client.post("/v1/predict", json={**post, "top_k": 3, "min_confidence": 0.5}).json()
        assert _passed(walked, "records", "probabilities", "model", "answer")
        assert {k: body[k] for k in expected} == expected
        walked.clear()
        explained = client.post("/v1/explain", json={**post, "top_k": 3}).json()
        assert _passed(walked, "records", "probabilities", "model", "answer")
    assert walked.count("model") == 1  # the post and its occlusion variants: one model call

    walked.clear()  # postloc explain
    capsys.readouterr()
    assert main(["explain", str(run), "--text", post["text"], "--hashtags", " ".join(post["hashtags"]), "--json"]) == 0
    assert _passed(walked, "records", "probabilities", "model")
    assert walked.count("model") == 1
    assert json.loads(capsys.readouterr().out) == explained["explanation"]


# --- only the road ranks and decides ------------------------------------------------------------------

#: the modules a post passes on its way to an answer (and those that show answers)
SCANNED = ("inference", "serve", "scale", "cli", "quickstart", "predict.py")
#: the road: :meth:`Predictor.answer` ranks and decides, :func:`top_classes` names a row's top class
ROAD_MODULE = "inference/predictor.py"
#: calls that rank classes, and the road's decision
RANKING = {"argsort", "argpartition", "argmax", "top_k_indices", "_decide", "nlargest"}
ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
#: (module, name): why it is not a post's answer
ALLOWED = {("quickstart/report.py", "argsort"): "orders POIs by their post counts for the map's drawing"}


def _modules() -> list[Path]:
    found = []
    for name in SCANNED:
        path = PACKAGE / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [p for p in found if p.relative_to(PACKAGE).as_posix() != ROAD_MODULE]


def _ranks_or_decides(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in RANKING:
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in RANKING:
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names |= {alias.name for alias in node.names if alias.name in RANKING}
        elif isinstance(node, ast.Compare) and any(isinstance(op, ORDER) for op in node.ops):
            # the min-confidence decision: a confidence ordered against the threshold
            operands = [node.left, *node.comparators]
            if any(isinstance(o, (ast.Name, ast.Attribute)) and "min_confidence" in ast.unparse(o) for o in operands):
                names.add("min_confidence comparison")
    return names


def test_no_module_outside_the_road_ranks_candidates_or_decides():
    assert (PACKAGE / ROAD_MODULE).is_file() and len(_modules()) > 20
    found = {
        (path.relative_to(PACKAGE).as_posix(), name)
        for path in _modules()
        for name in _ranks_or_decides(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert found - ALLOWED.keys() == set(), f"ranking or deciding outside {ROAD_MODULE}: {sorted(found)}"
    road = _ranks_or_decides(ast.parse((PACKAGE / ROAD_MODULE).read_text(encoding="utf-8")))
    assert {"top_k_indices", "_decide", "min_confidence comparison"} <= road  # the check sees what it looks for


def test_records_are_validated_once():
    class Model:
        classes_ = ["a", "b"]
        inputs_used = ModelInputs.reading("text")

        def predict_proba(self, frame):
            return np.tile([0.25, 0.75], (len(frame), 1))

    predictor = Predictor(Model())
    records = predictor.records([{"text": "#Tag  one"}, {"id": "x", "text": "two"}])
    assert [r["id"] for r in records] == ["0", "x"] and records[0]["hashtags"] == ["tag"]
    again = predictor.records(records)
    assert all(a is b for a, b in zip(again, records, strict=True))  # records pass on untouched
    answer = predictor.answers(records, top_k=1, min_confidence=0.8)[0]
    assert answer["poi"] is None and answer["predictions"][0]["poi"] == "b" and "below" in answer["reason"]
