"""Past one machine: batch prediction and image features over very large collections with Ray Data.

``postloc predict RUN posts.parquet -o preds/ --engine ray --workers N`` and
``postloc images PREPARED --engine ray --workers N`` run the same per-post and per-image code as
the local commands, but as a streaming Ray Data job: Parquet in, a pool of actors that each load
the model (or the frozen backbone) once, a folder of Parquet files out. See docs/scale-ray.md.

Ray is the optional extra ``pip install 'postloc[ray]'``. Nothing here imports it at import time:
the functions below import it when called, and say how to install it when it is missing.
"""

from __future__ import annotations

from typing import Any

from postloc.scale._ray import INSTALL, RaySettings, require_ray

__all__ = ["INSTALL", "RaySettings", "extract_images_ray", "predict_ray", "require_ray"]


def predict_ray(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Batch prediction on Ray Data; see :func:`postloc.scale.ray_predict.predict_ray`."""
    from postloc.scale.ray_predict import predict_ray as run

    return run(*args, **kwargs)


def extract_images_ray(*args: Any, **kwargs: Any):
    """Image features on Ray Data; see :func:`postloc.scale.ray_features.extract_images_ray`."""
    from postloc.scale.ray_features import extract_images_ray as run

    return run(*args, **kwargs)
