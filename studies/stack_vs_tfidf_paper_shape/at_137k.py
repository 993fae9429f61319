"""One ``stack`` variant on the 137k SYNTHETIC corpus, trained and scored as bench_stack_scale.py does.

    python studies/stack_vs_tfidf_paper_shape/at_137k.py RUN_DIR ['{"user_weight_power": 0.0}']

Trains ``stack`` with the given params (JSON; default: none) on the prepared folder
``benchmarks/bench_stack_scale.py --grid 137676x40`` leaves in ``build/bench-stack-scale/``
(``postloc.training.api.train``, what ``postloc train`` runs), evaluates it on the test split
(``postloc evaluate --split test``'s function) and prints one JSON line: seconds, test accuracy,
test mean km, load averages. Checks the 25k ablation's verdict at the paper's size.
"""

from __future__ import annotations

import json
import os
import sys
import time

from postloc.training.api import evaluate, train
from postloc.training.config import RunConfig

PREPARED = "build/bench-stack-scale/137676x40/prepared"


def main() -> None:
    out = sys.argv[1]
    params = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    train(PREPARED, out, RunConfig(model="stack", params=params), progress=False)
    seconds = time.perf_counter() - started
    scores = evaluate(out, "test")
    print(
        json.dumps(
            {
                "synthetic": True,
                "params": params,
                "seconds": round(seconds, 1),
                "test_acc": round(float(scores["accuracy"]), 4),
                "test_mean_km": round(float(scores["mean_km"]), 3),
                "load_before": load,
                "load_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
