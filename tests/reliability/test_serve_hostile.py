"""Issue 29: what a hostile client could do to the server, each shown failing before its fix.

* small valid-size bodies that cost seconds and gigabytes (two million ``{}`` as hashtags, a
  multipart field of millions of tags, thousands of unknown keys) are refused at once, in little
  memory, and ``/healthz`` keeps answering meanwhile;
* data never becomes markup in the page (tooltips are text nodes; the CSP forbids form targets);
* ``serve`` options that would crash, disable the rate limit or refuse everything are one-line errors;
* invalid UTF-8 in a form field is a 400, as it is in JSON;
* a foreign ``Host`` (DNS rebinding) is a 400 and a cross-origin POST a 403;
* the Swagger page (CDN scripts) is off unless asked for.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
import time
import tracemalloc

import pytest
from fastapi.testclient import TestClient

from postloc.errors import PostlocError
from postloc.inference.predictor import load
from postloc.serve.app import STATIC, ServeSettings, create_app
from postloc.serve.limits import ConnectionLimits, Limits
from serve_support import small_run, worst_loop_gap

LOCAL = "http://localhost"  # a name the default allow-list holds (TestClient's own default, testserver, is not)
LIFTED = {"rate_per_second": 1e6, "burst": 10**6}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return load(small_run(tmp_path_factory))


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, ServeSettings(limits=Limits(**LIFTED))), base_url=LOCAL) as c:
        yield c


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    return body["error"]["message"]


def post_json(client, raw: bytes, path: str = "/v1/predict"):
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def multipart(fields: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart body built by hand (so that field values can be any bytes)."""
    boundary = b"postloc-hostile"
    parts = [
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + k.encode() + b'"\r\n\r\n' + v + b"\r\n"
        for k, v in fields.items()
    ]
    return b"".join(parts) + b"--" + boundary + b"--\r\n", "multipart/form-data; boundary=" + boundary.decode()


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


# --- 1: cheap to send, expensive to refuse ----------------------------------------------------------------


def test_two_million_empty_objects_are_refused_at_once(client):
    """6 MB of ``{},``: pydantic used to build two million errors (26 s, +2.3 GB, event loop blocked)."""
    body = b'{"hashtags":[' + b",".join([b"{}"] * 2_000_000) + b"]}"
    response, seconds = timed(lambda: post_json(client, body))
    message = error_of(response, 413)
    assert "JSON" in message and str(len(body)) in message
    assert seconds < 1.0, seconds


def test_a_hostile_body_under_the_json_limit_costs_little(client):
    """80,000 ``{}`` fit under the JSON limit: counted before pydantic sees them, not turned into 80,000 errors."""
    body = b'{"hashtags":[' + b",".join([b"{}"] * 80_000) + b"]}"
    assert len(body) < Limits().max_post_bytes()
    tracemalloc.start()
    try:
        response, seconds = timed(lambda: post_json(client, body))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error_of(response, 422) == "80000 hashtags; the limit is 64"
    assert peak < 30e6, f"{peak / 1e6:.0f} MB"
    assert seconds < 1.0, seconds


def test_unknown_keys_are_named_a_few_at_a_time(client):
    keys = b",".join(b'"k%d":1' % i for i in range(20_000))
    response, seconds = timed(lambda: post_json(client, b"{" + keys + b"}"))
    message = error_of(response, 422)
    assert message.startswith("unknown field(s) 'k0', 'k1', 'k2', 'k3', 'k4' and 19995 more; expected ")
    assert seconds < 1.0, seconds


def test_item_types_are_checked_before_the_pydantic_model(client):
    message = error_of(post_json(client, b'{"hashtags": [1, "a", {}], "text": 5}'), 422)
    assert message == "text: must be a string; hashtags: must be a list of strings (item 0 is a number)"


@pytest.mark.parametrize("tags", [b"ab," * 3_400_000, b"ab," * 70])
def test_a_multipart_hashtags_field_is_bounded(client, tags):
    """3.4 million ``ab,`` in one form field: 413 before it is split (it used to be split and validated, 520 MB)."""
    body, ctype = multipart({"hashtags": tags})
    response, seconds = timed(lambda: client.post("/v1/predict", content=body, headers={"content-type": ctype}))
    if len(tags) > Limits().max_post_bytes():
        assert "form field" in error_of(response, 413)
    else:  # under the field limit, still only the first tags past the limit are split off
        assert error_of(response, 422) == "more than 64 hashtags; the limit is 64"
    assert seconds < 1.0, seconds


