"""The HTTP API: happy paths, the photo seam, and every kind of bad input a public endpoint sees."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from postloc.inference.photos import sniff_image
from postloc.inference.predictor import load
from postloc.serve.app import ServeSettings, create_app
from postloc.serve.limits import Limits, TokenBucket
from serve_support import decisive_tag, mean_colour_featurizer, png_bytes, small_run

LOCAL = "http://localhost"  # a Host name the server allows by default (TestClient's own, testserver, is not)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return small_run(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(run):
    return load(run)


def make_client(predictor, image=None, **limits) -> TestClient:
    settings = ServeSettings(limits=Limits(**{"rate_per_second": 1000, "burst": 1000, **limits}))
    return TestClient(create_app(predictor, settings, image), raise_server_exceptions=False, base_url=LOCAL)


@pytest.fixture(scope="module")
def client(predictor):
    with make_client(predictor, mean_colour_featurizer()) as c:
        yield c


def assert_error(response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    assert words.lower() in body["error"]["message"].lower()
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_predict_json_matches_the_python_api(client, predictor, run):
    tag, poi = decisive_tag(run)
    response = client.post("/v1/predict", json={"text": "a nice day", "hashtags": [tag], "top_k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["poi"] for p in body["predictions"]] == [
        p["poi"] for p in predictor.predict([{"text": "a nice day", "hashtags": [tag]}], top_k=3)[0]
    ]
    assert body["predictions"][0]["poi"] == poi and body["hashtags_used"] == [tag]
    assert body["image"] == {"received": False, "used": False, "message": ""} and body["explanation"] is None
    assert set(body["predictions"][0]) == {"poi", "name", "probability", "lat", "lon"}


def test_multipart_with_photo_uses_the_featurizer_and_explains(client, run):
    tag, _ = decisive_tag(run)
    files = {"photo": ("../../etc/passwd", png_bytes(), "text/plain")}  # name and declared type ignored
    response = client.post(
        "/v1/predict", data={"text": "hello", "hashtags": f"#{tag}, #nope", "explain": "true"}, files=files
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"]["received"] and body["image"]["used"]
    kinds = {c["kind"] for c in body["explanation"]["contributions"]}
    assert kinds == {"word", "hashtag", "image"}
    assert body["explanation"]["ignored_hashtags"] == ["nope"]
    again = client.post("/v1/explain", json={"text": "hello", "hashtags": [tag]})
    assert again.status_code == 200 and again.json()["explanation"]["contributions"][0]["token"] == tag


def test_photo_without_featurizer_is_reported_unused(predictor):
    with make_client(predictor) as c:
        response = c.post("/v1/predict", files={"photo": ("p.png", png_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    image = response.json()["image"]
    assert image["received"] and not image["used"] and "not used" in image["message"]


def test_pois_health_config_docs_and_page(client, predictor):
    pois = client.get("/v1/pois").json()["pois"]
    assert [p["poi"] for p in pois] == predictor.classes and all(p["lat"] is not None for p in pois)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["classes"] == len(predictor.classes)
    assert client.get("/v1/config").json()["tile_url"] is None  # no tiles, no network by default
    schema = client.get("/openapi.json").json()
    assert "/v1/predict" in schema["paths"] and "PredictRequest" in schema["components"]["schemas"]
    page = client.get("/")
    assert page.status_code == 200 and "leaflet.js" in page.text and "cdn" not in page.text.lower()
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/static/vendor/leaflet/LICENSE").status_code == 200
    assert "access-control-allow-origin" not in client.get("/v1/pois", headers={"Origin": "http://evil"}).headers


@pytest.mark.parametrize(
    "kwargs,status,words",
    [
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
        ({"content": b"   ", "headers": {"content-type": "application/json"}}, 400, "empty"),
        ({"content": b'{"text": "caf\xe9"}', "headers": {"content-type": "application/json"}}, 400, "utf-8"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid json"),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 422, "object"),
        ({"json": {"text": "x", "colour": "red"}}, 422, "colour"),
        ({"json": {"text": 5}}, 422, "text"),
        ({"json": {"hashtags": "notalist"}}, 422, "hashtags"),
        ({"json": {"top_k": 0}}, 422, "top_k"),
        ({"json": {"top_k": 10_000}}, 422, "top_k"),
        ({"json": {"text": "x" * 5000}}, 422, "limit"),
        (
            {"content": b"text=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "content-type",
        ),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content-type"),
        ({"data": {"text": "x", "evil": "1"}, "files": {"photo": ("a.png", png_bytes(), "image/png")}}, 422, "evil"),
        ({"files": {"photo": ("a.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"photo": ("a.png", b"<html>not an image</html>", "image/png")}}, 415, "not a supported image"),
        ({"files": {"photo": ("a.png", png_bytes()[:40], "image/png")}}, 400, "decoded"),
        ({"files": {"photo": ("a.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 200, "image/jpeg")}}, 400, "decoded"),
        ({"data": {"top_k": "many"}, "files": {"photo": ("a.png", png_bytes(), "image/png")}}, 422, "top_k"),
    ],
)
def test_bad_inputs_get_json_errors(client, kwargs, status, words):
    assert_error(client.post("/v1/predict", **kwargs), status, words)


def test_invalid_utf8_in_a_form_field(client):
    boundary = "xyz"
    body = (
        (f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n').encode()
        + b"caf\xe9\xff"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = client.post("/v1/predict", content=body, headers=headers)
    # as in JSON (issue 29): Starlette's own parser would have read it as Latin-1
    assert_error(response, 400, "not valid UTF-8")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/shadow", "..\\..\\boot.ini", "a\x00b.png", "x" * 5000])
def test_malicious_file_names_are_ignored(client, name, tmp_path):
    response = client.post("/v1/predict", files={"photo": (name, png_bytes(), "image/png")})
    if len(name) > 1000:  # the multipart parser refuses over-long part headers: a JSON 400, fine
        assert_error(response, 400, "multipart")
    else:
        assert response.status_code == 200, response.text
    assert "passwd" not in response.text and "shadow" not in response.text and "boot" not in response.text


@pytest.mark.parametrize("field,value", [("top_k", "3"), ("explain", "yes"), ("top_k", True), ("text", 5)])
def test_json_fields_are_not_coerced(client, field, value):
    """Issue 17, item 11: ``top_k: "3"`` and ``explain: "yes"`` were silently coerced."""
    assert_error(client.post("/v1/predict", json={"text": "x", field: value}), 422, field)


def test_form_fields_are_text_and_still_read(client):
    response = client.post(
        "/v1/predict",
        data={"text": "x", "top_k": "3", "explain": "true"},
        files={"photo": ("a.png", png_bytes(), "image/png")},
    )  # multipart
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3 and response.json()["explanation"] is not None


def test_too_many_pixels_is_413(predictor):
    with make_client(predictor, max_image_pixels=100) as c:
        assert_error(c.post("/v1/predict", files={"photo": ("a.png", png_bytes((20, 20)), "image/png")}), 413, "pixels")


def test_wide_png_is_413_before_it_is_decoded(predictor, monkeypatch):
    """Issue 17, item 6: a 16-bit RGBA PNG just under the pixel limit cost ~400 MB per request."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (200, 100)).save(buffer, format="PNG")  # 80,000 bytes decoded
    loads = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(self.size) or real_load(self))
    with make_client(predictor, mean_colour_featurizer(), max_decoded_bytes=50_000) as c:
        response = c.post("/v1/predict", files={"photo": ("a.png", buffer.getvalue(), "image/png")})
        assert_error(response, 413, "decoded")
    assert (200, 100) not in loads, "the picture was decoded although its header already said it is too large"


