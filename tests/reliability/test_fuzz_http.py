"""Fuzz every HTTP endpoint: a JSON error with a 4xx status or a valid answer, never a 500 or a hang.

Two layers: schemathesis generates requests from the app's own OpenAPI document (every path, method
and documented body); Hypothesis + TestClient covers what the schema cannot describe: raw and
malformed bodies, wrong content types, multipart uploads with wild fields and broken photos.
The server wraps a tiny trained run shared with the other serve tests (tests/serve_support.py).
"""

from __future__ import annotations

import json
import math

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from test_fuzz_images import image_bytes

from fuzz_strategies import budget, json_values, nasty_text, time_limit
from postloc.inference.predictor import load
from postloc.serve.app import ServeSettings, create_app
from postloc.serve.limits import Limits
from serve_support import mean_colour_featurizer, png_bytes, small_run

CLIENT_ERRORS = {400, 413, 415, 422}
LIMITS = Limits(rate_per_second=1e6, burst=10**6, max_body_bytes=256 * 1024)
# schemathesis and TestClient send ``Host: testserver``, which a real server's default allow-list refuses
HOSTS = ("testserver",)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return load(small_run(tmp_path_factory))


@pytest.fixture(scope="module")
def app(predictor):
    return create_app(predictor, ServeSettings(limits=LIMITS, allowed_hosts=HOSTS), mean_colour_featurizer())


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_answer(response, predictor, *, top_k: int | None = None) -> dict:
    """A valid prediction, or the API's JSON error envelope with a client-error status; never a 5xx."""
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code != 200:
        assert response.status_code in CLIENT_ERRORS, (response.status_code, response.text)
        assert set(body) == {"error"} and body["error"]["code"] == response.status_code
        message = body["error"]["message"]
        assert isinstance(message, str) and message and "Traceback" not in message and len(message) < 1000
        return body
    predictions = body["predictions"]
    classes = predictor.classes
    assert 1 <= len(predictions) <= len(classes)
    if top_k is not None:
        assert len(predictions) == min(top_k, len(classes))
    probabilities = [p["probability"] for p in predictions]
    assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in probabilities)
    assert probabilities == sorted(probabilities, reverse=True)
    total = sum(probabilities)
    assert total <= 1.0 + 1e-5 and (len(predictions) < len(classes) or abs(total - 1.0) < 1e-4), total
    for p in predictions:
        assert p["poi"] in classes
        assert p["lat"] is None or -90 <= p["lat"] <= 90
        assert p["lon"] is None or -180 <= p["lon"] <= 180
    assert isinstance(body["hashtags_used"], list) and isinstance(body["image"], dict)
    return body


# ---------------------------------------------------------------------- schemathesis (OpenAPI)


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# schemathesis' own pytest plugin (``schemathesis.pytest.from_fixture``) fails on pytest 9 (it reads
# ``Function._nodeid``), so its strategies are drawn inside a plain Hypothesis test instead.
@settings(max_examples=budget(2.0))
@given(data=st.data(), mode=st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
def test_openapi_every_operation(api_schema, data, mode):
    """Schemathesis cases of every operation: no server error, answers match the documented schema."""
    case = data.draw(api_schema.as_strategy(mode), label="case")
    with time_limit(30):
        response = case.call()
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance])
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text


# ------------------------------------------------------------------- JSON and raw bodies

REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(nasty_text(120), json_values(3), st.just("x" * 2500)),
        "hashtags": st.one_of(
            st.lists(nasty_text(20), max_size=5), st.lists(st.just("t"), min_size=65, max_size=70), json_values(3)
        ),
        "top_k": st.one_of(st.integers(-3, 60), st.just(10**30), json_values(1)),
        "explain": st.one_of(st.booleans(), json_values(1)),
        "extra": json_values(2),
    },
)


@given(request=REQUESTS, path=st.sampled_from(["/v1/predict", "/v1/explain"]))
@example(request={"text": "x", "hashtags": ["\ud800"], "explain": True}, path="/v1/predict")
def test_json_requests(client, predictor, request, path):
    body = json.dumps(request, allow_nan=True).encode()  # \ud800 escapes stay in: JSON allows them
    with time_limit(30):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    top_k = request.get("top_k") if isinstance(request.get("top_k"), int) else None
    assert_answer(response, predictor, top_k=top_k if response.status_code == 200 and top_k else None)


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
    "*/*",
    "application/x-www-form-urlencoded",
    "application/json; boundary=x",
]


