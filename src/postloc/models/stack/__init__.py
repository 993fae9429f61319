"""``stack``: per-modality logistic regressions, user-weighted, combined by weights fitted out of fold.

See :mod:`postloc.models.stack.estimator`; importing this package imports scikit-learn only
when a model is fitted.
"""

from postloc.models.stack.estimator import Stack, StackConfig

__all__ = ["Stack", "StackConfig"]
