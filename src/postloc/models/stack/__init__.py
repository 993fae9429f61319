"""``stack``: per-modality logistic regressions, user-weighted, combined by weights fitted out of fold.

See :mod:`postloc.models.stack.estimator`; importing this package imports neither torch nor
scikit-learn: they load when a model is fitted, saved or loaded (tests/models/test_models_stack.py checks it).
"""

from postloc.models.stack.estimator import Stack, StackConfig

__all__ = ["Stack", "StackConfig"]
