"""The time-ordered split of a dataset into the rows a model learns from and the rows it is judged on.

Telemetry is a time series, so a random split would let a model see the future of the rows it is scored on
and report a score the device will never reach. Rows are put in time order (by ``timestamp`` when there is
one, stably, so rows with the same time keep the table's order; otherwise the table's order is taken as the
time order) and the latest ``validation_fraction`` of them is held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.ml.errors import TrainingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: The share of rows held out for validation (the latest ones).
VALIDATION_FRACTION = 0.2
#: The fewest rows on each side of the split; fewer cannot rank candidates or check an export.
MIN_TRAIN_ROWS = 10
MIN_VALIDATION_ROWS = 5


@dataclass(frozen=True)
class TimeSplit:
    """Row indices into the table: ``train`` then ``validation``, each in time order."""

    train: npt.NDArray[np.intp]
    validation: npt.NDArray[np.intp]


def time_order(timestamps: npt.NDArray[Any] | None, rows: int) -> npt.NDArray[np.intp]:
    """The row indices in time order: by ``timestamps`` (stable) when given, else the table's order."""
    import numpy as np

    if timestamps is None:
        return np.arange(rows, dtype=np.intp)
    if len(timestamps) != rows:
        raise TrainingError(f"timestamp: has {len(timestamps)} values for {rows} rows")
    return np.argsort(np.asarray(timestamps), kind="stable").astype(np.intp)


def time_split(
    timestamps: npt.NDArray[Any] | None, rows: int, *, validation_fraction: float = VALIDATION_FRACTION
) -> TimeSplit:
    """Hold out the latest ``validation_fraction`` of the rows; ``TrainingError`` when too few rows remain."""
    if not 0 < validation_fraction < 1:
        raise TrainingError(f"validation_fraction: must be between 0 and 1, not {validation_fraction}")
    needed = MIN_TRAIN_ROWS + MIN_VALIDATION_ROWS
    if rows < needed:
        raise TrainingError(f"rows: the dataset has {rows} usable rows, training needs at least {needed}")
    order = time_order(timestamps, rows)
    held_out = min(max(MIN_VALIDATION_ROWS, round(rows * validation_fraction)), rows - MIN_TRAIN_ROWS)
    cut = rows - held_out
    return TimeSplit(train=order[:cut], validation=order[cut:])
