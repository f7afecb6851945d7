"""The time-ordered split of a dataset into the rows a model learns from and the rows it is judged on.

Telemetry is a time series, so a random split would let a model see the future of the rows it is scored on
and report a score the device will never reach. Rows are put in time order (by ``timestamp`` when there is
one, stably, so rows with the same time keep the table's order; otherwise the table's order is taken as the
time order) and the latest ``validation_fraction`` of them is held out.

With class labels (classification), the held-out rows must show every class, or a model that never predicts a
rare class scores as well as one that finds it. When labelled segments all fall early in time, the latest rows
hold one class only; moving the cut back would soon hold out most of the data, so instead the latest blocks of
the training part (``validation_fraction / 2`` of the rows each) that hold a missing class join the held-out
rows, until it has ``MIN_CLASS_ROWS`` of the class (or half of the class's rows, when it has fewer than twice
that), while the training part keeps at least as many and never more than ``MAX_VALIDATION_FRACTION`` of the
rows is held out. The model then learns from rows on both sides of such a block: a small look-ahead, the
price of a validation score that can see the class at all.
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
#: Rows of each class the held-out part should hold when labels are given (see the module docstring).
MIN_CLASS_ROWS = 5
#: The largest share of rows held out when blocks are added for a missing class.
MAX_VALIDATION_FRACTION = 0.5


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
    timestamps: npt.NDArray[Any] | None,
    rows: int,
    *,
    validation_fraction: float = VALIDATION_FRACTION,
    labels: npt.NDArray[Any] | None = None,
) -> TimeSplit:
    """Hold out the latest ``validation_fraction`` of the rows (plus, with ``labels``, blocks holding a class
    the latest rows lack; see the module docstring); ``TrainingError`` when too few rows remain."""
    import numpy as np

    if not 0 < validation_fraction < 1:
        raise TrainingError(f"validation_fraction: must be between 0 and 1, not {validation_fraction}")
    needed = MIN_TRAIN_ROWS + MIN_VALIDATION_ROWS
    if rows < needed:
        raise TrainingError(f"rows: the dataset has {rows} usable rows, training needs at least {needed}")
    order = time_order(timestamps, rows)
    held_out = min(max(MIN_VALIDATION_ROWS, round(rows * validation_fraction)), rows - MIN_TRAIN_ROWS)
    cut = rows - held_out
    held = np.zeros(rows, dtype=bool)  # by position in time order
    held[cut:] = True
    if labels is not None:
        if len(labels) != rows:
            raise TrainingError(f"labels: has {len(labels)} values for {rows} rows")
        _hold_every_class(held, np.asarray(labels)[order], cut=cut, block=max(1, held_out // 2))
    return TimeSplit(train=order[~held], validation=order[held])


def _hold_every_class(held: npt.NDArray[np.bool_], labels: npt.NDArray[Any], *, cut: int, block: int) -> None:
    """Move the latest training blocks (before ``cut``) holding a class the held-out rows lack into them."""
    import numpy as np

    rows = len(labels)
    most = max(int(held.sum()), int(rows * MAX_VALIDATION_FRACTION))
    for value in np.unique(labels):
        of_class = labels == value
        wanted = min(MIN_CLASS_ROWS, int(of_class.sum()) // 2)
        end = cut
        while int((of_class & held).sum()) < wanted and end > 0:
            start = max(0, end - block)
            span = slice(start, end)
            end = start
            if not (of_class[span] & ~held[span]).any():
                continue
            moved = held.copy()
            moved[span] = True
            keeps_class = int((of_class & ~moved).sum()) >= wanted
            keeps_others = all((labels[~moved] == other).any() for other in np.unique(labels[~held]))
            if moved.sum() <= most and (~moved).sum() >= MIN_TRAIN_ROWS and keeps_class and keeps_others:
                held[:] = moved
