"""``GET /v1/pois``: every POI the served model can predict (with ``--pois``, those known by name too)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from postloc.inference.predictor import Predictor
from postloc.serve.schemas import POI, POIList


def add_pois(app: FastAPI, predictor: Predictor) -> None:
    """The POI list never changes while serving, and with a large ``--pois`` table it is megabytes: built and
    validated once here, not per request on the event loop (100k names cost ~1 s a request)."""
    body = POIList(
        pois=[POI(poi=p["poi"], name=p.get("name") or "", lat=p.get("lat"), lon=p.get("lon")) for p in predictor.pois]
    ).model_dump_json()

    @app.get("/v1/pois", response_model=POIList)
    async def pois():
        """Every POI the model can predict, with its centre."""
        return Response(body, media_type="application/json")
