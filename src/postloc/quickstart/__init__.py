"""``postloc quickstart``: raw posts to a scored, reported, servable model in one resumable call.

:func:`quickstart` runs prepare, images, cross-validated scoring, training and the HTML report
with settings chosen from the data (:mod:`postloc.quickstart.choices`); the CLI then serves the run.
"""

from postloc.quickstart.run import QuickstartConfig, QuickstartResult, quickstart

__all__ = ["QuickstartConfig", "QuickstartResult", "quickstart"]
