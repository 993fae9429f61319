"""Shared by the serve/predict/explain tests: one small trained run per test session.

Kept in a module (not conftest.py) and cached at module level, so every test file that imports it
reuses the same run instead of training its own.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from tiny_models import EASY_DATA, SMALL

_CACHE: dict[str, object] = {}

#: the easy data with hashtags carrying most of the signal (the served run's)
HASHTAG_DATA = {**EASY_DATA, "text_signal": 0.2, "tag_signal": 0.9}


def small_run(tmp_path_factory) -> Path:
    """A run trained on synthetic data where hashtags carry most of the signal (image_dim 8)."""
    if "run" not in _CACHE:
        from postloc.datasets.synthetic_features import SyntheticFeaturesConfig, write_synthetic_prepared
        from postloc.training import RunConfig, TrainerConfig, train

        base = tmp_path_factory.mktemp("serve-run")
        prepared = write_synthetic_prepared(
            base / "prepared",
            SyntheticFeaturesConfig(**HASHTAG_DATA, n_posts=400, n_users=40, seed=5),
        )
        config = RunConfig("mrlf", dict(SMALL), TrainerConfig(epochs=8, batch_size=32, progress=False, threads=1))
        train(prepared, base / "run", config)
        _CACHE["run"] = base / "run"
    return _CACHE["run"]  # type: ignore[return-value]


def decisive_tag(run: Path) -> tuple[str, str]:
    """(hashtag, poi): a kept hashtag that in training almost always means one POI."""
    import pandas as pd

    from postloc.inference.predictor import load

    vocab = load(run).hashtag_vocabulary or set()
    posts = pd.read_parquet(run.parent / "prepared" / "posts.parquet")
    by_tag: dict[str, Counter] = {}
    for tags, poi in zip(posts["hashtags"], posts["poi"], strict=True):
        for t in tags:
            by_tag.setdefault(t, Counter())[poi] += 1
    scored = [
        (c.most_common(1)[0][1] / sum(c.values()), sum(c.values()), t, c.most_common(1)[0][0])
        for t, c in by_tag.items()
        if t in vocab and sum(c.values()) >= 10
    ]
    purity, _, tag, poi = max(scored)
    assert purity > 0.8, scored[:5]
    return tag, str(poi)


def png_bytes(size: tuple[int, int] = (32, 24), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def mean_colour_featurizer(dim: int = 8):
    """A stand-in for a backbone: the photo's mean colour repeated to ``dim`` numbers."""
    from postloc.inference.images import FeaturizerInfo

    def featurize(image) -> np.ndarray:
        mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0) / 255.0
        return np.resize(mean, dim).astype(np.float32)

    return FeaturizerInfo(featurize, "test featurizer (mean colour)", "test")


def worst_loop_gap(app, requests, base_url: str = "http://localhost"):
    """Run ``requests(client)`` (awaitables) against ``app`` in-process; the longest the event loop went unserved.

    A ticker sleeps 2 ms at a time beside the requests: a handler that blocks the loop shows as a long gap.
    Returns ``(worst gap in seconds, responses)``.
    """
    import asyncio
    import time

    import httpx

    async def scenario():
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker():
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.002)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
            answers = await asyncio.gather(*requests(client))
        stop.set()
        await tick
        return max(gaps), answers

    return asyncio.run(scenario())
