"""Pydantic models of the API: what clients send and get back (also the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """A post as JSON. Unknown fields are rejected (422) so that typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field("", description="caption; hashtags in it count when `hashtags` is empty")
    hashtags: list[str] = Field(default_factory=list, description="hashtags, with or without '#'")
    top_k: int = Field(5, ge=1, description="how many POIs to return")
    explain: bool = Field(False, description="also return the occlusion explanation")
    min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="abstain below this calibrated confidence: `poi` is null with a `reason`; "
        "the ranked `predictions` are still returned",
    )


class POI(BaseModel):
    poi: str
    name: str = ""
    lat: float | None = None
    lon: float | None = None


#: where a candidate's probability came from (only when the server matches names, ``postloc serve --pois``)
SOURCE_HELP = (
    "only with a table of POI names (--pois): 'model' (the trained model alone), 'names' (a POI known "
    "by name only, with no training posts: the answer comes from the names the post writes) or "
    "'model+names' (the model blended with a name match)"
)


class POIScore(POI):
    probability: float
    source: str | None = Field(None, description=SOURCE_HELP)


class ImageStatus(BaseModel):
    received: bool = False
    used: bool = False
    message: str = ""


class Contribution(BaseModel):
    kind: str = Field(description="word, hashtag or image")
    token: str
    contribution: float = Field(description="drop of the predicted POI's probability when the part is removed")
    probability_without: float
    top_poi_without: str


class Explanation(BaseModel):
    target_poi: str
    target_name: str = ""
    probability: float
    contributions: list[Contribution]
    ignored_hashtags: list[str] = Field(default_factory=list, description="not in the training vocabulary")
    truncated: bool = False


class PredictResponse(BaseModel):
    poi: str | None = Field(description="the predicted POI; null when the confidence is below `min_confidence`")
    confidence: float = Field(description="calibrated probability of the top POI (the run's temperature applied)")
    reason: str | None = Field(None, description="why `poi` is null")
    source: str | None = Field(None, description="the top candidate's source; " + SOURCE_HELP)
    predictions: list[POIScore] = Field(description="the top-k POIs, most probable first (calibrated probabilities)")
    hashtags_used: list[str] = Field(description="hashtags the model saw after normalisation and vocabulary filter")
    image: ImageStatus
    explanation: Explanation | None = None


class POIList(BaseModel):
    pois: list[POI]


class Health(BaseModel):
    status: str
    model: str
    classes: int
    image: str


class PageConfig(BaseModel):
    tile_url: str | None = None
    tile_attribution: str = ""
    max_body_bytes: int
    max_text_chars: int
    model: str = Field("", description="the loaded model's name")
    inputs: list[str] = Field(
        default_factory=list, description="the parts of a post the loaded model reads: some of text, hashtags, image"
    )
    photo_used: bool = Field(False, description="whether an uploaded photo reaches the model here")
    photo_note: str = Field("", description="how the photo is used, or why it is not")


class ErrorBody(BaseModel):
    code: int
    message: str


class Error(BaseModel):
    error: ErrorBody
