"""The fidelity gate: an exported model must say what the native model says, on the held-out rows.

Both sides see the same input: the rows cast to float32 (what the ONNX input takes) and, for the native
model, back to float64. The gate passes when no label differs and every compared value (class
probabilities, regression predictions, raw anomaly scores) differs by at most ``tolerance * max(1,
|native value|)``: absolute for values up to 1, relative beyond, because float32 arithmetic loses precision in
proportion to the magnitude (a log-likelihood of -2000 cannot match to 1e-4 absolute). A label that differs
where the native model is undecided (its two best class probabilities, a thresholded binary classifier's
second-class probability and the threshold, or its anomaly score and the threshold, within that tolerance) is
a tie, not a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgewise.ml.errors import ExportError
from edgewise.ml.export.latency import onnx_session
from edgewise.ml.export.outputs import ModelOutputs, as_rows, native_outputs, run_model

if TYPE_CHECKING:
    from edgewise.protocol.model_package import OutputSpec

_KINDS_OF_TASK = {
    "classification": "classifier",
    "regression": "regressor",
    "forecast": "regressor",
    "anomaly": "anomaly",
}


@dataclass(frozen=True)
class FidelityReport:
    """How the ONNX model compared with the native one; ``reason`` says why it failed ("" when it passed)."""

    rows: int
    label_mismatches: int
    max_abs_delta: float
    tolerance: float
    passed: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "labelMismatches": self.label_mismatches,
            "maxAbsDelta": self.max_abs_delta,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Any) -> FidelityReport:
        try:
            return cls(
                rows=int(data["rows"]),
                label_mismatches=int(data["labelMismatches"]),
                max_abs_delta=float(data["maxAbsDelta"]),
                tolerance=float(data["tolerance"]),
                passed=bool(data["passed"]),
                reason=str(data["reason"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(f"fidelity: not a fidelity report ({error!r})") from error


def check_fidelity(
    model: object,
    onnx_bytes: bytes,
    outputs: OutputSpec,
    X: npt.ArrayLike,
    task: str,
    *,
    tolerance: float = 1e-4,
) -> FidelityReport:
    """Compare ``model`` with its ONNX export on the rows of ``X`` (see the module docstring for the rule).

    ``task`` is a ``Task`` (or its value) and must fit ``outputs.kind``. Raises ``ExportError`` when the ONNX
    model does not load or lacks an output ``outputs`` names; a model that loads but disagrees gives a report
    that did not pass.
    """
    expected_kind = _KINDS_OF_TASK.get(str(task))
    if expected_kind != outputs.kind:
        raise ExportError(f"outputs.kind: {outputs.kind!r} does not fit the task {str(task)!r}")
    if tolerance <= 0:
        raise ExportError(f"tolerance: must be positive, not {tolerance}")
    rows = as_rows(X)
    if rows.shape[0] == 0:
        return FidelityReport(0, 0, 0.0, tolerance, passed=False, reason="no rows to compare")
    exported = run_model(onnx_session(onnx_bytes), outputs, rows)
    native = native_outputs(model, outputs, rows)
    return _compare(native, exported, outputs, tolerance, rows.shape[0])


def _compare(
    native: ModelOutputs, exported: ModelOutputs, outputs: OutputSpec, tolerance: float, count: int
) -> FidelityReport:
    if outputs.kind == "classifier":
        expected, actual = native.probabilities, exported.probabilities
        what = "class probability"
    elif outputs.kind == "regressor":
        expected, actual = native.labels, exported.labels
        what = "prediction"
    else:
        expected, actual = native.raw_scores, exported.raw_scores
        what = "anomaly score"
    assert expected is not None
    assert actual is not None
    if expected.shape != actual.shape:
        return FidelityReport(
            count, 0, float("inf"), tolerance, passed=False,
            reason=f"the ONNX {what}s have shape {actual.shape}, the native ones {expected.shape}",
        )  # fmt: skip
    delta = _deltas(np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64))
    allowed = tolerance * np.maximum(1.0, np.abs(np.nan_to_num(expected, nan=0.0)))
    max_abs_delta = float(delta.max())
    mismatches = _label_mismatches(native, exported, outputs, tolerance)
    reasons: list[str] = []
    if mismatches.size:
        row = int(mismatches[0])
        assert native.labels is not None
        assert exported.labels is not None
        reasons.append(
            f"{mismatches.size} of {count} labels differ (first at row {row}: native "
            f"{native.labels[row]!r}, ONNX {exported.labels[row]!r})"
        )
    beyond = np.flatnonzero((delta > allowed).reshape(count, -1).any(axis=1))
    if beyond.size:
        index = np.unravel_index(int(np.argmax(delta - allowed)), delta.shape)
        reasons.append(
            f"{beyond.size} of {count} rows have a {what} beyond the tolerance {tolerance:g} * max(1, |native|) "
            f"(worst at row {int(index[0])}: native {float(expected[index]):.6g}, ONNX {float(actual[index]):.6g})"
        )
    return FidelityReport(
        rows=count,
        label_mismatches=int(mismatches.size),
        max_abs_delta=max_abs_delta,
        tolerance=tolerance,
        passed=not reasons,
        reason="; ".join(reasons),
    )


def _deltas(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """|expected - actual|, 0 where both are NaN, infinite where only one is."""
    both_nan = np.isnan(expected) & np.isnan(actual)
    with np.errstate(invalid="ignore"):
        delta = np.abs(expected - actual)
    delta[both_nan] = 0.0
    delta[np.isnan(delta)] = np.inf
    return delta


def _label_mismatches(
    native: ModelOutputs, exported: ModelOutputs, outputs: OutputSpec, tolerance: float
) -> npt.NDArray[np.intp]:
    """Rows whose labels differ where the native model is not undecided."""
    if outputs.kind == "regressor" or native.labels is None or exported.labels is None:
        return np.empty(0, dtype=np.intp)
    differ = np.asarray(native.labels != exported.labels).ravel()
    if outputs.kind == "classifier" and native.probabilities is not None and outputs.threshold is not None:
        differ &= np.abs(native.probabilities[:, -1] - outputs.threshold) > tolerance
    elif outputs.kind == "classifier" and native.probabilities is not None:
        ranked = np.sort(native.probabilities, axis=1)
        margin = ranked[:, -1] - ranked[:, -2] if ranked.shape[1] > 1 else np.full(len(ranked), np.inf)
        differ &= margin > tolerance
    elif outputs.kind == "anomaly" and native.scores is not None and outputs.threshold is not None:
        threshold = outputs.threshold
        differ &= np.abs(native.scores - threshold) > tolerance * max(1.0, abs(threshold))
    return np.flatnonzero(differ)
