"""Prediction API: ``postloc.inference.predictor.load(run_dir).predict(posts, top_k=5)``.

Posts arrive raw (exchange-format dicts, :class:`postloc.data.schema.Post` objects, or a
DataFrame) and are normalised exactly as ``postloc prepare`` normalises training posts: NFKC
text, hashtags taken from the caption when the post lists none, lowercased and deduplicated,
then restricted to the prepared hashtag vocabulary (rare tags were removed from training
posts, so they must not reach the model at prediction time either).

An image enters as a precomputed feature vector (``image_vector`` key of a dict, of
``Post.extra``, or a DataFrame column) until the image pipeline computes them from files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from postloc.data.image_features import IMAGE_COLUMN
from postloc.data.schema import Post
from postloc.errors import BadInputError, PostlocError
from postloc.metrics import top_k_indices
from postloc.text.hashtags import post_hashtags
from postloc.text.normalize import normalize_text


class Predictor:
    """A loaded model plus the POI table and hashtag vocabulary of the data it was trained on."""

    def __init__(
        self,
        model: Any,
        pois: Sequence[Mapping[str, Any]] | None = None,
        hashtag_vocabulary: Iterable[str] | None = None,
    ):
        self.model = model
        table = {str(p["poi"]): p for p in (pois or [])}
        self.pois = [table.get(c, {"poi": c, "name": "", "lat": None, "lon": None}) for c in model.classes_]
        self.hashtag_vocabulary = None if hashtag_vocabulary is None else set(hashtag_vocabulary)

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes_)

    def predict(self, posts: Any, top_k: int = 5, batch_size: int = 256) -> list[list[dict[str, Any]]]:
        """Per post, the ``top_k`` POIs as ``{poi, name, probability, lat, lon}``, most probable first."""
        proba = self.predict_proba(posts, batch_size=batch_size)
        results = []
        for row, top in zip(proba, top_k_indices(proba, max(1, top_k)) if len(proba) else [], strict=True):
            results.append(
                [
                    {
                        "poi": self.pois[i]["poi"],
                        "name": self.pois[i].get("name") or "",
                        "probability": float(row[i]),
                        "lat": self.pois[i].get("lat"),
                        "lon": self.pois[i].get("lon"),
                    }
                    for i in top
                ]
            )
        return results

    def predict_proba(self, posts: Any, batch_size: int = 256) -> np.ndarray:
        """``[n_posts, n_classes]`` probabilities (columns in :attr:`classes` order), computed in batches."""
        import torch

        frame = self.frame(posts)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(frame), batch_size):
                chunks.append(self.model.predict_proba(frame.iloc[start : start + batch_size].reset_index(drop=True)))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.model.classes_)))

    def frame(self, posts: Any) -> pd.DataFrame:
        """Posts as the normalised DataFrame the models read (columns id, text, hashtags, image_vector)."""
        records: list[Any]
        if isinstance(posts, pd.DataFrame):
            records = posts.to_dict(orient="records")
        elif isinstance(posts, (Mapping, Post)):
            records = [posts]
        else:
            records = list(posts)
        rows = [self._row(post, i) for i, post in enumerate(records)]
        return pd.DataFrame(rows, columns=["id", "text", "hashtags", IMAGE_COLUMN])

    def _row(self, post: Any, position: int) -> dict[str, Any]:
        if isinstance(post, Post):
            text, tags, vector, post_id = post.text, post.hashtags, post.extra.get(IMAGE_COLUMN), post.id
        elif isinstance(post, Mapping):
            record = dict(post)
            record.setdefault("id", str(position))
            if record.get("id") is None:
                record["id"] = str(position)
            vector = record.pop(IMAGE_COLUMN, None)
            fields = {k: record[k] for k in ("id", "text", "hashtags") if k in record}
            if vector is not None and not (isinstance(vector, float) and np.isnan(vector)):
                fields[IMAGE_COLUMN] = vector  # validated with the post: finite numbers, flat
            if _is_paths(record.get("image")):  # image files are not read yet; kept for validation only
                fields["image"] = record["image"]
            parsed = Post.from_record(fields, source="<predict>", line=position + 1)
            text, tags, post_id, vector = parsed.text, parsed.hashtags, parsed.id, parsed.extra.get(IMAGE_COLUMN)
        else:
            raise PostlocError(
                f"post {position + 1}: expected a dict, a Post or a DataFrame row, got {type(post).__name__}"
            )
        text = normalize_text(text or "")
        tags = post_hashtags(tags, text, self.hashtag_vocabulary)
        if vector is not None and not (isinstance(vector, float) and np.isnan(vector)):
            vector = np.asarray(vector, dtype=np.float32)
            expected = int(getattr(self.model, "image_dim", 0) or 0)
            if vector.ndim != 1 or not np.isfinite(vector).all() or (expected and vector.shape[0] != expected):
                raise BadInputError(
                    f"post {post_id!r}",
                    None,
                    IMAGE_COLUMN,
                    f"must be {expected or 'a list of'} finite numbers (the model's image "
                    f"features), got shape {vector.shape}",
                )
        else:
            vector = None
        return {"id": str(post_id), "text": text, "hashtags": tags, IMAGE_COLUMN: vector}


def load(run_dir: str | Path) -> Predictor:
    """A predictor from a training run folder (uses ``best/``) or from a saved model folder."""
    from postloc.models.base import MODEL_FILE
    from postloc.models.registry import load_model

    run = Path(run_dir)
    model_dir = run / "best" if (run / "best" / MODEL_FILE).exists() else run
    if not (model_dir / MODEL_FILE).exists():
        raise PostlocError(f"{run} holds no trained model (neither best/{MODEL_FILE} nor {MODEL_FILE})")
    model = load_model(model_dir)
    info_path = next((p / "data.json" for p in (model_dir, run) if (p / "data.json").exists()), None)
    info = json.loads(info_path.read_text()) if info_path else {}
    return Predictor(model, info.get("pois"), info.get("hashtag_vocabulary"))


def _is_paths(value: Any) -> bool:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
