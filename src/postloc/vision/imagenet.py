"""ImageNet-1k class names (for checking a backbone's top-1 on real photos), from the packaged asset."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def class_names() -> list[str]:
    """The 1000 names in the standard index order (first synonym of each line)."""
    text = resources.files("postloc.vision").joinpath("assets/imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.split(",")[0].strip() for line in text.splitlines() if line.strip()]