def test_the_event_loop_is_not_blocked_while_bodies_are_checked(predictor):
    """Body checks run in a worker thread: a ticker on the event loop keeps ticking (and /healthz answers)
    while six hostile bodies are decoded and validated; it used to stall for each body in turn."""

    app = create_app(predictor, ServeSettings(limits=Limits(**LIFTED)))
    body = b'{"hashtags":[' + b",".join([b"{}"] * 80_000) + b"]}"

    def requests(c):
        sent = [c.post("/v1/predict", content=body, headers={"content-type": "application/json"}) for _ in range(6)]
        return [*sent, c.get("/healthz")]

    worst_gap, answers = worst_loop_gap(app, requests, LOCAL)
    assert [r.status_code for r in answers] == [422] * 6 + [200]
    # the blocking code stalled the loop 4.4 s here; a loaded 2-core CI machine adds tenths of a second
    assert worst_gap < 1.0, worst_gap


@pytest.mark.slow
def test_parallel_hostile_bodies_over_a_real_socket(predictor):
    """Eight 6 MB bodies at once against uvicorn on 127.0.0.1: each refused fast, /healthz answers meanwhile."""
    import httpx

    from serving import serving

    app = create_app(predictor, ServeSettings(limits=Limits(**LIFTED)))
    body = b'{"hashtags":[' + b",".join([b"{}"] * 2_000_000) + b"]}"
    with serving(app) as url:
        statuses, seconds, worst = [], [], [0.0]
        done = threading.Event()

        def hostile():
            response, took = timed(
                lambda: httpx.post(
                    url + "/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=60
                )
            )
            statuses.append(response.status_code)
            seconds.append(took)

        def health():
            with httpx.Client(timeout=60) as c:
                while not done.is_set():
                    response, took = timed(lambda: c.get(url + "/healthz"))
                    assert response.status_code == 200
                    worst[0] = max(worst[0], took)

        poller = threading.Thread(target=health)
        poller.start()
        workers = [threading.Thread(target=hostile) for _ in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done.set()
        poller.join()
    assert statuses == [413] * 8
    assert max(seconds) < 3.0, seconds  # mostly the client's own upload of 6 MB
    assert worst[0] < 0.5, worst


# --- 4: data is never markup ---------------------------------------------------------------------------------

APP_JS = STATIC / "app.js"
HOSTILE_NAME = "<b id=x>hi</b><style>body{display:none}</style>"


def test_page_csp_forbids_form_targets_and_base_urls(client):
    csp = client.get("/").headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
    assert directives["form-action"] == "form-action 'none'"
    assert directives["base-uri"] == "base-uri 'none'"
    assert directives["object-src"] == "object-src 'none'"


def test_app_js_hands_leaflet_elements_not_html_strings():
    """Leaflet inserts a *string* tooltip/popup as HTML; every one must be an element built with textContent."""
    source = APP_JS.read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source)
    calls = re.findall(r"\.(bindTooltip|bindPopup|setContent|setTooltipContent|setPopupContent)\(([^,)]*)", source)
    assert calls, "the page no longer labels its markers?"
    for method, argument in calls:
        assert re.fullmatch(r"\s*[A-Za-z_$][\w$]*(\([^()]*\))?\s*", argument), (method, argument)


