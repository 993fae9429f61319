"""Location models behind one estimator interface (fit / predict_proba / save / load).

``mrlf`` is the paper's multi-modal representation learning framework; ``majority`` and
``tfidf-logreg`` are reference baselines, :mod:`postloc.models.baselines` holds the others.
See :mod:`postloc.models.registry`.
"""

from postloc.models.registry import create_model, describe_models, get_model, list_models, load_model, register

__all__ = ["create_model", "describe_models", "get_model", "list_models", "load_model", "register"]
