"""Cold start: how well are POIs with no training posts found by their names? (leave POIs out, SYNTHETIC data)

    python studies/cold_start/cold_start.py [--pois 16] [--posts-per-poi 60] [--leave-out 4] [--seeds 5]

Makes a SYNTHETIC data set with named POIs (``postloc.datasets.synthetic``, no images, to stay
fast), prepares it (labels as POIs, user-disjoint splits), then per seed leaves ``--leave-out`` POIs
out: tfidf-logreg is trained on the train posts of the other POIs (temperature fitted on their val
posts, as ``postloc train`` does), and the test posts of all POIs are predicted with a gazetteer
holding every POI's name and centre. Reported, on test posts of the *unseen* POIs (accuracy among
all POIs): chance, a plain name-substring baseline, the model alone (which cannot name them) and
the model blended with names (:mod:`postloc.inference.names`) at several name weights; and on test
posts of the *known* POIs what the names cost or add there.

Two caption variants: ``as generated`` (every synthetic caption writes its POI's name verbatim,
which makes the task easy) and ``names cut from captions`` (the name is removed from every caption,
so only hashtags, some squashed like ``#harbortower``, some with typos, can name the place).

Writes ``studies/cold_start/results/cold-start.{json,md}``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # _common: the machine and the results files
from _common import machine, write_results  # noqa: E402

WEIGHTS = (0.3, 0.5, 0.7)


def substring_baseline(text: str, hashtags: list[str], names: list[tuple[str, str, str]]) -> str | None:
    """The POI whose folded name is a substring of the folded caption, or whose squashed name is one of a
    folded hashtag; the longest such name wins (the first in table order on ties); None without any."""
    from postloc.text.names import fold

    caption = fold(text)
    tags = [fold(t).replace(" ", "") for t in hashtags]
    best: tuple[int, str] | None = None
    for poi, folded, squashed in names:
        if (folded in caption or any(squashed in t for t in tags)) and (best is None or len(folded) > best[0]):
            best = (len(folded), poi)
    return None if best is None else best[1]


def cut_names(posts: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Every caption without its POI's name (case-insensitive): "Finally made it to the place!"."""
    texts = [
        re.sub(re.escape(names[str(poi)]), "the place", str(text), flags=re.IGNORECASE)
        for text, poi in zip(posts["text"], posts["poi"], strict=True)
    ]
    return posts.assign(text=texts)


def run_seed(prepared: Any, posts: pd.DataFrame, seed: int, leave_out: int) -> dict[str, Any]:
    from postloc.data.gazetteer import places_from_records
    from postloc.inference.predictor import Predictor
    from postloc.models.registry import create_model
    from postloc.text.names import fold, squash
    from postloc.training.api import data_info, fit_calibration

    info = data_info(prepared)
    all_pois = [p["poi"] for p in info["pois"]]
    rng = np.random.default_rng(seed)
    unseen = sorted(str(p) for p in rng.choice(np.array(all_pois, dtype=object), size=leave_out, replace=False))
    known = [p for p in all_pois if p not in unseen]
    train = posts[(posts["split"] == "train") & posts["poi"].isin(known)].reset_index(drop=True)
    val = posts[(posts["split"] == "val") & posts["poi"].isin(known)].reset_index(drop=True)
    test = posts[posts["split"] == "test"].reset_index(drop=True)
    started = time.perf_counter()
    model = create_model("tfidf-logreg", {}, None)
    model.fit(train, val, classes=known)
    temperature = fit_calibration(model, val)["temperature"]
    fit_seconds = time.perf_counter() - started
    known_pois = [p for p in info["pois"] if p["poi"] in set(known)]
    gazetteer = places_from_records(info["pois"], "all POIs of the prepared set")
    records = [
        {"id": str(i), "text": t, "hashtags": list(h)}
        for i, (t, h) in enumerate(zip(test["text"], test["hashtags"], strict=True))
    ]
    truth = test["poi"].astype(str).to_numpy()
    is_unseen = np.isin(truth, unseen)

    plain = Predictor(model, known_pois, info["hashtag_vocabulary"], temperature)
    top_model = np.array([a["poi"] for a in plain.answers(records, top_k=1)], dtype=object)
    outcome: dict[str, Any] = {
        "seed": seed,
        "unseen_pois": unseen,
        "train_posts": len(train),
        "test_posts_unseen": int(is_unseen.sum()),
        "test_posts_known": int((~is_unseen).sum()),
        "fit_seconds": round(fit_seconds, 2),
        "model": _accuracies(top_model, truth, is_unseen),
    }
    names = [(p["poi"], fold(p["name"]), squash(p["name"])) for p in info["pois"]]
    baseline = np.array([substring_baseline(r["text"], r["hashtags"], names) for r in records], dtype=object)
    outcome["substring"] = _accuracies(baseline, truth, is_unseen)
    outcome["substring"]["no_match_share_unseen"] = float(np.mean([b is None for b in baseline[is_unseen]]))
    for weight in WEIGHTS:
        blended = Predictor(model, known_pois, info["hashtag_vocabulary"], temperature)
        blended.use_names(gazetteer, weight)
        answers = blended.answers(records, top_k=1)
        top = np.array([a["poi"] for a in answers], dtype=object)
        result = _accuracies(top, truth, is_unseen)
        sources = np.array([a["source"] for a in answers], dtype=object)
        result["answered_by_names_only_unseen"] = float(np.mean(sources[is_unseen] == "names"))
        result["answered_by_names_only_known"] = float(np.mean(sources[~is_unseen] == "names"))
        outcome[f"blend_w{weight}"] = result
    return outcome


