"""A request's post to its answer: the body checked, the photo turned into features, the post on the road.

``POST /v1/predict`` and ``/v1/explain`` (:func:`add_answer_routes`). The post a request sends becomes one
:class:`~postloc.inference.predictor.PostRecord` (:meth:`Predictor.records`: the client's 422 when it is not
valid), its occlusion variants join it when an explanation is asked for, and all of them go through
:meth:`Predictor.probabilities` in the micro-batcher's model thread (concurrent requests share a call);
:meth:`Predictor.answer` ranks and decides. Nothing here ranks candidates or decides.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request

from postloc.data.image_features import IMAGE_COLUMN
from postloc.data.schema import has_lone_surrogate
from postloc.inference.explain import explain_record, ignored_hashtags, occlusions
from postloc.inference.images import NO_PHOTO_INPUT, FeaturizerInfo, PhotoFeatures
from postloc.inference.photos import ImageRejected, check_upload, release_memory, sniff_image
from postloc.inference.predictor import PostRecord, Predictor, Probabilities
from postloc.serve.batcher import MicroBatcher
from postloc.serve.bodies import parse
from postloc.serve.errors import ApiError
from postloc.serve.limits import MAX_HASHTAG_CHARS, Limits
from postloc.serve.schemas import Error, PredictRequest, PredictResponse
from postloc.vision.decode import CORRUPT, NOT_IMAGE, TOO_LARGE, TRUNCATED

#: decoder statuses that mean the client's file is broken (a 400, as before any featurizer runs)
UNDECODABLE = (CORRUPT, TRUNCATED, NOT_IMAGE)

log = logging.getLogger("postloc.serve")


def photo_input(predictor: Predictor, image: FeaturizerInfo | None) -> FeaturizerInfo:
    """The photo seam as the server uses it: ``image``, none for a model that reads no photo
    (:attr:`~postloc.models.base.Estimator.inputs_used`), or none with the reason when none was configured."""
    if not predictor.model.inputs_used.image:
        return FeaturizerInfo(None, NO_PHOTO_INPUT)
    if image is None:
        return FeaturizerInfo(None, "no image featurizer configured; the photo is not used")
    return image


@dataclass
class RequestPost:
    """What a request asks about: its checked body (``top_k``, ``min_confidence``, ``explain``), its post as a
    record, and what happened to its photo (``{received, used, message}``)."""

    body: PredictRequest
    record: PostRecord
    image: dict[str, Any]


class Answerer:
    """Answers requests: a request's post to the predictor's answer, its photo status and explanation.

    Uploads are looked up in the run's feature cache but never added to it (clients must not be able
    to grow the disk). All model calls go through one :class:`MicroBatcher` (:attr:`batcher`).
    """

    def __init__(
        self, predictor: Predictor, limits: Limits, image: FeaturizerInfo, batch_rows: int, batch_wait_s: float
    ):
        self.predictor, self.limits, self.image = predictor, limits, image
        self.photos = (
            PhotoFeatures(image, limits.max_image_pixels, store=False, warn=log.warning) if image.featurizer else None
        )
        self.batcher: MicroBatcher[Probabilities] = MicroBatcher(self._probabilities, batch_rows, batch_wait_s)

    def _probabilities(self, records: list[PostRecord]) -> Probabilities:
        # one model call for a whole micro-batch: a request's rows (a post and its occlusions) are never cut
        return self.predictor.probabilities(records, batch_size=None)

    async def __call__(self, request: Request, force_explain: bool) -> dict[str, Any]:
        """The answer to one request (``PredictResponse``); with ``force_explain`` always with an explanation."""
        return await self.answer(await self.post(request), force_explain)

    async def post(self, request: Request) -> RequestPost:
        """Request -> post: the body parsed and checked against the limits, the photo turned into its vector,
        the post made one record (:meth:`Predictor.records`; invalid: the client's 422)."""
        body, photo = await parse(request, self.limits)
        check_limits(body, self.limits)
        status = {"received": photo is not None, "used": False, "message": ""}
        vector = None
        if photo is not None:
            image_dim = self.predictor.model.inputs_used.image_dim
            vector, status["message"] = await _photo_vector(photo, self.limits, self.image, self.photos, image_dim)
            status["used"] = vector is not None
        try:
            record = self.predictor.records([{"id": "request", "text": body.text, "hashtags": body.hashtags}])[0]
        except Exception as error:  # noqa: BLE001 - PostlocError from validation: the client's input
            raise ApiError(422, str(error).replace("<predict>:1: ", "")) from None
        record[IMAGE_COLUMN] = vector  # checked against the model's length by _photo_vector
        return RequestPost(body, record, status)

    async def answer(self, post: RequestPost, force_explain: bool = False) -> dict[str, Any]:
        """Post -> answer: the record (and its occlusion variants, for an explanation) through the micro-batched
        :meth:`Predictor.probabilities`, ranked and decided by :meth:`Predictor.answer`."""
        body, record = post.body, post.record
        explain = force_explain or body.explain
        _, variants, _ = occlusions(record) if explain else ([], [], False)
        probabilities = await self.batcher([record, *variants])
        result: dict[str, Any] = {
            **self.predictor.answer(probabilities, 0, body.top_k, body.min_confidence),
            "hashtags_used": list(record["hashtags"]),
            "image": post.image,
            "explanation": None,
        }
        if explain:
            explanation = explain_record(self.predictor, record, lambda _records: probabilities.matrix)
            explanation.ignored_hashtags = ignored_hashtags(
                body.hashtags, body.text, record["hashtags"], self.predictor.names
            )
            result["explanation"] = explanation.to_dict()
        return result


def check_limits(body: PredictRequest, limits: Limits) -> None:
    """The body's sizes and text against the server's limits (422s), before any work is done."""
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


#: the request body in the OpenAPI document: the handlers parse bodies themselves (JSON and multipart
#: in one route), so it is written by hand
OPENAPI_BODY: dict[str, Any] = {
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


def add_answer_routes(app: FastAPI, answerer: Answerer) -> None:
    """``POST /v1/predict`` and ``POST /v1/explain``, answered by ``answerer``."""
    errors: dict[int | str, dict[str, Any]] = {code: {"model": Error} for code in (400, 413, 415, 422, 429)}

    # both routes take the same body and give the same answer (explain adds the occlusion maps).
    # exclude_unset: ``source`` appears only when the server matches names (``--pois``); every other field is
    # always set by the answerer, so responses without names stay as they were
    route: dict[str, Any] = {
        "response_model": PredictResponse,
        "response_model_exclude_unset": True,
        "openapi_extra": OPENAPI_BODY,
        "responses": errors,
    }

    @app.post("/v1/predict", **route)
    async def predict(request: Request):
        """Top-k POIs for one post (JSON, or multipart/form-data with a `photo` upload)."""
        return await answerer(request, force_explain=False)

    @app.post("/v1/explain", **route)
    async def explain(request: Request):
        """Like /v1/predict, always with the occlusion explanation."""
        return await answerer(request, force_explain=True)