def test_photo_is_not_decoded_when_the_model_has_no_use_for_it(predictor, monkeypatch):
    """Issue 17, item 6: photos were decoded even when the run ignores photos."""
    from PIL import Image

    photo = png_bytes((64, 48))
    loads = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(self.size) or real_load(self))
    with make_client(predictor) as c:  # no featurizer: the photo cannot be used
        response = c.post("/v1/predict", files={"photo": ("a.png", photo, "image/png")})
    assert response.status_code == 200, response.text
    assert (64, 48) not in loads


def test_huge_upload_is_refused_before_it_is_read(predictor):
    with make_client(predictor, max_body_bytes=2000) as c:
        big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50_000
        assert_error(c.post("/v1/predict", files={"photo": ("a.png", big, "image/png")}), 413, "limit")

        # without Content-Length (chunked): counted while streaming, stopped past the limit
        # (TestClient buffers the generator; the real-socket test in test_serve_http.py checks the early stop)
        def chunks():
            for _ in range(100):
                yield b"x" * 1000

        response = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert_error(response, 413, "limit")


def test_rate_limit_answers_429_with_retry_after(predictor):
    with make_client(predictor, rate_per_second=0.001, burst=3) as c:
        codes = [c.post("/v1/predict", json={"text": "x"}).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = c.post("/v1/predict", json={"text": "x"})
        assert_error(limited, 429, "too many")
        assert int(limited.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # reads are not limited


def test_cors_only_when_configured(predictor):
    settings = ServeSettings(cors_origins=("http://allowed.example",))
    with TestClient(create_app(predictor, settings), base_url=LOCAL) as c:
        ok = c.get("/v1/pois", headers={"Origin": "http://allowed.example"})
        assert ok.headers.get("access-control-allow-origin") == "http://allowed.example"
        assert "access-control-allow-origin" not in c.get("/v1/pois", headers={"Origin": "http://evil"}).headers


def test_unknown_route_and_method_are_json(client):
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/predict"), 405)


def test_token_bucket_refills():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.allow("a")[0] for _ in range(3)] == [True, True, False]
    assert bucket.allow("b")[0]  # per client
    now[0] = 0.5
    assert bucket.allow("a")[0] and not bucket.allow("a")[0]
    small = TokenBucket(rate=1, burst=1, max_keys=2)
    for key in "abc":
        small.allow(key)
    assert len(small._buckets) == 2


def test_sniffing_trusts_bytes_only():
    assert sniff_image(png_bytes()) == "image/png"
    assert sniff_image(b"\xff\xd8\xff\xdb") == "image/jpeg"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image(b"GIF89a") == "image/gif"
    assert sniff_image(b"%PDF-1.4") is None and sniff_image(b"") is None


def test_concurrent_requests_share_batches(predictor):
    import asyncio

    import httpx

    app = create_app(predictor, ServeSettings(limits=Limits(rate_per_second=1000, burst=1000), batch_wait_ms=20))

    async def go():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as c:
                responses = await asyncio.gather(
                    *[c.post("/v1/predict", json={"text": f"post {i}"}) for i in range(16)]
                )
        return responses

    responses = asyncio.run(go())
    assert all(r.status_code == 200 for r in responses)
    assert app.state.batcher.rows == 16 and app.state.batcher.batches < 16
    assert json.loads(responses[3].text)["predictions"]


def test_featurizer_for_run_says_why_photos_are_unused(run, tmp_path):
    import json as _json

    from postloc.inference.images import featurizer_for_run

    assert "without images" in featurizer_for_run(run, 0).reason
    assert "image_summary" in featurizer_for_run(run, 8).reason
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    fake_run = tmp_path / "run"
    fake_run.mkdir()
    (fake_run / "config.json").write_text(_json.dumps({"data": str(prepared)}))
    (prepared / "image_summary.json").write_text(_json.dumps({"backbone": "no-such-net"}))
    assert "unknown" in featurizer_for_run(fake_run, 8).reason
    (prepared / "image_summary.json").write_text(_json.dumps({"backbone": "efficientnet-lite0"}))
    info = featurizer_for_run(fake_run, 8)
    assert info.featurizer is None and "expects 8" in info.reason


def test_featurizer_rebuilds_the_recorded_backbone(tmp_path):
    import json as _json

    from postloc.inference.images import featurizer_for_run
    from postloc.inference.photos import decode_upload
    from postloc.vision import backbone_spec, weights_available

    name = "efficientnet-lite0"
    if not weights_available(name):
        pytest.skip(f"{name} weights not installed")
    (tmp_path / "prepared").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(_json.dumps({"data": str(tmp_path / "prepared")}))
    (tmp_path / "prepared" / "image_summary.json").write_text(_json.dumps({"backbone": name}))
    dim = backbone_spec(name).dim
    info = featurizer_for_run(tmp_path / "run", dim)
    assert info.featurizer is not None and info.backbone == name
    vector = info.featurizer(decode_upload(png_bytes((64, 48)), 10**6))
    assert vector.shape == (dim,) and vector.dtype.name == "float32"


def test_response_carries_the_calibrated_confidence(client, predictor, run):
    tag, poi = decisive_tag(run)
    body = client.post("/v1/predict", json={"text": "a nice day", "hashtags": [tag], "top_k": 2}).json()
    assert body["poi"] == poi and body["reason"] is None
    assert body["confidence"] == pytest.approx(body["predictions"][0]["probability"])
    expected = predictor.predict_proba([{"text": "a nice day", "hashtags": [tag]}])[0]  # the run's temperature applied
    assert body["confidence"] == pytest.approx(float(expected.max()), abs=1e-6)


def test_min_confidence_abstains_with_a_reason(client, run):
    tag, _ = decisive_tag(run)
    body = client.post("/v1/predict", json={"text": "x", "hashtags": [tag], "top_k": 3, "min_confidence": 1.0}).json()
    assert body["poi"] is None and "below min_confidence 1" in body["reason"]
    assert len(body["predictions"]) == 3  # candidates kept for transparency
    fields = {"text": (None, "x"), "hashtags": (None, tag), "min_confidence": (None, "0")}  # multipart form
    response = client.post("/v1/predict", files=fields)
    assert response.status_code == 200, response.text
    form = response.json()
    assert form["poi"] is not None and form["reason"] is None


@pytest.mark.parametrize("bad", [1.5, -0.2, "0.5", True])
def test_bad_min_confidence_is_a_422(client, bad):
    assert_error(client.post("/v1/predict", json={"text": "x", "min_confidence": bad}), 422, "min_confidence")
