"""Window features, checked against values worked out by hand on tiny windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgewise.ml.errors import DatasetError
from edgewise.ml.features import FEATURES, WindowSpec, window_features


def test_feature_names_are_field_major_and_fft_expands_to_bands() -> None:
    spec = WindowSpec(size=8, step=4, features=("mean", "fft"), fft_bands=2)

    assert spec.feature_names(["temp", "hum"]) == [
        "temp__mean",
        "temp__fft_band_0",
        "temp__fft_band_1",
        "hum__mean",
        "hum__fft_band_0",
        "hum__fft_band_1",
    ]


def test_statistics_of_a_ramp() -> None:
    spec = WindowSpec(size=4, step=1, features=("mean", "std", "min", "max", "slope"))
    # 1, 2, 3, 4 at 0.5 s apart: slope 1 per sample = 2 per second; population std sqrt(1.25).
    ramp = np.array([[1.0], [2.0], [3.0], [4.0]])

    values = window_features(ramp, spec, interval_s=0.5)

    assert values.tolist() == pytest.approx([2.5, math.sqrt(1.25), 1.0, 4.0, 2.0])


def test_fft_band_energies() -> None:
    spec = WindowSpec(size=4, step=4, features=("fft",), fft_bands=2)
    # x - mean = (-1.5, -0.5, 0.5, 1.5): rfft bins 1 and 2 are -2+2j and -2, so energies 8/4 and 4/4.
    ramp = np.array([[1.0], [2.0], [3.0], [4.0]])
    # An alternating signal has all its energy at the Nyquist bin: (4 * 1)^2 / 4 = 4.
    alternating = np.array([[1.0], [-1.0], [1.0], [-1.0]])

    assert window_features(ramp, spec, 1.0).tolist() == pytest.approx([2.0, 1.0])
    assert window_features(alternating, spec, 1.0).tolist() == pytest.approx([0.0, 4.0])


def test_fft_bands_split_the_non_dc_bins_evenly() -> None:
    spec = WindowSpec(size=8, step=8, features=("fft",), fft_bands=2)
    signal = np.cos(2 * np.pi * np.arange(8) / 8)[:, np.newaxis]  # one cycle: all energy in bin 1 of 1..4

    band_low, band_high = window_features(signal, spec, 1.0)

    assert band_low == pytest.approx(2.0)  # |rfft|[1] = 4, 16 / 8
    assert band_high == pytest.approx(0.0)


def test_missing_samples_are_ignored() -> None:
    spec = WindowSpec(size=4, step=1, features=("mean", "std", "min", "max", "slope"))
    window = np.array([[1.0, np.nan], [np.nan, np.nan], [3.0, 5.0], [5.0, np.nan]])

    values = window_features(window, spec, interval_s=1.0)

    # Field 1: 1, 3, 5 at t = 0, 2, 3 -> mean 3, std sqrt(8/3); slope = cov / var = 6 / (14/3) = 9/7.
    assert values[:5].tolist() == pytest.approx([3.0, math.sqrt(8 / 3), 1.0, 5.0, 9 / 7])
    # Field 2: one sample -> no spread, no slope.
    assert values[5:9].tolist() == [5.0, 0.0, 5.0, 5.0]
    assert math.isnan(values[9])


def test_a_field_with_no_value_gives_nan_features_without_warnings() -> None:
    spec = WindowSpec(size=4, step=1, features=FEATURES, fft_bands=2)
    window = np.array([[1.0, np.nan]] * 4)

    with np.errstate(all="raise"):
        values = window_features(window, spec, 1.0)

    assert values[:7].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert np.isnan(values[7:]).all()


def test_json_round_trip_ignores_other_keys() -> None:
    spec = WindowSpec(size=16, step=4, features=("mean", "fft"), fft_bands=3)
    data = spec.to_json()

    assert data == {"size": 16, "step": 4, "features": ["mean", "fft"], "fftBands": 3}
    assert WindowSpec.from_json({**data, "resampleMs": 1000}) == spec


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"size": 1, "step": 1}, "window.size: 1 is not between 2 and 10000"),
        ({"size": 10_001, "step": 1}, "window.size"),
        ({"size": 4, "step": 0}, "window.step: 0"),
        ({"size": 4, "step": 1, "features": ("median",)}, "window.features: 'median' is not one of"),
        ({"size": 4, "step": 1, "features": ()}, "at least one feature"),
        ({"size": 4, "step": 1, "features": ("mean", "mean")}, "names a feature twice"),
        (
            {"size": 4, "step": 1, "features": ("fft",), "fft_bands": 3},
            "window.fftBands: 3 bands need a window",
        ),
        ({"size": 4, "step": 1, "fft_bands": 0}, "window.fftBands: 0 is not between"),
    ],
)
def test_bad_window_specs_name_the_field(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(DatasetError) as caught:
        WindowSpec(**arguments)  # type: ignore[arg-type]

    assert problem in str(caught.value)


def test_from_json_names_bad_values() -> None:
    with pytest.raises(DatasetError, match=r"window\.size: is required"):
        WindowSpec.from_json({"step": 1})
    with pytest.raises(DatasetError, match=r"window\.step: must be an integer"):
        WindowSpec.from_json({"size": 4, "step": "2"})
    with pytest.raises(DatasetError, match=r"window\.features: must be a list"):
        WindowSpec.from_json({"size": 4, "features": "mean"})


def test_a_window_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(DatasetError, match=r"shape \(3, 1\) is not \(4, fields\)"):
        window_features(np.zeros((3, 1)), WindowSpec(size=4, step=1), 1.0)
