"""The server's limits, exactly as issue 9 lists them, each shown from the outside.

* oversized uploads are refused before they are read whole: an ASGI probe counts the bytes the
  app actually pulled, over a real socket (declared Content-Length and chunked);
* pixel limit, text limit, per-client rate (429 for one client, others unaffected);
* no path from a request reaches the file system (an audit hook records every ``open``);
* CORS headers absent by default; error bodies are JSON without stack traces.

test_serve_api.py covers the ordinary error answers; this file proves the limits hold.
"""

from __future__ import annotations

import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from postloc.serve.app import ServeSettings, create_app
from postloc.serve.limits import Limits
from serve_support import png_bytes, small_run
from serving import serving

LOCAL = "http://localhost"  # a Host name the server allows by default (TestClient's own, testserver, is not)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    from postloc.inference.predictor import load

    return load(small_run(tmp_path_factory))


def app_with(predictor, **limits):
    return create_app(predictor, ServeSettings(limits=Limits(**limits)))


class CountingApp:
    """Outermost ASGI wrapper: how many body bytes did the app pull from the connection?"""

    def __init__(self, app):
        self.app, self.pulled = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            if message.get("type") == "http.request":
                self.pulled += len(message.get("body", b""))
            return message

        return await self.app(scope, counted if scope["type"] == "http" else receive, send)


def _no_traceback(text: str) -> None:
    for marker in ("Traceback", 'File "', "postloc/", "site-packages", "line "):
        assert marker not in text, text


def _json_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    _no_traceback(response.text)
    return body


# --- body size -------------------------------------------------------------------------------


def test_declared_oversized_body_is_refused_before_a_byte_is_read(predictor):
    """Headers only, announcing 50 MB: the 413 comes back at once and the app pulled 0 bytes."""
    probe = CountingApp(app_with(predictor, max_body_bytes=4096))
    with serving(probe) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 50000000\r\n\r\n"
            )
            received = b""
            while chunk := conn.recv(65536):  # the server closes the connection after its 413
                received += chunk
            answer = received.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":413' in answer.replace(" ", "") and "Traceback" not in answer
    assert probe.pulled == 0


def test_chunked_oversized_body_stops_near_the_limit(predictor):
    """No Content-Length: the app stops pulling just past the limit (uvicorn's buffer), not at 20 MB."""
    import httpx

    limit, chunk = 8192, 1000
    probe = CountingApp(app_with(predictor, max_body_bytes=limit))

    def body():
        for _ in range(20_000):
            yield b"x" * chunk

    with serving(probe) as url:
        try:
            response = httpx.post(
                f"{url}/v1/predict", content=body(), headers={"content-type": "application/json"}, timeout=30
            )
            _json_error(response, 413)
        except httpx.HTTPError:
            pass  # the server may close the connection while the client still sends
    # uvicorn hands over what it has buffered (it pauses reading past 64 KiB, plus one socket read):
    # the app stops within that of the limit, out of 20 MB offered
    assert limit < probe.pulled <= limit + 2 * 65536 + chunk, probe.pulled


def test_multipart_upload_over_the_limit_is_refused_by_its_declared_length(predictor):
    from starlette.testclient import TestClient

    probe = CountingApp(app_with(predictor, max_body_bytes=10_000))
    with TestClient(probe, base_url=LOCAL) as client:
        response = client.post(
            "/v1/predict", files={"photo": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(200_000), "image/png")}
        )
    _json_error(response, 413)
    assert probe.pulled == 0


# --- pixels, text, rate ----------------------------------------------------------------------


def test_pixel_limit(predictor):
    from starlette.testclient import TestClient

    with TestClient(app_with(predictor, max_image_pixels=32 * 24), base_url=LOCAL) as client:
        assert (
            client.post("/v1/predict", files={"photo": ("a.png", png_bytes((32, 24)), "image/png")}).status_code == 200
        )
        body = _json_error(
            client.post("/v1/predict", files={"photo": ("a.png", png_bytes((33, 24)), "image/png")}), 413
        )
        assert "pixel" in body["error"]["message"]


def test_text_limit(predictor):
    from starlette.testclient import TestClient

    with TestClient(app_with(predictor, max_text_chars=50), base_url=LOCAL) as client:
        assert client.post("/v1/predict", json={"text": "a" * 50}).status_code == 200
        body = _json_error(client.post("/v1/predict", json={"text": "a" * 51}), 422)
        assert "51 characters" in body["error"]["message"] and "50" in body["error"]["message"]
        form = client.post("/v1/predict", files={"text": (None, "b" * 51)})  # multipart form field
        _json_error(form, 422)


