"""Forecasting as direct regression: the label ``horizon`` steps ahead from the previous ``lags`` values.

Each sample is one window of the series, oldest value first (``<label>__lag_<k>``, k steps before the
window's end, down to ``lag_0``, the latest), plus the requested feature columns at the window's end; its
target is the label ``horizon`` rows later. Windows never cross from one ``thing`` to another, and a window
with a missing value is skipped. The samples are then searched as an ordinary FLAML regression on a time
split (the window's end time), scored by mean absolute error.

Why not FLAML's ``ts_forecast``: its feature engineering (calendar features, lag handling, and learners like
Prophet or ARIMA that keep state) lives in FLAML's Python code, not in the fitted model, so an exported ONNX
model could not run on the device without FLAML. Here the whole input is the window of raw values, which the
device can keep itself, and the model is a plain regressor that converts to ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgewise.ml.errors import TrainingError

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class LagSamples:
    """Forecast samples: inputs, targets, each window's end time (or order) and the input column names."""

    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    times: npt.NDArray[Any] | None
    feature_names: list[str]


def lag_names(label: str, lags: int) -> list[str]:
    """Input column names of the lag window, oldest first."""
    return [f"{label}__lag_{k}" for k in range(lags - 1, -1, -1)]


def lag_samples(
    series: npt.NDArray[np.float64],
    extra: npt.NDArray[np.float64],
    *,
    label: str,
    extra_names: list[str],
    lags: int,
    horizon: int,
    groups: npt.NDArray[Any] | None,
    times: npt.NDArray[Any] | None,
) -> LagSamples:
    """Windows of ``lags`` values of ``series`` (rows already in time order) and the value ``horizon`` later.

    ``extra`` holds the other feature columns (shape rows by len(extra_names)); ``groups`` the thing of each row.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    rows = len(series)
    group_of = np.zeros(rows, dtype=np.int64) if groups is None else np.unique(groups, return_inverse=True)[1]
    inputs: list[npt.NDArray[np.float64]] = []
    targets: list[npt.NDArray[np.float64]] = []
    ends: list[npt.NDArray[np.intp]] = []
    for group in np.unique(group_of):
        members = np.flatnonzero(group_of == group)
        values = series[members]
        count = len(values) - lags - horizon + 1
        if count < 1:
            continue
        windows = sliding_window_view(values, lags)[:count]
        end = np.arange(lags - 1, lags - 1 + count)
        target = values[end + horizon]
        X = np.hstack([windows, extra[members][end]]) if extra.shape[1] else windows
        complete = ~np.isnan(X).any(axis=1) & ~np.isnan(target)
        inputs.append(X[complete])
        targets.append(target[complete])
        ends.append(members[end[complete]])
    if not inputs or sum(len(t) for t in targets) == 0:
        raise TrainingError(
            f"lags: no window of {lags} values followed by a value {horizon} steps later has no gap; "
            "the series is too short or too sparse for this lags/horizon"
        )
    end_rows = np.concatenate(ends)
    order = np.argsort(end_rows, kind="stable")
    return LagSamples(
        X=np.vstack(inputs)[order],
        y=np.concatenate(targets)[order],
        times=None if times is None else times[end_rows[order]],
        feature_names=lag_names(label, lags) + list(extra_names),
    )
