"""Metrics on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from postloc import metrics
from postloc.data.pois import EARTH_RADIUS_KM


@pytest.mark.parametrize(
    "a, b, km",
    [
        ((51.5074, -0.1278), (48.8566, 2.3522), 343.6),  # London - Paris
        ((40.7128, -74.0060), (34.0522, -118.2437), 3935.7),  # New York - Los Angeles
        ((-37.8136, 144.9631), (-33.8688, 151.2093), 713.4),  # Melbourne - Sydney
        ((22.3193, 114.1694), (22.3193, 114.1694), 0.0),
    ],
)
def test_haversine_known_city_pairs(a, b, km):
    assert metrics.haversine_km(*a, *b) == pytest.approx(km, abs=0.5)
    assert metrics.haversine_km(*b, *a) == pytest.approx(km, abs=0.5)


def test_haversine_sphere_geometry_and_vectorisation():
    assert metrics.haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM)
    assert metrics.haversine_km(0, 0, 90, 0) == pytest.approx(math.pi / 2 * EARTH_RADIUS_KM)
    out = metrics.haversine_km([0, 0, np.nan], [0, 0, 0], [0, 1, 0], [1, 0, 0])
    assert out[0] == pytest.approx(out[1]) == pytest.approx(2 * math.pi * EARTH_RADIUS_KM / 360)
    assert np.isnan(out[2])


def test_accuracy_and_top_k():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    y = np.array([0, 0, 2, 1])
    assert metrics.accuracy(y, proba.argmax(axis=1)) == 0.5
    assert metrics.top_k_accuracy(y, proba, 1) == 0.5
    assert metrics.top_k_accuracy(y, proba, 2) == 0.5  # post 1: truth 0 is last; post 2: truth 2 is last
    assert metrics.top_k_accuracy(y, proba, 3) == 1.0
    assert metrics.top_k_accuracy(y, proba, 10) == 1.0  # k larger than the class count
    # ties are broken by class index, deterministically
    assert metrics.top_k_indices(np.array([[0.25, 0.25, 0.5]]), 2).tolist() == [[2, 0]]


def test_macro_f1_hand_computed():
    y_true = [0, 0, 1, 1]
    y_pred = [0, 1, 1, 1]
    # class 0: P=1, R=0.5, F1=2/3; class 1: P=2/3, R=1, F1=0.8
    assert metrics.macro_f1(y_true, y_pred, 2) == pytest.approx((2 / 3 + 0.8) / 2)


def test_distance_reference_wording():
    assert metrics.distance_reference(np.array([True, True])) == "post coordinates"
    assert metrics.distance_reference(np.array([False])) == "POI centre"
    assert metrics.distance_reference(np.array([True, False, False])) == "mixed (1 post / 2 centre)"


def _case():
    pois = pd.DataFrame(
        {"poi": ["a", "b", "c"], "lat": [0.0, 0.0, 0.0], "lon": [0.0, 0.01, 0.02], "name": ["Alpha", "Beta", "Gamma"]}
    )
    posts = pd.DataFrame(
        {
            "poi": ["a", "a", "b", "c"],
            "lat": [0.0, np.nan, 0.0, np.nan],  # posts 1 and 3 fall back to their POI centre
            "lon": [0.0, np.nan, 0.011, np.nan],
        }
    )
    proba = np.array(
        [
            [0.7, 0.2, 0.1],  # a, correct
            [0.1, 0.6, 0.3],  # a -> b (centre to centre: 0.01 deg of longitude)
            [0.2, 0.5, 0.3],  # b, correct; post lies 0.001 deg east of b's centre
            [0.5, 0.1, 0.4],  # c -> a: 0.02 deg
        ]
    )
    return proba, posts, pois


def test_evaluate_report_hand_computed():
    proba, posts, pois = _case()
    report = metrics.evaluate(proba, ["a", "b", "c"], posts, pois)
    deg = 2 * math.pi * EARTH_RADIUS_KM / 360  # km per degree of longitude at the equator
    errors = [0.0, 0.01 * deg, 0.001 * deg, 0.02 * deg]
    assert report["accuracy"] == 0.5
    assert report["acc@3"] == 1.0
    assert report["acc@5"] == 1.0
    assert report["mean_km"] == pytest.approx(np.mean(errors), rel=1e-6)
    assert report["median_km"] == pytest.approx(np.median(errors), rel=1e-6)  # mean of 0.111 and 1.112 km
    assert report["acc@1km"] == pytest.approx(0.5)  # 0 km and 0.11 km; 1.11 and 2.22 km are beyond
    assert report["distance_reference"] == "mixed (2 post / 2 centre)"
    assert report["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    rows = {r["poi"]: r for r in report["per_poi"]}
    assert rows["a"]["support"] == 2 and rows["a"]["predicted"] == 2 and rows["a"]["recall"] == 0.5
    assert rows["a"]["name"] == "Alpha"
    assert rows["c"]["f1"] == 0.0
    json.dumps(report, allow_nan=False)  # strict JSON


def test_evaluate_unknown_truth_counts_as_wrong():
    proba, posts, pois = _case()
    posts = posts.assign(poi=["a", "a", "b", "zzz"])
    report = metrics.evaluate(proba, ["a", "b", "c"], posts, pois)
    assert report["unknown_truth"] == 1
    assert report["accuracy"] == 0.5


def test_write_report_outputs(tmp_path):
    proba, posts, pois = _case()
    report = metrics.evaluate(proba, ["a", "b", "c"], posts, pois)
    paths = metrics.write_report(report, tmp_path, "eval-test", "hand case")
    assert json.loads(paths["json"].read_text())["accuracy"] == 0.5
    text = paths["md"].read_text()
    assert "mixed (2 post / 2 centre)" in text and "| a | Alpha |" in text
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(paths["csv"]).shape[0] == 3


def test_ece_hand_computed():
    from postloc.metrics import expected_calibration_error, reliability_bins

    # two posts at confidence 0.9 (one right), two at 0.6 (both right): |0.5-0.9|*2/4 + |1-0.6|*2/4 = 0.4
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    truth = np.array([0, 1, 1, 1])
    assert expected_calibration_error(truth, proba, bins=10) == pytest.approx(0.4)
    table = reliability_bins(truth, proba, bins=10)
    assert table["posts"].sum() == 4
    assert table.loc[8, "accuracy"] == pytest.approx(0.5)  # bin (0.8, 0.9]
    assert table.loc[5, "accuracy"] == pytest.approx(1.0)  # bin (0.5, 0.6]
    # a perfectly calibrated pair: confidence 1.0, always right
    assert expected_calibration_error(np.array([0, 1]), np.eye(2)) == pytest.approx(0.0)


def test_accuracy_at_coverage_keeps_the_most_confident():
    from postloc.metrics import accuracy_at_coverage, coverage_curve

    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    truth = np.array([0, 0, 1, 1])  # the two confident posts are right, the two doubtful ones wrong
    assert accuracy_at_coverage(truth, proba, 0.5) == pytest.approx(1.0)
    assert accuracy_at_coverage(truth, proba, 1.0) == pytest.approx(0.5)
    assert accuracy_at_coverage(truth, proba, 0.75) == pytest.approx(2 / 3)
    curve = coverage_curve(truth, proba, points=4)
    assert curve["accuracy"].tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.5])
