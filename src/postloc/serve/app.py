"""The FastAPI app: ``POST /v1/predict`` / ``/v1/explain``, ``GET /v1/pois``, ``/healthz``, the page at ``/``.

Design points (the API faces untrusted clients):

* the model is loaded once (:func:`create_app` takes a loaded predictor) and all model calls go
  through one :class:`~postloc.serve.batcher.MicroBatcher`, so concurrent requests share batches;
* limits are enforced before work is done: the rate limit and the body size in an ASGI middleware
  (Content-Length checked before a byte is read; chunked bodies counted while streaming), the
  pixel count from the image header before decoding;
* the photo's type comes from its magic bytes, never from the declared type or the file name, and
  nothing a request sends becomes a file path (the upload's file name is ignored entirely);
* a body is bounded and counted before it is validated, off the event loop (:mod:`postloc.serve.bodies`);
* the ``Host`` must be one the server is meant to be reached by and a POST may not come from a foreign
  page (:mod:`postloc.serve.hosts`: DNS rebinding, blind cross-site posts);
* every error is ``{"error": {"code", "message"}}`` with its status code; unexpected exceptions
  are logged on the server and answered with a bare 500, never a stack trace;
* CORS is off unless origins are configured; the Swagger page (scripts from a CDN) is off unless asked for.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from postloc.data.image_features import IMAGE_COLUMN
from postloc.data.schema import has_lone_surrogate
from postloc.inference.explain import explain_row, ignored_hashtags, occlusions
from postloc.inference.images import NO_PHOTO_INPUT, FeaturizerInfo, PhotoFeatures, featurizer_for_model
from postloc.inference.photos import ImageRejected, check_upload, release_memory, sniff_image
from postloc.inference.predictor import ALL_HASHTAGS, decide
from postloc.metrics import top_k_indices
from postloc.serve.about import add_about
from postloc.serve.basemap import add_basemap, basemap_body
from postloc.serve.batcher import MicroBatcher
from postloc.serve.bodies import parse, validation_message
from postloc.serve.density import add_density
from postloc.serve.errors import CLOSE, ApiError, BodyTooLarge, error_response
from postloc.serve.hosts import LOOPBACK_HOSTS, HostGuard, normalise_host
from postloc.serve.limits import MAX_HASHTAG_CHARS, Limits, TokenBucket, require_at_least, setting_error
from postloc.serve.schemas import POI, Error, Health, PageConfig, POIList, PredictRequest, PredictResponse
from postloc.settings import setting
from postloc.vision.decode import CORRUPT, NOT_IMAGE, TOO_LARGE, TRUNCATED

#: decoder statuses that mean the client's file is broken (a 400, as before any featurizer runs)
UNDECODABLE = (CORRUPT, TRUNCATED, NOT_IMAGE)

log = logging.getLogger("postloc.serve")
STATIC = Path(__file__).parent / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@dataclass
class ServeSettings:
    limits: Limits = field(default_factory=Limits)
    #: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png; off: no network needed
    tile_url: str | None = setting(
        None,
        flag="--tiles",
        help="tile URL template for the map, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)",
    )
    tile_attribution: str = setting("")
    cors_origins: tuple[str, ...] = setting(
        (), flag="--cors-origin", help="allow this origin (repeatable; default: CORS off)"
    )
    batch_rows: int = setting(64, help="most rows in one model call (default %(default)s)")
    #: 0: batch what queued meanwhile (see batcher)
    batch_wait_ms: float = setting(
        0.0,
        help="extra wait for more requests before a model call (default %(default)s: batch what "
        "queued while the previous call ran)",
    )
    #: the names clients may reach the server by (the ``Host`` header, port aside); ``("*",)``: any.
    #: The loopback names by default: a server on 127.0.0.1 must not answer a rebound ``evil.example``.
    allowed_hosts: tuple[str, ...] = setting(
        LOOPBACK_HOSTS,
        metavar="NAMES",
        help="comma-separated host names clients may use to reach the server (the Host header); '*' for any "
        "(default: localhost, 127.0.0.1, [::1] and the --host address; a guard against DNS rebinding)",
    )
    #: Swagger UI and ReDoc load their scripts from a CDN
    docs: bool = setting(
        False,
        help="also serve /docs and /redoc (their Swagger UI and ReDoc scripts come from a CDN; default: off, "
        "/openapi.json is always served)",
    )

    def __post_init__(self) -> None:
        require_at_least(self, ("batch_rows",), 1)
        if not (math.isfinite(self.batch_wait_ms) and 0 <= self.batch_wait_ms <= 60_000):
            raise setting_error(
                self, "batch_wait_ms", "must be a number of milliseconds in [0, 60000]", self.batch_wait_ms
            )
        given = (self.allowed_hosts,) if isinstance(self.allowed_hosts, str) else tuple(self.allowed_hosts)
        hosts = tuple(normalise_host(h) if isinstance(h, str) else None for h in given)
        if isinstance(self.allowed_hosts, str) or not hosts or None in hosts:
            raise setting_error(
                self, "allowed_hosts", "must be a tuple of host names or addresses (or * for any)", self.allowed_hosts
            )
        self.allowed_hosts = tuple(dict.fromkeys(h for h in hosts if h))


class GuardMiddleware:
    """Rate limit (POST /v1/*) and body-size limit, as raw ASGI so nothing is read before the checks."""

    def __init__(self, app, limits: Limits, bucket: TokenBucket):
        self.app, self.limits, self.bucket = app, limits, bucket

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        if scope["path"].startswith("/v1/"):
            client = (scope.get("client") or ("unknown", 0))[0]
            allowed, wait = self.bucket.allow(client)
            if not allowed:
                response = error_response(
                    429, "too many requests; slow down", {"Retry-After": str(max(1, int(np.ceil(wait))))}
                )
                return await response(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        limit = self.limits.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await error_response(400, "invalid Content-Length")(scope, receive, send)
            if declared > limit:
                return await error_response(
                    413, f"request body of {declared} bytes exceeds the limit of {limit} bytes", CLOSE
                )(scope, receive, send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await error_response(413, f"request body exceeds the limit of {limit} bytes", CLOSE)(
                    scope, receive, send
                )


def create_app(
    predictor: Any, settings: ServeSettings | None = None, image: FeaturizerInfo | None = None, model_name: str = ""
) -> FastAPI:
    """The app around an already loaded :class:`postloc.inference.predictor.Predictor`.

    ``image`` is the photo seam: a featurizer (decoded RGB image -> the vector the model was
    trained on), with the run's photo treatment and cache when :func:`featurizer_for_run` found
    them, or ``None`` with the reason shown to clients. Uploads are looked up in the run's cache
    but never added to it (clients must not be able to grow the disk). A model that reads no photo
    (:attr:`~postloc.models.base.Estimator.inputs_used`) gets none, whatever ``image`` holds, and
    ``/v1/config`` tells the page which inputs it reads.
    """
    from postloc.inference.explain import model_proba

    settings = settings or ServeSettings()
    limits = settings.limits
    inputs = predictor.model.inputs_used
    if not inputs.image:
        image = FeaturizerInfo(None, NO_PHOTO_INPUT)
    elif image is None:
        image = FeaturizerInfo(None, "no image featurizer configured; the photo is not used")
    photos = PhotoFeatures(image, limits.max_image_pixels, store=False, warn=log.warning) if image.featurizer else None
    batcher = MicroBatcher(model_proba(predictor), settings.batch_rows, settings.batch_wait_ms / 1000)
    classes = predictor.classes
    names = [p.get("name") or "" for p in predictor.pois]
    name_blender = getattr(predictor, "names", None)  # POIs known by name (--pois); None: the model alone
    image_dim = inputs.image_dim

    @asynccontextmanager
    async def lifespan(_app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="postloc",
        version="1",
        lifespan=lifespan,
        description="Infer where a social-media post was made (a POI) from its caption, hashtags and "
        "photo, and explain which parts give the place away.",
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
    )
    app.state.batcher = batcher
    app.state.predictor = predictor
    app.add_middleware(
        GuardMiddleware, limits=limits, bucket=TokenBucket(limits.rate_per_second, limits.burst, limits.max_clients)
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )

    @app.exception_handler(ApiError)
    async def _api_error(_request, error: ApiError):
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, error: StarletteHTTPException):
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, error: RequestValidationError):
        return error_response(422, validation_message(error.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(_request, error: Exception):
        log.exception("unexpected error", exc_info=error)
        return error_response(500, "internal error")

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path == "/" or request.url.path.startswith("/static/"):
            tiles = _origin(settings.tile_url)
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP.format(tiles=tiles).replace("  ", " "))
        return response

    # outermost: a foreign Host or a cross-origin POST is refused before anything else runs
    app.add_middleware(HostGuard, allowed_hosts=settings.allowed_hosts, cors_origins=settings.cors_origins)

    async def answer(request: Request, force_explain: bool) -> dict[str, Any]:
        body, photo = await parse(request, limits)
        _check_limits(body, limits)
        status = {"received": photo is not None, "used": False, "message": ""}
        vector = None
        if photo is not None:
            vector, status["message"] = await _photo_vector(photo, limits, image, photos, image_dim)
            status["used"] = vector is not None
        post = {"id": "request", "text": body.text, "hashtags": body.hashtags}
        try:
            row = predictor.frame([post]).iloc[0].to_dict()
        except Exception as error:  # noqa: BLE001 - PostlocError from validation: the client's input
            raise ApiError(422, str(error).replace("<predict>:1: ", "")) from None
        row[IMAGE_COLUMN] = vector
        explain = force_explain or body.explain
        parts, variants, _ = occlusions(row) if explain else ([], [], False)
        matrix = await batcher([row] + variants)
        blend = None
        if name_blender is not None:  # names read all the post's hashtags, not only the model's vocabulary
            all_tags = predictor.rows([post])[0][ALL_HASHTAGS]
            blend = predictor.blend_names(matrix, [_name_row(v, row, all_tags) for v in [row] + variants])
            matrix = blend.proba
        base = matrix[0]  # calibrated: model_proba applies the run's temperature
        top = top_k_indices(base[None, :], min(body.top_k, len(classes)))[0]
        ranked = []
        for i in top:
            if blend is not None and i >= blend.n_model and base[i] <= 0:
                continue  # a POI known by name only, which this post does not name
            candidate = {
                "poi": classes[i],
                "name": names[i],
                "probability": float(base[i]),
                "lat": predictor.pois[i].get("lat"),
                "lon": predictor.pois[i].get("lon"),
            }
            if blend is not None:
                candidate["source"] = blend.source(0, int(i))
            ranked.append(candidate)
        decision = decide(ranked, float(base.max()) if len(base) else 0.0, body.min_confidence)
        result: dict[str, Any] = {
            "poi": decision["poi"],
            "confidence": decision["confidence"],
            "reason": decision["reason"],
            **({"source": ranked[0]["source"] if ranked else None} if blend is not None else {}),
            "predictions": ranked,
            "hashtags_used": list(row["hashtags"]),
            "image": status,
            "explanation": None,
        }
        if explain:
            explanation = explain_row(row, lambda _rows: matrix, classes, names)
            explanation.ignored_hashtags = ignored_hashtags(body.hashtags, body.text, row["hashtags"])
            if name_blender is not None:  # a tag that names a place is not without effect
                explanation.ignored_hashtags = [
                    t for t in explanation.ignored_hashtags if not name_blender.index.evidence("", [t])
                ]
            result["explanation"] = explanation.to_dict()
        return result

    openapi_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "text": {"type": "string"},
                            "hashtags": {"type": "string", "description": "space/comma separated"},
                            "top_k": {"type": "integer"},
                            "explain": {"type": "boolean"},
                            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1},
                            "photo": {
                                "type": "string",
                                "format": "binary",
                                "description": "JPEG, PNG, GIF, BMP or WebP",
                            },
                        },
                    }
                },
            },
        }
    }
    errors: dict[int | str, dict[str, Any]] = {code: {"model": Error} for code in (400, 413, 415, 422, 429)}

    # exclude_unset: ``source`` appears only when the server matches names (``--pois``); every other field is
    # always set by :func:`answer`, so responses without names stay as they were
    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_unset=True,
        openapi_extra=openapi_body,
        responses=errors,
    )
    async def predict(request: Request):
        """Top-k POIs for one post (JSON, or multipart/form-data with a `photo` upload)."""
        return await answer(request, force_explain=False)

    @app.post(
        "/v1/explain",
        response_model=PredictResponse,
        response_model_exclude_unset=True,
        openapi_extra=openapi_body,
        responses=errors,
    )
    async def explain(request: Request):
        """Like /v1/predict, always with the occlusion explanation."""
        return await answer(request, force_explain=True)

    # The POI list never changes while serving, and with a large --pois table it is megabytes: built and
    # validated once here, not per request on the event loop (100k names cost ~1 s a request).
    pois_body = POIList(
        pois=[POI(poi=p["poi"], name=p.get("name") or "", lat=p.get("lat"), lon=p.get("lon")) for p in predictor.pois]
    ).model_dump_json()

    @app.get("/v1/pois", response_model=POIList)
    async def pois():
        """Every POI the model can predict, with its centre."""
        return Response(pois_body, media_type="application/json")

    @app.get("/v1/config", response_model=PageConfig)
    async def config():
        """What the web page needs to know: tile layer (off by default), limits, and what the model reads."""
        return {
            "tile_url": settings.tile_url,
            "tile_attribution": settings.tile_attribution,
            "max_body_bytes": limits.max_body_bytes,
            "max_text_chars": limits.max_text_chars,
            "model": model_name or getattr(predictor.model, "name", ""),
            "inputs": inputs.ordered(),
            "photo_used": photos is not None,
            "photo_note": image.reason,
        }

    @app.get("/healthz", response_model=Health)
    async def healthz():
        return {
            "status": "ok",
            "model": model_name or getattr(predictor.model, "name", ""),
            "classes": len(classes),
            "image": image.reason,
        }

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # The handlers parse bodies themselves (strict UTF-8, JSON and multipart in one route), so the
    # request schema is added to the OpenAPI document by hand.
    _register_schema(app)
    return app


def build_app(
    run: Path,
    settings: ServeSettings | None = None,
    featurizer: FeaturizerInfo | None = None,
    names: Path | None = None,
    name_weight: float | None = None,
    basemap: Path | None = None,
) -> FastAPI:
    """Load the run once and build the app (what ``postloc serve`` and the benchmark run).

    ``names``: a CSV/GeoJSON table of POIs known by name (``--pois``, docs/cold-start.md).
    ``basemap``: a GeoJSON of streets and shores for the page's map (``--basemap``, GET /v1/basemap).
    """
    from postloc.inference.names import DEFAULT_NAME_WEIGHT
    from postloc.inference.predictor import load

    basemap_json = basemap_body(basemap)  # a bad file fails in one line before the model loads
    predictor = load(run, names, DEFAULT_NAME_WEIGHT if name_weight is None else name_weight)
    info = featurizer_for_model(run, predictor.model.inputs_used, featurizer)
    app = create_app(predictor, settings, info, model_name=getattr(predictor.model, "name", ""))
    add_about(app, run)  # the page's line on the run: its quickstart verdict, or its own test score
    add_density(app, run)  # the map's background: where the training posts were made
    add_basemap(app, basemap_json)  # under it, the user's streets and shores (none without --basemap)
    return app


def _name_row(variant: dict[str, Any], row: dict[str, Any], all_tags: list[str]) -> dict[str, Any]:
    """What names read of an occlusion variant: its caption, and all the post's tags but the one it removed."""
    removed = set(row["hashtags"]) - set(variant["hashtags"])
    return {"text": variant["text"], ALL_HASHTAGS: [t for t in all_tags if t not in removed]}


def _register_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {})["PredictRequest"] = (
                PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _check_limits(body: PredictRequest, limits: Limits) -> None:
    for where, value in (("text", body.text), *(("hashtags", tag) for tag in body.hashtags)):
        if has_lone_surrogate(value):
            raise ApiError(
                422, f"{where}: contains a lone surrogate (a \\ud800-\\udfff escape), which is not valid Unicode"
            )
    if len(body.text) > limits.max_text_chars:
        raise ApiError(422, f"text has {len(body.text)} characters; the limit is {limits.max_text_chars}")
    if len(body.hashtags) > limits.max_hashtags:
        raise ApiError(422, f"{len(body.hashtags)} hashtags; the limit is {limits.max_hashtags}")
    if any(len(t) > MAX_HASHTAG_CHARS for t in body.hashtags):
        raise ApiError(422, f"a hashtag is longer than {MAX_HASHTAG_CHARS} characters")
    if body.top_k > limits.max_top_k:
        shown = str(body.top_k) if body.top_k < 10**20 else f"a {len(str(body.top_k))}-digit number"
        raise ApiError(422, f"top_k is {shown}; the limit is {limits.max_top_k}")


async def _photo_vector(
    data: bytes, limits: Limits, image: FeaturizerInfo, photos: PhotoFeatures | None, image_dim: int
) -> tuple[Any, str]:
    """The photo's feature vector (or None) and the message for the client; raises for bad photos."""
    if sniff_image(data) is None:
        raise ApiError(
            415, "the uploaded file is not a supported image (JPEG, PNG, GIF, BMP or WebP), judged by its content"
        )
    try:  # from the header alone: a photo the model will not use is never decoded
        check_upload(data, limits.max_image_pixels, limits.max_decoded_bytes)
    except ImageRejected as error:
        raise ApiError(error.status, error.message) from None
    if photos is None:
        return None, image.reason
    loop = asyncio.get_running_loop()
    try:
        outcome = await loop.run_in_executor(None, photos.from_bytes, data)
    except Exception:
        log.exception("image featurizer failed")
        return None, "the photo could not be turned into features; it is not used"
    finally:
        if len(data) > 1 << 20:
            release_memory()  # a large decode's heap goes back to the system, not kept for the next burst
    if outcome.status in UNDECODABLE:
        raise ApiError(
            400, f"the photo could not be decoded ({outcome.status}: corrupt, truncated or unsupported image)"
        )
    if outcome.status == TOO_LARGE:
        raise ApiError(413, f"the photo is too large to decode ({outcome.note}); send a smaller picture")
    if outcome.vector is None:
        if outcome.status == "dropped_portrait":
            return None, f"the photo is portrait noise ({outcome.note}), which training dropped; it is not used"
        return None, f"the photo could not be turned into features ({outcome.status}); it is not used"
    vector = outcome.vector.reshape(-1)
    if vector.shape[0] != image_dim:
        return None, f"the image featurizer gave {vector.shape[0]} features but the model expects {image_dim}"
    return vector, image.reason or "photo used"


def _origin(url: str | None) -> str:
    if not url:
        return ""
    match = re.match(r"^(https?://[^/]+)", url.replace("{s}.", ""))
    return match.group(1) if match else ""
