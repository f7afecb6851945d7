"""Window features: the statistics computed over a window of samples, both when a dataset is built in the cloud
and by the inference component on the device, so the model sees identical features on both sides.

numpy only (the device imports it). Missing samples are NaN and every statistic ignores them; a field whose
samples are all missing gives NaN features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edgewise.ml.errors import DatasetError

FEATURES: Final[tuple[str, ...]] = ("mean", "std", "min", "max", "slope", "fft")
DEFAULT_FEATURES: Final[tuple[str, ...]] = ("mean", "std", "min", "max", "slope")
MIN_WINDOW = 2
MAX_WINDOW = 10_000
MAX_FFT_BANDS = 64

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WindowSpec:
    """Windows of ``size`` samples starting every ``step`` samples; ``features`` computed per field.

    ``fft`` expands to ``fft_bands`` band energies over equal-width bands of the non-DC frequency bins.
    """

    size: int
    step: int
    features: tuple[str, ...] = DEFAULT_FEATURES
    fft_bands: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise DatasetError(f"window.size: must be an integer, not {self.size!r}")
        if not MIN_WINDOW <= self.size <= MAX_WINDOW:
            raise DatasetError(f"window.size: {self.size} is not between {MIN_WINDOW} and {MAX_WINDOW}")
        if isinstance(self.step, bool) or not isinstance(self.step, int):
            raise DatasetError(f"window.step: must be an integer, not {self.step!r}")
        if not 1 <= self.step <= MAX_WINDOW:
            raise DatasetError(f"window.step: {self.step} is not between 1 and {MAX_WINDOW}")
        if not isinstance(self.features, tuple):
            raise DatasetError("window.features: must be a tuple of feature names")
        if not self.features:
            raise DatasetError("window.features: must name at least one feature")
        for name in self.features:
            if name not in FEATURES:
                raise DatasetError(f"window.features: {name!r} is not one of {', '.join(FEATURES)}")
        if len(set(self.features)) != len(self.features):
            raise DatasetError("window.features: names a feature twice")
        if isinstance(self.fft_bands, bool) or not isinstance(self.fft_bands, int):
            raise DatasetError(f"window.fftBands: must be an integer, not {self.fft_bands!r}")
        if not 1 <= self.fft_bands <= MAX_FFT_BANDS:
            raise DatasetError(f"window.fftBands: {self.fft_bands} is not between 1 and {MAX_FFT_BANDS}")
        if "fft" in self.features and self.fft_bands > self.size // 2:
            raise DatasetError(
                f"window.fftBands: {self.fft_bands} bands need a window of at least {2 * self.fft_bands} samples "
                f"(size is {self.size})"
            )

    def feature_names(self, fields: Sequence[str]) -> list[str]:
        """The feature column names, field-major: ``temp__mean``, ``temp__fft_band_0``, ..."""
        names: list[str] = []
        for field_name in fields:
            for feature in self.features:
                if feature == "fft":
                    names.extend(f"{field_name}__fft_band_{band}" for band in range(self.fft_bands))
                else:
                    names.append(f"{field_name}__{feature}")
        return names

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "step": self.step,
            "features": list(self.features),
            "fftBands": self.fft_bands,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WindowSpec:
        """Read :meth:`to_json`'s form (``step`` defaults to ``size``); other keys, such as a manifest's
        ``resampleMs``, are ignored."""
        if not isinstance(data, Mapping):
            raise DatasetError(f"window: must be an object, not {type(data).__name__}")
        if "size" not in data:
            raise DatasetError("window.size: is required")
        size = data["size"]
        step = data.get("step", size)
        features = data.get("features", list(DEFAULT_FEATURES))
        if not isinstance(features, list | tuple) or not all(isinstance(name, str) for name in features):
            raise DatasetError("window.features: must be a list of feature names")
        bands = data.get("fftBands", 4)
        return cls(size=size, step=step, features=tuple(features), fft_bands=bands)  # type: ignore[arg-type]


def window_features(window: npt.ArrayLike, spec: WindowSpec, interval_s: float) -> FloatArray:
    """The features of one window, in :meth:`WindowSpec.feature_names` order.

    ``window`` has shape ``(spec.size, n_fields)``; NaN marks a missing sample. ``interval_s`` is the time between
    samples: slopes are per second (least squares over the present samples). ``std`` is the population standard
    deviation. A band's energy is ``sum(|rfft(x - mean)|**2) / size`` over its bins, missing samples taken as the
    mean.
    """
    values = np.asarray(window, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != spec.size:
        raise DatasetError(f"window: shape {values.shape} is not ({spec.size}, fields)")
    if not interval_s > 0:
        raise DatasetError(f"window: the sample interval {interval_s} s must be positive")
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    has_values = count > 0
    filled = np.where(present, values, 0.0)
    mean = _divide(filled.sum(axis=0), count)
    deviation = np.where(present, values - mean, 0.0)
    columns: list[FloatArray] = []
    for feature in spec.features:
        if feature == "mean":
            columns.append(mean[:, np.newaxis])
        elif feature == "std":
            columns.append(np.sqrt(_divide((deviation**2).sum(axis=0), count))[:, np.newaxis])
        elif feature == "min":
            lowest = np.where(present, values, np.inf).min(axis=0)
            columns.append(np.where(has_values, lowest, np.nan)[:, np.newaxis])
        elif feature == "max":
            highest = np.where(present, values, -np.inf).max(axis=0)
            columns.append(np.where(has_values, highest, np.nan)[:, np.newaxis])
        elif feature == "slope":
            columns.append(_slope(values, present, count, mean, interval_s)[:, np.newaxis])
        else:
            columns.append(_fft_bands(deviation, has_values, spec))
    # Field-major order: every feature of the first field, then the second field's.
    return np.concatenate(columns, axis=1).reshape(-1)


def _divide(numerator: FloatArray, count: npt.NDArray[np.int64]) -> FloatArray:
    """``numerator / count``, NaN where ``count`` is 0 (without numpy's warning)."""
    result = np.full(numerator.shape, np.nan)
    np.divide(numerator, count, out=result, where=count > 0)
    return result


def _slope(
    values: FloatArray,
    present: npt.NDArray[np.bool_],
    count: npt.NDArray[np.int64],
    mean: FloatArray,
    interval_s: float,
) -> FloatArray:
    times = (np.arange(values.shape[0], dtype=np.float64) * interval_s)[:, np.newaxis]
    times_mean = _divide(np.where(present, times, 0.0).sum(axis=0), count)
    times_deviation = np.where(present, times - times_mean, 0.0)
    covariance = (times_deviation * np.where(present, values - mean, 0.0)).sum(axis=0)
    spread = (times_deviation**2).sum(axis=0)
    result = np.full(values.shape[1], np.nan)
    # One present sample (or none) gives no slope.
    np.divide(covariance, spread, out=result, where=spread > 0)
    return result


def _fft_bands(deviation: FloatArray, has_values: npt.NDArray[np.bool_], spec: WindowSpec) -> FloatArray:
    size = spec.size
    energy = np.abs(np.fft.rfft(deviation, axis=0)) ** 2 / size
    bins = energy[1:]
    edges = (np.arange(spec.fft_bands + 1) * bins.shape[0]) // spec.fft_bands
    bands = np.stack(
        [bins[edges[band] : edges[band + 1]].sum(axis=0) for band in range(spec.fft_bands)], axis=1
    )
    return np.where(has_values[:, np.newaxis], bands, np.nan)
