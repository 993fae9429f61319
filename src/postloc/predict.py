"""The README's prediction API, kept at its documented path: ``postloc.predict.load(run).predict(posts)``.

The implementation lives in :mod:`postloc.inference.predictor`.
"""

from postloc.inference.predictor import Predictor, load

__all__ = ["Predictor", "load"]