def _accuracies(predicted: np.ndarray, truth: np.ndarray, is_unseen: np.ndarray) -> dict[str, float]:
    hit = predicted == truth
    return {"unseen": float(hit[is_unseen].mean()), "known": float(hit[~is_unseen].mean())}


def main() -> None:
    from postloc.data.prepare import PrepareConfig
    from postloc.data.prepare.run import prepare
    from postloc.data.prepared import load_prepared
    from postloc.datasets.synthetic import SyntheticPostsConfig, generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pois", type=int, default=16)
    parser.add_argument("--posts-per-poi", type=int, default=60)
    parser.add_argument("--leave-out", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="postloc-cold-start-") as tmp:
        synth = SyntheticPostsConfig(pois=args.pois, posts_per_poi=args.posts_per_poi, missing_image_rate=1.0, seed=0)
        generate(Path(tmp) / "synth", synth)
        config = PrepareConfig(min_hashtag_count=5, min_poi_posts=20, languages=())
        prepare(Path(tmp) / "synth" / "posts.jsonl", Path(tmp) / "prepared", config)
        prepared = load_prepared(Path(tmp) / "prepared")
        posts = prepared.posts.assign(poi=prepared.posts["poi"].astype(str))
        names = {str(p): str(n) for p, n in zip(prepared.pois["poi"], prepared.pois["name"], strict=True)}
        variants = {"as generated": posts, "names cut from captions": cut_names(posts, names)}
        results = {
            label: [run_seed(prepared, frame, seed, args.leave_out) for seed in range(args.seeds)]
            for label, frame in variants.items()
        }
        n_pois = len(prepared.pois)
    seconds = time.perf_counter() - started
    summary = {label: _summarise(runs) for label, runs in results.items()}
    command = (
        f"python studies/cold_start/cold_start.py --pois {args.pois} --posts-per-poi {args.posts_per_poi} "
        f"--leave-out {args.leave_out} --seeds {args.seeds}"
    )
    payload = {
        "synthetic": True,
        "data": "SYNTHETIC (postloc.datasets.synthetic, seed 0, no images); captions and hashtags made up",
        "command": command,
        "pois": n_pois,
        "leave_out": args.leave_out,
        "seeds": args.seeds,
        "chance": 1.0 / n_pois,
        "model": "tfidf-logreg (temperature fitted on the known POIs' val posts)",
        "summary": summary,
        "runs": results,
        "seconds": round(seconds, 1),
        "machine": machine(),
    }
    path, md = write_results("cold-start", payload, _markdown(payload), folder=HERE / "results")
    print(f"wrote {path} and {md} in {seconds:.0f} s")


def _summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    methods = ["model", "substring"] + [f"blend_w{w}" for w in WEIGHTS]
    out = {}
    for method in methods:
        out[method] = {
            key: float(np.mean([r[method][key] for r in runs]))
            for key in runs[0][method]
            if isinstance(runs[0][method][key], float)
        }
        out[method]["unseen_std"] = float(np.std([r[method]["unseen"] for r in runs]))
    return out


def _markdown(payload: dict[str, Any]) -> str:
    labels = {
        "model": "model alone (tfidf-logreg, known POIs only)",
        "substring": "plain name substring (longest folded name in caption / squashed in a hashtag)",
        **{f"blend_w{w}": f"model + names, weight {w}" for w in WEIGHTS},
    }
    lines = [
        "# Cold start: POIs without training posts, found by name (SYNTHETIC data)",
        "",
        f"`{payload['command']}` — {payload['seconds']} s on {payload['machine']['cores']} cores "
        f"({payload['machine']['cpu']}, GPU: {payload['machine']['gpu']}, load "
        f"{payload['machine']['load_average_1_5_15']}).",
        "",
        f"SYNTHETIC data: {payload['pois']} invented POIs with invented names; per seed "
        f"{payload['leave_out']} POIs are left out of training ({payload['seeds']} seeds). Accuracy is "
        f"top-1 among all {payload['pois']} POIs; chance is {payload['chance']:.3f}. Mean over seeds "
        "(± std of the unseen accuracy).",
        "",
    ]
    for label, summary in payload["summary"].items():
        lines += [
            f"## Captions {label}",
            "",
            "| method | unseen POIs' test posts | known POIs' test posts |",
            "|---|---:|---:|",
            f"| chance | {payload['chance']:.3f} | {payload['chance']:.3f} |",
        ]
        for method, row in summary.items():
            lines.append(f"| {labels[method]} | {row['unseen']:.3f} ± {row['unseen_std']:.3f} | {row['known']:.3f} |")
        lines.append("")
    lines += [
        'Every synthetic caption writes its POI\'s name verbatim ("Finally made it to Harbor Tower!"), and '
        "most posts carry the squashed name as a hashtag: on *captions as generated* the task is easy and "
        "the numbers are an upper bound. *Names cut from captions* leaves only hashtags to name a place.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
