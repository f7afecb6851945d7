"""Drift: a shifted sample drifts by both tests, an unshifted one does not; PSI on the edges of its bins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgewise.ml.drift import DriftError, compare, ks, psi

RNG = np.random.default_rng(11)
REFERENCE = RNG.normal(0.0, 1.0, 2000)
SAME = RNG.normal(0.0, 1.0, 1000)
SHIFTED = RNG.normal(1.0, 1.0, 1000)


def test_a_shifted_feature_drifts_and_an_unshifted_one_does_not() -> None:
    report = compare(
        {"temp": REFERENCE.tolist(), "pressure": REFERENCE.tolist(), "__score__": REFERENCE.tolist()},
        {"temp": SHIFTED.tolist(), "pressure": SAME.tolist(), "__score__": [float("nan")] * 3},
    )

    rows = {row.feature: row for row in report.features}
    assert report.drifted
    assert report.drifted_features == ("temp",)
    assert rows["temp"].drifted
    assert rows["temp"].psi > 0.2
    assert rows["temp"].p_value < 1e-10
    assert not rows["pressure"].drifted
    assert rows["pressure"].psi < 0.05
    assert rows["pressure"].p_value > 0.01
    assert (rows["temp"].reference_count, rows["temp"].current_count) == (2000, 1000)
    assert report.missing == ("__score__",)
    document = json.loads(json.dumps(report.to_json()))
    assert document["drifted"] is True
    assert document["driftedFeatures"] == ["temp"]
    assert document["features"][0] == {
        "feature": "temp",
        "psi": rows["temp"].psi,
        "ksStatistic": rows["temp"].ks_statistic,
        "pValue": rows["temp"].p_value,
        "drifted": True,
        "referenceCount": 2000,
        "currentCount": 1000,
    }


def test_a_feature_drifts_only_when_both_tests_agree() -> None:
    # A tiny shift over many values: KS calls it significant, PSI says it is small.
    many = RNG.normal(0.0, 1.0, 20_000)
    nudged = RNG.normal(0.08, 1.0, 20_000)

    (row,) = compare({"x": many.tolist()}, {"x": nudged.tolist()}).features

    assert row.p_value < 0.01
    assert row.psi < 0.2
    assert not row.drifted
    assert compare({"x": many.tolist()}, {"x": nudged.tolist()}, psi_threshold=0.001).features[0].drifted


def test_psi_is_zero_for_the_same_sample_and_finite_with_empty_bins() -> None:
    assert psi(REFERENCE, REFERENCE) == pytest.approx(0.0, abs=1e-12)
    far = psi(REFERENCE, REFERENCE + 100)  # every current value in the top bin
    assert np.isfinite(far)
    assert far > 5
    # A constant reference still sees values below and above it.
    assert psi([3.0] * 50, [2.0] * 50) > 5
    assert psi([3.0] * 50, [4.0] * 50) > 5
    assert psi([3.0] * 50, [3.0] * 9) == 0


def test_ks_gives_the_statistic_and_p_value() -> None:
    statistic, p_value = ks(REFERENCE, SHIFTED)

    assert 0.3 < statistic < 0.5
    assert p_value < 1e-10
    assert ks([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)


def test_values_that_cannot_be_compared_are_drift_errors() -> None:
    with pytest.raises(DriftError, match="current: needs at least one value"):
        psi([1.0], [float("nan")])
    with pytest.raises(DriftError, match=r"reference\['x'\]: holds an infinite value"):
        compare({"x": [1.0, float("inf")]}, {"x": [1.0]})
    with pytest.raises(DriftError, match="p_value: must be between 0 and 1"):
        compare({}, {}, p_value=1.5)
    with pytest.raises(DriftError, match="bins: must be at least 2"):
        psi([1.0], [1.0], bins=1)
