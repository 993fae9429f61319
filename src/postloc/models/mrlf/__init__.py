"""MRLF (Dai et al., ICC 2023): configuration, layers, network, input encoding and the estimator.

``MRLF`` is imported on first use (PEP 562): reading the configuration (``FUSIONS``,
``MRLFConfig``, e.g. for ``postloc --help`` or the experiments' method table) must not load torch.
"""

from typing import Any

from postloc.models.mrlf.config import FUSIONS, MRLFConfig

__all__ = ["FUSIONS", "MRLF", "MRLFConfig"]


def __getattr__(name: str) -> Any:
    if name == "MRLF":
        from postloc.models.mrlf.estimator import MRLF

        return MRLF
    raise AttributeError(f"module 'postloc.models.mrlf' has no attribute {name!r}")
