"""MRLF (Dai et al., ICC 2023): configuration, layers, network, input encoding and the estimator."""

from postloc.models.mrlf.config import FUSIONS, MRLFConfig
from postloc.models.mrlf.estimator import MRLF

__all__ = ["FUSIONS", "MRLF", "MRLFConfig"]
