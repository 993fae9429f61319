"""``postloc explain``: which words, hashtags and the photo give a post's location away.

See :mod:`postloc.inference.explain`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from postloc.io.escape import term, term_lines


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explain",
        help="which words, hashtags and the photo give a post's location away",
        description="Occlusion: remove each part of the post and show the drop of the predicted POI's probability.",
    )
    p.add_argument("run_dir", metavar="RUN", type=Path, help="training run folder")
    p.add_argument("--text", default="", help="caption")
    p.add_argument("--hashtags", default="", help="hashtags, space or comma separated")
    p.add_argument("--image", type=Path, help="photo file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run_explain)


def run_explain(args) -> int:
    from postloc.inference.explain import explain, photo_vector
    from postloc.inference.predictor import load

    predictor = load(args.run_dir)
    post: dict[str, Any] = {
        "id": "cli",
        "text": args.text,
        "hashtags": [t for t in re.split(r"[\s,]+", args.hashtags) if t],
    }
    if args.image is not None:
        vector, note = photo_vector(args.run_dir, predictor, args.image)
        if note:
            print(f"note: {term(note)}", file=sys.stderr)
        if vector is not None:
            post["image_vector"] = vector
    result = explain(predictor, post)
    print(json.dumps(result.to_dict(), indent=2) if args.json else term_lines(result.table()))
    return 0
