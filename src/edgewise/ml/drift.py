"""Data drift: whether the values a deployed model sees still look like the ones it was trained on.

Each feature (and the model's score, ``__score__``, when the training reference holds it) is compared with
two tests that answer different questions. The population stability index (PSI) measures how far the
distribution moved: the current values are binned by the reference's quantiles (``bins`` bins of about equal
reference mass), and ``PSI = Σ (c - r) · ln(c / r)`` over the bins' proportions, an empty bin counting as
``EPSILON`` so the logarithm stays finite. The two-sample Kolmogorov-Smirnov test (scipy) says whether the
difference is more than chance. A feature drifts only when both agree (PSI above ``psi_threshold`` and KS
p-value below ``p_value``): with many values KS alone flags shifts too small to matter, with few values PSI
alone is noisy. The report drifts when any feature drifts. Missing values (NaN) are left out of both tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from edgewise.ml.errors import MlError

#: The proportion an empty bin counts as.
EPSILON: Final = 1e-4
#: The usual reading of PSI: below 0.1 stable, 0.1 to 0.2 a moderate shift, above 0.2 a significant one.
DEFAULT_PSI_THRESHOLD: Final = 0.2
DEFAULT_P_VALUE: Final = 0.01


class DriftError(MlError):
    """Values that cannot be compared for drift (the message names the feature)."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison: PSI, the KS statistic and p-value, and whether both tests call it drift."""

    feature: str
    psi: float
    ks_statistic: float
    p_value: float
    drifted: bool
    reference_count: int
    current_count: int

    def to_json(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "psi": self.psi,
            "ksStatistic": self.ks_statistic,
            "pValue": self.p_value,
            "drifted": self.drifted,
            "referenceCount": self.reference_count,
            "currentCount": self.current_count,
        }


@dataclass(frozen=True)
class DriftReport:
    """Every compared feature, the thresholds used, and the features that could not be compared."""

    features: tuple[FeatureDrift, ...]
    psi_threshold: float
    p_value: float
    #: Reference features with no current values (or no reference values), so not compared.
    missing: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        """True when any feature drifted."""
        return any(row.drifted for row in self.features)

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(row.feature for row in self.features if row.drifted)

    def to_json(self) -> dict[str, object]:
        return {
            "drifted": self.drifted,
            "driftedFeatures": list(self.drifted_features),
            "psiThreshold": self.psi_threshold,
            "pValue": self.p_value,
            "features": [row.to_json() for row in self.features],
            "missing": list(self.missing),
        }


def psi(
    reference: Sequence[float] | npt.ArrayLike, current: Sequence[float] | npt.ArrayLike, bins: int = 10
) -> float:
    """The population stability index of ``current`` against ``reference`` (see the module docstring).

    The bin edges are the reference's interior quantiles, so the outer bins reach to ±infinity and values
    outside the reference's range still count. A constant reference gets three bins: below, at and above it.
    """
    if bins < 2:
        raise DriftError(f"bins: must be at least 2, not {bins}")
    expected = _values(reference, "reference")
    actual = _values(current, "current")
    edges = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    if expected.min() == expected.max():
        value = float(expected[0])
        edges = np.array([np.nextafter(value, -np.inf), value])
    expected_share = _shares(expected, edges)
    actual_share = _shares(actual, edges)
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def ks(
    reference: Sequence[float] | npt.ArrayLike, current: Sequence[float] | npt.ArrayLike
) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and its p-value (scipy's ``ks_2samp``, two-sided)."""
    from scipy.stats import ks_2samp

    result = ks_2samp(_values(reference, "reference"), _values(current, "current"))
    return float(result.statistic), float(result.pvalue)


def compare(
    reference: Mapping[str, Sequence[float]],
    current: Mapping[str, Sequence[float]],
    *,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    p_value: float = DEFAULT_P_VALUE,
    bins: int = 10,
) -> DriftReport:
    """Compare every reference feature that has values on both sides, in the reference's order."""
    if not (math.isfinite(psi_threshold) and psi_threshold > 0):
        raise DriftError(f"psi_threshold: must be a positive number, not {psi_threshold!r}")
    if not 0 < p_value < 1:
        raise DriftError(f"p_value: must be between 0 and 1, not {p_value!r}")
    rows: list[FeatureDrift] = []
    missing: list[str] = []
    for feature, expected_values in reference.items():
        expected = _finite(expected_values, f"reference[{feature!r}]")
        actual = _finite(current.get(feature, ()), f"current[{feature!r}]")
        if expected.size == 0 or actual.size == 0:
            missing.append(feature)
            continue
        index = psi(expected, actual, bins)
        statistic, probability = ks(expected, actual)
        rows.append(
            FeatureDrift(
                feature=feature,
                psi=index,
                ks_statistic=statistic,
                p_value=probability,
                drifted=index > psi_threshold and probability < p_value,
                reference_count=int(expected.size),
                current_count=int(actual.size),
            )
        )
    return DriftReport(
        features=tuple(rows), psi_threshold=psi_threshold, p_value=p_value, missing=tuple(missing)
    )


def _finite(values: Sequence[float] | npt.ArrayLike, field: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise DriftError(f"{field}: must be numbers ({error})") from error
    if np.isinf(array).any():
        raise DriftError(f"{field}: holds an infinite value")
    return array[~np.isnan(array)]


def _values(values: Sequence[float] | npt.ArrayLike, field: str) -> npt.NDArray[np.float64]:
    array = _finite(values, field)
    if array.size == 0:
        raise DriftError(f"{field}: needs at least one value that is not missing")
    return array


def _shares(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each bin's share of ``values`` (bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``), at least ``EPSILON``."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return np.maximum(counts / values.size, EPSILON)