NODE_HARNESS = r"""
const recorded = { html: [], tooltips: [], attribution: [] };
class El {
  constructor(tag) { this.tagName = tag; this.kids = []; this.own = ""; this.style = {}; this.hidden = false;
    this.listeners = {}; this.classList = { add() {}, remove() {} }; }
  set textContent(v) { this.own = String(v); this.kids = []; }
  get textContent() { return this.own + this.kids.map((k) => (typeof k === "string" ? k : k.textContent)).join(""); }
  set innerHTML(v) { recorded.html.push(String(v)); }
  insertAdjacentHTML(_, v) { recorded.html.push(String(v)); }
  append(...xs) { this.kids.push(...xs); }
  replaceChildren(...xs) { this.kids = xs; this.own = ""; }
  addEventListener(type, f) { (this.listeners[type] = this.listeners[type] || []).push(f); }
}
const byId = {};
global.document = {
  getElementById: (id) => (byId[id] = byId[id] || new El("div")),
  querySelector: (sel) => (byId[sel] = byId[sel] || new El("tbody")),
  createElement: (tag) => new El(tag),
  createTextNode: (text) => String(text),
};
global.FormData = class { append() {} };
const marker = { bindTooltip(c) { recorded.tooltips.push(c); return marker; },
  bindPopup(c) { recorded.html.push(String(c)); return marker; }, addTo() { return marker; } };
global.L = {
  map: () => ({ setView() { return this; }, fitBounds() {} }),
  layerGroup: () => ({ addTo() { return this; }, clearLayers() {} }),
  circleMarker: () => marker,
  tileLayer: (url, options) => { recorded.attribution.push(options.attribution); return { addTo() {} }; },
  latLngBounds: () => ({ pad() { return this; } }),
};
const NAME = process.argv[3];
const answers = {
  "/v1/config": { tile_url: "https://tiles.example/{z}/{x}/{y}.png", tile_attribution: NAME, max_body_bytes: 1e7 },
  "/v1/predict": {
    poi: "p1", confidence: 0.6, reason: NAME, source: "names",
    predictions: [{ poi: NAME, name: NAME, probability: 0.6, lat: 1, lon: 2, source: "names" },
                  { poi: "p2", name: NAME, probability: 0.4, lat: 3, lon: 4, source: "model" }],
    hashtags_used: [NAME], image: { received: true, used: false, message: NAME },
    explanation: { target_poi: NAME, target_name: NAME, probability: 0.6, truncated: false, ignored_hashtags: [NAME],
      contributions: [{ kind: "hashtag", token: NAME, contribution: 0.3, probability_without: 0.3,
                        top_poi_without: NAME }] },
  },
};
global.fetch = async (url) => ({ ok: true, status: 200, json: async () => answers[url] });
require(process.argv[2]);
(async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await byId["post-form"].listeners.submit[0]({ preventDefault() {} });
  const text = Object.values(byId).map((e) => e.textContent).join("\n");
  console.log(JSON.stringify({
    html: recorded.html,
    tooltips: recorded.tooltips.map((t) => (typeof t === "string" ? { html: t } : { text: t.textContent })),
    attribution: recorded.attribution, shown: text,
  }));
})();
"""


@pytest.mark.browser
def test_app_js_in_node_writes_names_as_text(tmp_path):
    """app.js under node with a stand-in DOM and Leaflet: a POI named like markup reaches no HTML sink.

    Marked ``browser`` (run with the page tests): it needs ``node`` (Debian's nodejs), which the default
    test environment does not promise."""
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "this test needs node (apt-get install nodejs)"
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    out = subprocess.run(
        [node, str(harness), str(APP_JS), HOSTILE_NAME], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(out.stdout)
    assert seen["html"] == []
    assert seen["tooltips"] and all("text" in t for t in seen["tooltips"]), seen["tooltips"]
    assert HOSTILE_NAME in seen["tooltips"][0]["text"]
    assert seen["attribution"] and "<" not in seen["attribution"][0], seen["attribution"]  # Leaflet inserts HTML
    assert HOSTILE_NAME in seen["shown"]


# --- 11: serve options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_body_bytes", -1),
        ("max_body_bytes", 0),
        ("max_text_chars", -5),
        ("max_image_pixels", 0),
        ("max_hashtags", -1),
        ("max_top_k", 0),
        ("rate_per_second", math.nan),
        ("rate_per_second", -1.0),
        ("rate_per_second", 0.0),
        ("rate_per_second", math.inf),
        ("burst", 0),
        ("max_clients", 0),
    ],
)
def test_limits_refuse_values_that_break_serving(field, value):
    with pytest.raises(PostlocError, match=field):
        Limits(**{field: value})


@pytest.mark.parametrize(
    "settings",
    [
        {"batch_rows": 0},
        {"batch_wait_ms": math.nan},
        {"batch_wait_ms": -1.0},
        {"allowed_hosts": ()},
        {"allowed_hosts": ("",)},
        {"allowed_hosts": ("evil.example/path",)},
        {"allowed_hosts": "localhost"},  # a string, not a tuple: would allow "l", "o", ...
    ],
)
def test_serve_settings_refuse_bad_values(settings):
    with pytest.raises(PostlocError):
        ServeSettings(**settings)


