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

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from postloc.inference.images import FeaturizerInfo, featurizer_for_model
from postloc.serve.about import add_about
from postloc.serve.answer import Answerer, add_answer_routes, photo_input
from postloc.serve.basemap import add_basemap, basemap_body
from postloc.serve.batcher import MicroBatcher
from postloc.serve.bodies import validation_message
from postloc.serve.density import add_density
from postloc.serve.errors import CLOSE, ApiError, BodyTooLarge, error_response
from postloc.serve.hosts import HostGuard
from postloc.serve.limits import Limits, TokenBucket
from postloc.serve.page import STATIC, add_config, add_page, add_security_headers
from postloc.serve.pois import add_pois
from postloc.serve.schemas import Health, PredictRequest
from postloc.serve.settings import ServeSettings

log = logging.getLogger("postloc.serve")

__all__ = ["STATIC", "GuardMiddleware", "ServeSettings", "build_app", "create_app"]


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
    them, or ``None`` with the reason shown to clients. A model that reads no photo
    (:attr:`~postloc.models.base.Estimator.inputs_used`) gets none, whatever ``image`` holds, and
    ``/v1/config`` tells the page which inputs it reads. The pieces: the guards (middleware, in the
    order they run, outermost last), the error answers, the answers (:mod:`postloc.serve.answer`), the POI
    list (:mod:`postloc.serve.pois`), the page (:mod:`postloc.serve.page`) and the health check.
    """
    settings = settings or ServeSettings()
    image = photo_input(predictor, image)
    answerer = Answerer(predictor, settings.limits, image, settings.batch_rows, settings.batch_wait_ms / 1000)
    model = model_name or getattr(predictor.model, "name", "")
    app = FastAPI(
        title="postloc",
        version="1",
        lifespan=_lifespan(answerer.batcher),
        description="Infer where a social-media post was made (a POI) from its caption, hashtags and "
        "photo, and explain which parts give the place away.",
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
    )
    app.state.batcher = answerer.batcher
    app.state.predictor = predictor
    _add_guards(app, settings)
    _add_error_answers(app)
    add_security_headers(app, settings.tile_url)
    # outermost: a foreign Host or a cross-origin POST is refused before anything else runs
    app.add_middleware(HostGuard, allowed_hosts=settings.allowed_hosts, cors_origins=settings.cors_origins)

    add_answer_routes(app, answerer)
    add_pois(app, predictor)
    add_config(
        app,
        {
            "tile_url": settings.tile_url,
            "tile_attribution": settings.tile_attribution,
            "max_body_bytes": settings.limits.max_body_bytes,
            "max_text_chars": settings.limits.max_text_chars,
            "model": model,
            "inputs": predictor.model.inputs_used.ordered(),
            "photo_used": answerer.photos is not None,
            "photo_note": image.reason,
        },
    )
    _add_health(app, {"status": "ok", "model": model, "classes": len(predictor.classes), "image": image.reason})
    add_page(app)

    # The handlers parse bodies themselves (strict UTF-8, JSON and multipart in one route), so the
    # request schema is added to the OpenAPI document by hand.
    _register_schema(app)
    return app


def _lifespan(batcher: MicroBatcher):
    @asynccontextmanager
    async def lifespan(_app):
        await batcher.start()
        yield
        await batcher.stop()

    return lifespan


def _add_guards(app: FastAPI, settings: ServeSettings) -> None:
    """The rate and body-size limits, then CORS when origins are configured (off by default)."""
    limits = settings.limits
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


def _add_error_answers(app: FastAPI) -> None:
    """Every error as ``{"error": {"code", "message"}}``; an unexpected one logged here, a bare 500 there."""

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


def _add_health(app: FastAPI, body: dict[str, Any]) -> None:
    @app.get("/healthz", response_model=Health)
    async def healthz():
        return body


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
