#!/usr/bin/env bash
# Golden comparison: does a change keep postloc's outputs? Runs the same pipeline on the embedded Dresden
# data with two commits' code and compares what they wrote (golden_compare.py).
#
#   bash tests/reliability/golden.sh OLD_REV [NEW_REV]      (NEW_REV defaults to the working tree)
#
# The pipeline: prepare dresden; train tfidf-logreg and stack; evaluate; predict 300 posts (plain,
# --min-confidence 0.4, tfidf --top-k 3); explain --json; the HTTP API (/v1/predict, /v1/explain, /v1/pois,
# /v1/config, /v1/about); crossval tfidf-logreg + majority on 3 folds; quickstart dresden --quick --no-serve.
# Each side runs in the same scratch path, so paths written into the outputs match. Uses the repository's
# .venv (its installed dependencies) with each side's src/ first on PYTHONPATH. A few minutes a side.
set -euo pipefail
ROOT=$(git rev-parse --show-toplevel)
PY=${PY:-$ROOT/.venv/bin/python}
OLD=${1:?usage: bash tests/reliability/golden.sh OLD_REV [NEW_REV]   (make golden OLD=REV [NEW=REV])}
NEW=${2:-}
SCRATCH=$(mktemp -d -t postloc-golden-XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$SCRATCH/src-old" >/dev/null 2>&1 || true;
      [ -n "$NEW" ] && git -C "$ROOT" worktree remove --force "$SCRATCH/src-new" >/dev/null 2>&1 || true' EXIT

pipeline() {  # pipeline SRC NAME
  local src=$1 name=$2 work=$SCRATCH/work
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  export PYTHONPATH=$src/src
  local P="$PY -m postloc"
  $P prepare dresden --out prepared --quiet > prepare.log 2>&1
  $P train --model tfidf-logreg --data prepared --out tfidf > train-tfidf.log 2>&1
  $P train --data prepared --out stack > train-stack.log 2>&1
  $P evaluate stack --split test > eval-stack.txt 2>&1
  "$PY" - <<'PY'
import json
import pandas as pd
posts = pd.read_parquet("prepared/posts.parquet").head(300)
with open("in.jsonl", "w") as f:
    for r in posts.to_dict("records"):
        tags = r.get("hashtags")
        f.write(json.dumps({"id": str(r["id"]), "text": r.get("text") or "",
                            "hashtags": list(tags) if tags is not None else [], "user": str(r.get("user") or "")}) + "\n")
PY
  $P predict stack in.jsonl -o pred-stack.jsonl --quiet > /dev/null
  $P predict stack in.jsonl -o pred-stack-minconf.jsonl --min-confidence 0.4 --quiet > /dev/null
  $P predict tfidf in.jsonl -o pred-tfidf.jsonl --quiet --top-k 3 > /dev/null
  $P explain stack --text "Blick auf die Frauenkirche am Neumarkt" --hashtags "frauenkirche dresden" --json > explain.json
  "$PY" - <<'PY' > http.json 2> /dev/null
import json
from pathlib import Path
from fastapi.testclient import TestClient
from postloc.serve.app import build_app
c = TestClient(build_app(Path("stack")), base_url="http://127.0.0.1")
out = {
    "predict": c.post("/v1/predict", json={"text": "Zwinger und Semperoper", "hashtags": ["zwinger"]}).json(),
    "predict_min": c.post("/v1/predict", json={"text": "hallo", "hashtags": [], "min_confidence": 0.9}).json(),
    "explain": c.post("/v1/explain", json={"text": "Elbe Blick", "hashtags": ["elbe"]}).json(),
    "pois": c.get("/v1/pois").json(), "config": c.get("/v1/config").json(), "about": c.get("/v1/about").json(),
}
print(json.dumps(out, indent=1, sort_keys=True))
PY
  $P crossval prepared --model tfidf-logreg --also majority --folds 3 --out cv --quiet > cv.log 2>&1
  $P quickstart dresden --out qs --no-serve --quick --quiet > qs.log 2>&1
  # the embedded data's path lies inside each side's source tree: one name for both
  find "$work" -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.html' -o -name '*.log' \
    -o -name '*.txt' -o -name '*.csv' \) -exec sed -i "s|$src/src|<SRC>|g" {} +
  cd "$ROOT" && mv "$work" "$SCRATCH/$name"
}

git -C "$ROOT" worktree add --detach -f "$SCRATCH/src-old" "$OLD" > /dev/null 2>&1
if [ -n "$NEW" ]; then
  git -C "$ROOT" worktree add --detach -f "$SCRATCH/src-new" "$NEW" > /dev/null 2>&1
  NEW_SRC=$SCRATCH/src-new
else
  NEW_SRC=$ROOT
fi
echo "old: $OLD; new: ${NEW:-working tree}; scratch: $SCRATCH"
pipeline "$SCRATCH/src-old" old
pipeline "$NEW_SRC" new
"$PY" "$ROOT/tests/reliability/golden_compare.py" "$SCRATCH/old" "$SCRATCH/new"
