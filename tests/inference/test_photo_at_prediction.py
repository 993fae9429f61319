"""The photo at prediction: every model says which inputs it reads, and ``stack`` trained with photos uses them.

``Estimator.inputs_used`` is the one capability the predictor, ``explain``, the batch path and the
server ask before featurizing a photo; ``/v1/config`` passes it to the page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from postloc.errors import PostlocError
from postloc.models.base import Estimator, ModelInputs
from postloc.models.registry import BUILTIN, get_model
from serve_support import mean_colour_featurizer, png_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOCAL = "http://localhost"  # the server checks the Host header
POST = {"id": "p", "text": "an evening walk", "hashtags": []}
_RUNS: dict[str, Path] = {}


def _stack_run(tmp_path_factory, image_dim: int) -> Path:
    """A small ``stack`` run on synthetic posts whose photos tell the POIs apart (``image_dim`` 0: no photos)."""
    key = f"stack-{image_dim}"
    if key not in _RUNS:
        from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
        from postloc.models.stack import Stack
        from postloc.training import RunConfig, TrainerConfig, train

        base = tmp_path_factory.mktemp(key)
        config = SyntheticFeaturesConfig(
            n_pois=3,
            n_posts=240,
            n_users=30,
            text_signal=0.1,
            tag_signal=0.3,
            image_separation=4.0,
            image_dim=max(image_dim, 1),
            missing_image=0.2 if image_dim else 1.0,
            caption_words=(3, 6),
            seed=4,
        )
        prepared = write_synthetic_prepared(base / "prepared", config)
        trainer = TrainerConfig(progress=False, threads=1)
        train(prepared, base / "run", RunConfig("stack", dict(Stack.quick_params), trainer))
        _RUNS[key] = base / "run"
    return _RUNS[key]


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory) -> Path:
    return _stack_run(tmp_path_factory, 8)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    return _stack_run(tmp_path_factory, 0)


# --- the capability ------------------------------------------------------------------------------


def test_model_inputs_keep_the_photo_and_its_length_together():
    assert ModelInputs.reading("text", image_dim=8) == ModelInputs(frozenset({"text", "image"}), 8)
    assert not ModelInputs.reading("hashtags").image and ModelInputs.reading().ordered() == []
    both = ModelInputs.reading("hashtags") | ModelInputs.reading("text", image_dim=4)
    assert both.ordered() == ["text", "hashtags", "image"] and both.image_dim == 4
    with pytest.raises(PostlocError, match="image_dim"):
        ModelInputs(frozenset({"image"}), 0)
    with pytest.raises(PostlocError, match="unknown modalities"):
        ModelInputs.reading("audio")
    with pytest.raises(PostlocError, match="4 and 8"):
        _ = ModelInputs.reading(image_dim=4) | ModelInputs.reading(image_dim=8)


def test_every_builtin_model_says_what_it_reads():
    """Each registered model declares its inputs itself, not through the default for third-party models."""
    default = Estimator.__dict__["inputs_used"]
    for name in BUILTIN:
        cls = get_model(name)
        owner = next(klass for klass in cls.__mro__ if "inputs_used" in klass.__dict__)
        assert owner.__dict__["inputs_used"] is not default, name


def _posts(with_image: bool, n: int = 60, dim: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    pois = [f"p{i % 3}" for i in range(n)]
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "text": [f"walk near {p} today" for p in pois],
            "hashtags": [[p] for p in pois],
            "image_vector": [
                (rng.normal(size=dim) + int(p[1]) * 3).astype(np.float32) if with_image else None for p in pois
            ],
            "user": [f"u{i % 12}" for i in range(n)],
            "poi": pois,
        }
    )


def test_fitted_models_report_the_inputs_they_read():
    from postloc.models.baselines.knn_image import KnnImage
    from postloc.models.baselines.tagvisor import TagVisor
    from postloc.models.majority import Majority
    from postloc.models.stack import Stack
    from postloc.models.tfidf_logreg import TfidfLogReg

    posts = _posts(with_image=True)
    assert Majority().fit(posts).inputs_used == ModelInputs.reading()
    assert TfidfLogReg().fit(posts).inputs_used.ordered() == ["text", "hashtags"]
    assert TagVisor(TagVisor.quick_params).fit(posts).inputs_used.ordered() == ["hashtags"]
    assert KnnImage().fit(posts).inputs_used == ModelInputs.reading(image_dim=4)
    quick = {**Stack.quick_params, "inner_folds": 0}  # every learner weighs 1: no inner fits
    assert Stack(quick).fit(posts).inputs_used == ModelInputs.reading("text", "hashtags", image_dim=4)
    assert Stack(quick).fit(_posts(with_image=False)).inputs_used.ordered() == ["text", "hashtags"]
    assert Stack({**quick, "learners": ("image",)}).fit(posts).inputs_used.ordered() == ["image"]


def test_a_stack_whose_photo_learner_earned_no_weight_reads_no_photo():
    from postloc.models.stack import Stack

    model = Stack({**Stack.quick_params, "inner_folds": 0}).fit(_posts(with_image=True))
    model.weights_ = np.array([0.0 if ln.kind == "image" else 1.0 for ln in model.learners_])
    assert not model.inputs_used.image


# --- a stack run trained with photos -------------------------------------------------------------


def test_the_python_api_uses_the_photo_of_a_stack_trained_with_photos(photo_run, tmp_path):
    from postloc.inference import batch
    from postloc.inference.images import featurizer_for_model
    from postloc.inference.predictor import load

    predictor = load(photo_run)
    assert predictor.model.inputs_used == ModelInputs.reading("text", "hashtags", image_dim=8)
    without = predictor.predict_proba([POST])[0]
    vector = np.full(8, 3.0, dtype=np.float32)
    with_photo = predictor.predict_proba([{**POST, "image_vector": vector}])[0]
    assert np.abs(with_photo - without).max() > 0.01
    with pytest.raises(PostlocError, match="must be 8 finite numbers"):
        predictor.predict([{**POST, "image_vector": [1.0, 2.0]}])
    # the run's own backbone is looked for (not "trained without images"): here its record is missing
    assert "image_summary.json" in featurizer_for_model(photo_run, predictor.model.inputs_used).reason

    # a photo file through the batch path (``postloc predict``), with a stand-in backbone
    (tmp_path / "photo.png").write_bytes(png_bytes((40, 30), (220, 40, 30)))
    source = tmp_path / "posts.jsonl"
    source.write_text(
        pd.DataFrame([{**POST, "id": "with", "image": ["photo.png"]}, {**POST, "id": "without"}]).to_json(
            orient="records", lines=True
        )
    )
    featurizer = mean_colour_featurizer().featurizer
    counts = batch.predict_file(photo_run, source, tmp_path / "out.jsonl", progress=False, featurizer=featurizer)
    assert counts["images_used"] == 1
    rows = pd.read_json(tmp_path / "out.jsonl", lines=True).set_index("id")
    assert rows.loc["with", "predictions"] != rows.loc["without", "predictions"]


def test_explain_shows_the_photo_of_a_stack_trained_with_photos(photo_run):
    from postloc.inference.explain import explain
    from postloc.inference.predictor import load

    predictor = load(photo_run)
    explanation = explain(predictor, {**POST, "image_vector": np.full(8, 3.0, dtype=np.float32)})
    photo = [c for c in explanation.contributions if c.kind == "image"]
    assert len(photo) == 1 and abs(photo[0].contribution) > 0.01


def _client(run: Path, featurizer=None):
    from fastapi.testclient import TestClient

    from postloc.serve.app import ServeSettings, build_app

    return TestClient(build_app(run, ServeSettings(), featurizer=featurizer), base_url=LOCAL)


def _probabilities(client, photo: bytes | None) -> dict[str, float]:
    if photo is None:
        answer = client.post("/v1/predict", json={"text": POST["text"], "top_k": 5})
    else:
        answer = client.post(
            "/v1/predict", data={"text": POST["text"], "top_k": "5"}, files={"photo": ("p.png", photo)}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["image"]["used"] is (photo is not None), body["image"]
    return {p["poi"]: p["probability"] for p in body["predictions"]}


def test_http_uses_the_photo_and_the_page_config_says_so(photo_run):
    with _client(photo_run, mean_colour_featurizer()) as client:
        without = _probabilities(client, None)
        with_photo = _probabilities(client, png_bytes((40, 30), (220, 40, 30)))
        assert max(abs(with_photo[p] - without[p]) for p in without) > 0.01
        config = client.get("/v1/config").json()
        assert config["inputs"] == ["text", "hashtags", "image"] and config["photo_used"] is True
        assert config["model"] == "stack"
        explained = client.post("/v1/explain", data={"text": POST["text"]}, files={"photo": ("p.png", png_bytes())})
        assert "image" in [c["kind"] for c in explained.json()["explanation"]["contributions"]]
    # trained with photos, but no backbone here: the page is told the photo is not used, and why
    with _client(photo_run) as client:
        config = client.get("/v1/config").json()
        assert "image" in config["inputs"] and config["photo_used"] is False
        assert "image_summary.json" in config["photo_note"]


def test_a_model_trained_without_photos_reads_none_and_the_server_says_so(text_run):
    from postloc.inference.predictor import load

    predictor = load(text_run)
    assert predictor.model.inputs_used.ordered() == ["text", "hashtags"]
    # a vector given anyway is not the model's input: nothing reports it as used
    assert predictor.frame([{**POST, "image_vector": [1.0, 2.0]}])["image_vector"].iloc[0] is None
    with _client(text_run, mean_colour_featurizer()) as client:  # a featurizer at hand is not used
        config = client.get("/v1/config").json()
        assert config["inputs"] == ["text", "hashtags"] and config["photo_used"] is False
        assert "reads no photo" in config["photo_note"]
        answer = client.post("/v1/predict", data={"text": "x"}, files={"photo": ("p.png", png_bytes())}).json()
        assert answer["image"] == {"received": True, "used": False, "message": config["photo_note"]}
        assert "reads no photo" in client.get("/healthz").json()["image"]


#: app.js in node with the few browser objects it touches stubbed: prints what the page shows for a /v1/config
PAGE_HARNESS = """
const elements = {};
const element = (id) => elements[id] || (elements[id] = {
  id, textContent: "", hidden: false, style: {}, value: "", files: [], disabled: false,
  addEventListener() {}, classList: { add() {}, remove() {} }, replaceChildren() {}, append() {},
});
globalThis.document = {
  getElementById: element, createElement: () => element("new"), querySelector: () => element("q"),
};
const chain = new Proxy(function () {}, { get: () => chain, apply: () => chain });
globalThis.L = chain;
globalThis.fetch = async () => ({ json: async () => JSON.parse(process.env.CONFIG) });
require(process.env.SCRIPT);
setTimeout(() => {
  const drop = element("drop"), line = element("model-inputs").textContent;
  console.log(JSON.stringify({ line, hidden: drop.hidden, display: drop.style.display }));
}, 50);
"""


def _page_shows(config: dict) -> dict:
    import json
    import os
    import shutil
    import subprocess

    script = Path(__file__).parents[2] / "src" / "postloc" / "serve" / "static" / "app.js"
    node = shutil.which("node") or "/usr/bin/node"
    env = {**os.environ, "CONFIG": json.dumps(config), "SCRIPT": str(script)}
    done = subprocess.run([node, "-e", PAGE_HARNESS], env=env, capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def test_the_page_shows_what_the_model_reads_and_hides_an_unused_photo_box():
    base = {"tile_url": None, "max_body_bytes": 1000, "max_text_chars": 100, "model": "stack"}
    shown = _page_shows({**base, "inputs": ["text", "hashtags", "image"], "photo_used": True, "photo_note": "ok"})
    assert shown == {"line": "This model (stack) reads: caption, hashtags, photo.", "hidden": False, "display": ""}
    shown = _page_shows({**base, "inputs": ["text", "hashtags"], "photo_used": False, "photo_note": "no photo"})
    assert shown == {"line": "This model (stack) reads: caption, hashtags.", "hidden": True, "display": "none"}
    shown = _page_shows({**base, "inputs": ["hashtags", "image"], "photo_used": False, "photo_note": "no weights"})
    assert shown["line"] == "This model (stack) reads: hashtags. It was trained with photos, but here no weights."
    assert shown["hidden"] is True
