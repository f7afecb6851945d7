"""ONNX Runtime sessions as the device runs them, and the per-row latency of a model measured the same way.

``onnx_session`` is the one place session options are set: one intra-op and one inter-op thread with spinning
off, as the inference component runs on a small device next to other components, so the latency measured in
the cloud is the latency of a single core, not of the cloud's many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgewise.ml.errors import ExportError

if TYPE_CHECKING:
    import onnxruntime

#: Calls made before timing, so that first-call allocations do not count.
WARMUP_CALLS = 5


@dataclass(frozen=True)
class LatencyReport:
    """Milliseconds one ``run`` of one row takes: the median and the 99th percentile over ``rows`` calls."""

    p50_ms: float
    p99_ms: float
    rows: int

    def to_json(self) -> dict[str, object]:
        return {"p50Ms": self.p50_ms, "p99Ms": self.p99_ms, "rows": self.rows}

    @classmethod
    def from_json(cls, data: Any) -> LatencyReport:
        try:
            return cls(p50_ms=float(data["p50Ms"]), p99_ms=float(data["p99Ms"]), rows=int(data["rows"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(f"latency: not a latency report ({error!r})") from error


def onnx_session(onnx_bytes: bytes) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU with one thread and no spinning; ``ExportError`` when it does not load."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn a core while waiting for work; on a device that core belongs to other components.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own unexported exception classes
        raise ExportError(f"onnx: the model does not load in ONNX Runtime: {error}") from error


def measure_latency(onnx_bytes: bytes, X: npt.ArrayLike, *, rows: int = 200) -> LatencyReport:
    """Time ``rows`` single-row calls (cycling through the rows of ``X``) after a short warm-up."""
    if rows < 1:
        raise ExportError(f"rows: must be at least 1, not {rows}")
    data = np.asarray(X, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ExportError(f"X: needs at least one row of features, got shape {data.shape}")
    session = onnx_session(onnx_bytes)
    input_name = session.get_inputs()[0].name
    for index in range(WARMUP_CALLS):
        session.run(None, {input_name: data[index % len(data) : index % len(data) + 1]})
    elapsed_ns = np.empty(rows, dtype=np.float64)
    for index in range(rows):
        row = data[index % len(data) : index % len(data) + 1]
        started = time.perf_counter_ns()
        session.run(None, {input_name: row})
        elapsed_ns[index] = time.perf_counter_ns() - started
    p50, p99 = np.percentile(elapsed_ns, [50, 99]) / 1e6
    return LatencyReport(p50_ms=float(p50), p99_ms=float(p99), rows=rows)