class ClientFromHeader:
    """Test-only ASGI wrapper: the client address comes from ``x-test-client`` (one app, many clients)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            address = dict(scope.get("headers") or []).get(b"x-test-client", b"127.0.0.1").decode()
            scope = {**scope, "client": (address, 1234)}
        return await self.app(scope, receive, send)


def test_rate_limit_is_per_client(predictor):
    from starlette.testclient import TestClient

    app = ClientFromHeader(app_with(predictor, rate_per_second=0.001, burst=2))
    greedy, polite = {"x-test-client": "10.0.0.1"}, {"x-test-client": "10.0.0.2"}
    with TestClient(app, base_url=LOCAL) as client:
        codes = [client.post("/v1/predict", json={"text": "x"}, headers=greedy).status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        limited = client.post("/v1/explain", json={"text": "x"}, headers=greedy)
        _json_error(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert client.post("/v1/predict", json={"text": "x"}, headers=polite).status_code == 200  # others unaffected


# --- CORS and errors -------------------------------------------------------------------------


def test_cors_headers_absent_by_default(predictor):
    from starlette.testclient import TestClient

    with TestClient(create_app(predictor), base_url=LOCAL) as client:
        for response in (
            client.get("/v1/pois", headers={"Origin": "http://evil.example"}),
            client.post("/v1/predict", json={"text": "x"}, headers={"Origin": "http://evil.example"}),
            client.options(
                "/v1/predict", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
            ),
        ):
            assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers


def test_unexpected_errors_are_a_bare_json_500(predictor, monkeypatch):
    from starlette.testclient import TestClient

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret detail at /srv/postloc/models/weights.safetensors line 12")

    app = create_app(predictor)
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL) as client:
        monkeypatch.setattr(app.state.batcher, "__call__", explode, raising=False)
        monkeypatch.setattr(type(app.state.batcher), "__call__", explode)
        response = client.post("/v1/predict", json={"text": "x"})
    body = _json_error(response, 500)
    assert body["error"]["message"] == "internal error" and "secret" not in response.text


# --- nothing a request sends becomes a path --------------------------------------------------

_OPENED: list[str] = []
_RECORDING = threading.Event()


def _record_open(event: str, args: tuple) -> None:
    if _RECORDING.is_set() and event in ("open", "os.listdir", "os.scandir", "os.stat"):
        _OPENED.append(str(args[0]) if args else "")


@contextmanager
def recording_opens():
    """Every file the process opens while the block runs (audit hooks cannot be removed: toggled)."""
    if not getattr(sys, "_postloc_open_probe", False):
        sys.addaudithook(_record_open)
        sys._postloc_open_probe = True  # type: ignore[attr-defined]
    _OPENED.clear()
    _RECORDING.set()
    try:
        yield _OPENED
    finally:
        _RECORDING.clear()


EVIL = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\win.ini",
    "file:///etc/passwd",
    "~/.ssh/id_rsa",
    "/proc/self/environ",
]


@pytest.mark.parametrize("evil", EVIL)
def test_no_request_field_reaches_the_file_system(predictor, evil):
    from starlette.testclient import TestClient

    app = create_app(predictor)
    with TestClient(app, base_url=LOCAL) as client, recording_opens() as opened:
        answers = [
            client.post("/v1/predict", json={"text": evil, "hashtags": [evil]}),
            client.post("/v1/predict", json={"text": "x", "image_path": evil}),
            client.post("/v1/predict", json={"text": "x", "image": [evil]}),
            client.post("/v1/explain", files={"text": (None, evil), "hashtags": (None, evil)}),
            client.post("/v1/predict", files={"text": (None, "x"), "photo": (None, evil)}),
            client.post("/v1/predict", files={"photo": (evil, png_bytes(), "image/png")}),
            client.post(f"/v1/predict?path={evil}", json={"text": "x"}),
            client.get(f"/static/{evil}"),
            client.get(f"/{evil}"),
        ]
        assert client.get("/").status_code == 200  # control: the page is a file the probe must see
    for response in answers:
        assert response.status_code in (200, 400, 404, 405, 422), (response.status_code, response.text)
        if response.status_code >= 400:
            _json_error(response, response.status_code)
    assert [a.status_code for a in answers[1:3]] == [422, 422]  # path-like fields are rejected, not ignored
    assert any(p.endswith("index.html") for p in opened), opened  # the probe works
    markers = ("passwd", "win.ini", "id_rsa", "environ", "/etc", ".ssh")
    assert not [p for p in opened if any(m in p for m in markers)], opened
    static = str(Path(create_app.__code__.co_filename).parent / "static")
    assert all(
        p.startswith(static) or not p.startswith("/") or "site-packages" in p or "/usr/" in p for p in opened if p
    ), opened