@pytest.mark.parametrize("field, value", [("header_timeout", 0.0), ("keep_alive", math.nan), ("max_connections", 0)])
def test_connection_limits_refuse_bad_values(field, value):
    with pytest.raises(PostlocError, match=field):
        ConnectionLimits(**{field: value})


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--port", "-1"),
        ("--port", "70000"),
        ("--threads", "-3"),
        ("--rate", "nan"),
        ("--burst", "0"),
        ("--max-body-bytes", "-1"),
        ("--max-text-chars", "-5"),
        ("--batch-rows", "0"),
        ("--allowed-hosts", ","),
    ],
)
def test_serve_cli_refuses_bad_options_in_one_line(tmp_path, capsys, flag, value):
    from postloc.cli import main

    assert main(["serve", str(tmp_path / "no-run"), flag, value]) == 2  # refused before the run is looked at
    err = capsys.readouterr().err
    assert err.startswith(f"postloc serve: error: {flag} ") and err.count("\n") == 1, err


# --- 14: invalid UTF-8 in a form field ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["text", "hashtags", "top_k"])
def test_invalid_utf8_in_a_form_field_is_a_400(client, field):
    body, ctype = multipart({field: b"caf\xe9 \xff\xfe"})
    message = error_of(client.post("/v1/predict", content=body, headers={"content-type": ctype}), 400)
    assert message == f"form field {field!r} is not valid UTF-8"


def test_valid_utf8_in_a_form_field_is_read_as_utf8(client):
    body, ctype = multipart({"text": "Café am Zwinger ☕".encode(), "explain": b"true"})
    response = client.post("/v1/predict", content=body, headers={"content-type": ctype})
    assert response.status_code == 200, response.text
    tokens = [c["token"] for c in response.json()["explanation"]["contributions"]]
    assert "café" in tokens or "Café" in tokens, tokens


# --- 15: Host and Origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", "testserver", ""])
def test_a_foreign_host_is_refused(client, host):
    message = error_of(client.get("/healthz", headers={"host": host}), 400)
    assert "Host" in message and "--allowed-hosts" in message


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1:8000", "[::1]:8000", "[::1]"])
def test_loopback_names_are_allowed_by_default(client, host):
    assert client.get("/healthz", headers={"host": host}).status_code == 200


def test_allowed_hosts_setting(predictor):
    settings = ServeSettings(limits=Limits(**LIFTED), allowed_hosts=("api.example.org",))
    with TestClient(create_app(predictor, settings), base_url="http://api.example.org") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 400
    with TestClient(create_app(predictor, ServeSettings(allowed_hosts=("*",)))) as c:
        assert c.get("/healthz", headers={"host": "anything.example"}).status_code == 200


def test_cli_allowed_hosts_default_to_loopback_and_the_bound_host():
    from postloc.cli import build_parser
    from postloc.cli.serve import settings_from_args

    def hosts(*flags: str) -> tuple[str, ...]:
        return settings_from_args(build_parser().parse_args(["serve", "RUN", *flags])).allowed_hosts

    assert set(hosts()) == {"localhost", "127.0.0.1", "[::1]"}
    assert set(hosts("--host", "10.0.0.5")) == {"localhost", "127.0.0.1", "[::1]", "10.0.0.5"}
    assert set(hosts("--host", "::1")) == {"localhost", "127.0.0.1", "[::1]"}
    assert hosts("--allowed-hosts", "api.example.org, Other.Example") == ("api.example.org", "other.example")
    assert hosts("--allowed-hosts", "*") == ("*",)


def test_a_cross_origin_post_is_refused(client, predictor):
    message = error_of(client.post("/v1/predict", json={"text": "x"}, headers={"Origin": "http://evil.example"}), 403)
    assert "http://evil.example" in message
    assert client.post("/v1/predict", json={"text": "x"}, headers={"Origin": "http://localhost"}).status_code == 200
    assert client.get("/v1/pois", headers={"Origin": "http://evil.example"}).status_code == 200  # reads stay CORS's
    settings = ServeSettings(limits=Limits(**LIFTED), cors_origins=("https://app.example",))
    with TestClient(create_app(predictor, settings), base_url=LOCAL) as c:
        assert c.post("/v1/predict", json={"text": "x"}, headers={"Origin": "https://app.example"}).status_code == 200
        assert c.post("/v1/predict", json={"text": "x"}, headers={"Origin": "null"}).status_code == 403


def test_swagger_docs_are_off_unless_asked_for(client, predictor):
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    with TestClient(create_app(predictor, ServeSettings(docs=True)), base_url=LOCAL) as c:
        assert c.get("/docs").status_code == 200