@st.composite
def raw_bodies(draw) -> bytes:
    """Noise, or a JSON/multipart body mangled: truncated, deep, huge numbers, bad UTF-8, NUL bytes."""
    kind = draw(st.sampled_from(["noise", "json", "deep", "bignum", "multipart"]))
    if kind == "noise":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(1, 120_000))
        return b'{"text": ' + b"[" * depth + b"]" * draw(st.integers(0, depth)) + b"}"
    if kind == "bignum":
        return b'{"top_k": ' + b"9" * draw(st.integers(1, 6000)) + b"}"
    if kind == "json":
        data = json.dumps(draw(REQUESTS)).encode()
    else:
        data = (
            b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\nhello #a\r\n'
            b'--x\r\nContent-Disposition: form-data; name="photo"; filename="p.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--x--\r\n"
        )
    cut = draw(st.integers(0, len(data)))
    data = data[:cut] if draw(st.booleans()) else data
    if data and draw(st.booleans()):
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\r\n", b"--x", b'"', b"\\ud800"])) + data[at + 1 :]
    return data


@given(content=raw_bodies(), ctype=st.sampled_from(CONTENT_TYPES), path=st.sampled_from(["/v1/predict", "/v1/explain"]))
@example(content=b"[" * 100_000, ctype="application/json", path="/v1/predict")
@example(content=b'{"top_k": ' + b"9" * 5000 + b"}", ctype="application/json", path="/v1/predict")
def test_raw_and_malformed_bodies(client, predictor, content, ctype, path):
    headers = {"content-type": ctype} if ctype else {}
    with time_limit(30):
        response = client.post(path, content=content, headers=headers)
    assert_answer(response, predictor)


# -------------------------------------------------------------------------- multipart uploads


@settings(max_examples=budget(1.0))
@given(
    text=st.none() | nasty_text(80, surrogates=False),
    hashtags=st.none() | nasty_text(40, surrogates=False),
    top_k=st.none() | st.sampled_from(["1", "3", "0", "-1", "abc", "9" * 40, "", " 2 "]),
    explain=st.none() | st.sampled_from(["true", "false", "1", "yes", "maybe", ""]),
    photo=st.none() | image_bytes(),
    filename=st.sampled_from(["p.png", "../../x", "", "a\x00b"]),
)
@example(text="hi", hashtags="#a", top_k="2", explain="true", photo=png_bytes(), filename="p.png")
def test_multipart_photo_upload(client, predictor, text, hashtags, top_k, explain, photo, filename):
    fields = {
        k: v
        for k, v in {"text": text, "hashtags": hashtags, "top_k": top_k, "explain": explain}.items()
        if v is not None
    }
    files = {"photo": (filename, photo, "image/png")} if photo is not None else None
    with time_limit(30):
        if files is None and not fields:
            response = client.post(
                "/v1/predict", content=b"--x--\r\n", headers={"content-type": "multipart/form-data; boundary=x"}
            )
        else:
            response = client.post("/v1/predict", data=fields, files=files)
    body = assert_answer(response, predictor)
    if response.status_code == 200:
        assert body["image"]["received"] == (photo is not None)


# ------------------------------------------------------------- regressions Hypothesis found


@pytest.mark.parametrize(
    "content,words",
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"top_k": ' + b"9" * 5000 + b"}", "4300 digits"),
    ],
)
def test_regression_json_parser_limits_are_400_not_500(client, content, words):
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "request_body",
    [
        {"text": "x", "hashtags": ["\ud800"], "explain": True},  # used to be a 500 (response not encodable)
        {"text": "caf\udce9 words"},  # used to be a 422 with an encoder's message
    ],
)
def test_regression_lone_surrogates_are_a_clear_422(client, request_body):
    response = client.post(
        "/v1/predict", content=json.dumps(request_body).encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "lone surrogate" in response.json()["error"]["message"]


def test_regression_the_app_serves_again_after_its_lifespan_ended(predictor):
    """Schemathesis runs the app's lifespan once per call: a second start used to hit a shut-down model
    thread (500), and a call after the stop used to wait forever on a queue nobody read."""
    app = create_app(predictor, ServeSettings(limits=LIMITS, allowed_hosts=HOSTS))
    for _ in range(2):
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.post("/v1/predict", json={"text": "x"}).status_code == 200
    with time_limit(20):  # outside any lifespan now
        assert TestClient(app).post("/v1/predict", json={"text": "x"}).status_code == 200


def test_regression_huge_top_k_is_not_echoed_in_full(client):
    """Found by test_raw_and_malformed_bodies: a 4000-digit top_k came back verbatim in the 422 message."""
    response = client.post(
        "/v1/predict", content=b'{"top_k": ' + b"9" * 4000 + b"}", headers={"content-type": "application/json"}
    )
    assert (
        response.status_code == 422
        and response.json()["error"]["message"] == "top_k is a 4000-digit number; the limit is 50"
    )
