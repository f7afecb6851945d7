"""The edge budget: the winner is the best candidate whose ONNX export passes the gate and fits the device.

Candidates are exported in rank order, each built (fitted) only when its turn comes. Each one is converted
(``to_onnx``), checked against its native model on the held-out rows (``check_fidelity``) and timed one row
at a time on one thread (``measure_latency``); the first that passes the gate and meets ``max_latency_ms``
(p50) and ``max_size_bytes`` wins. AutoML happily picks a forest of thousands of leaves for a tiny gain, so
this is where such models give way to smaller ones. At most ``MAX_EXPORTS`` candidates are tried, which
keeps the time spent after the search bounded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgewise.ml.errors import MlError, TrainingError
from edgewise.ml.training.leaderboard import Candidate, ProgressCallback, ProgressEvent, phase
from edgewise.ml.training.tasks import EdgeBudget, Task

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edgewise.ml.export import FidelityReport, LatencyReport
    from edgewise.protocol.model_package import OutputSpec

#: The most candidates exported and measured in one run.
MAX_EXPORTS = 8
#: Single-row calls timed per candidate.
LATENCY_ROWS = 200

#: Completes an export's ``OutputSpec`` from the ONNX model (the anomaly task sets its threshold here).
SettleOutputs = Callable[[bytes, "OutputSpec"], "OutputSpec"]


@dataclass(frozen=True)
class Contender:
    """A leaderboard row (``row`` is its index in the leaderboard) and how to build its fitted model."""

    row: int
    candidate: Candidate
    build: Callable[[], object]


@dataclass(frozen=True)
class EdgeChoice:
    """The winner, its export and reports, and every candidate measured on the way (by leaderboard row)."""

    contender: Contender
    candidate: Candidate
    model: object
    onnx: bytes
    outputs: OutputSpec
    fidelity: FidelityReport
    latency: LatencyReport
    measured: dict[int, Candidate]


def choose_for_edge(
    contenders: Sequence[Contender],
    *,
    task: Task,
    n_features: int,
    X_check: npt.NDArray[np.float64],
    budget: EdgeBudget,
    progress: ProgressCallback,
    settle_outputs: SettleOutputs | None = None,
    max_exports: int = MAX_EXPORTS,
) -> EdgeChoice:
    """Export ``contenders`` in order until one passes the fidelity gate and fits ``budget``.

    ``X_check`` are held-out rows: the gate compares native and ONNX outputs on them and latency cycles
    through them. ``TrainingError`` when none qualifies, naming the smallest size and the lowest latency
    seen, or the gate's reason when no export passed it.
    """
    from edgewise.ml.export import check_fidelity, measure_latency, to_onnx

    export_task = Task.REGRESSION if task is Task.FORECAST else task
    measured: dict[int, Candidate] = {}
    gated: list[Candidate] = []  # measured candidates whose export passed the gate
    gate_failures: list[str] = []
    for contender in contenders[:max_exports]:
        candidate = contender.candidate
        progress(phase(f"exporting {candidate.learner} (leaderboard row {contender.row + 1})"))
        try:
            model = contender.build()
            onnx, outputs = to_onnx(model, export_task, n_features)
            if settle_outputs is not None:
                outputs = settle_outputs(onnx, outputs)
            fidelity = check_fidelity(model, onnx, outputs, X_check, export_task)
            latency = measure_latency(onnx, X_check, rows=LATENCY_ROWS)
        except MlError as error:
            result = dataclasses.replace(candidate, fits_budget=False, note=f"not exported: {error}")
            gate_failures.append(f"{candidate.learner}: {error}")
            _record(measured, contender.row, result, progress)
            continue
        except Exception as error:  # one learner failing to refit or run on this data must not end the run
            result = dataclasses.replace(candidate, fits_budget=False, note=f"failed: {error!r}")
            gate_failures.append(f"{candidate.learner}: failed: {error!r}")
            _record(measured, contender.row, result, progress)
            continue
        size = len(onnx)
        over = _over_budget(budget, size, latency.p50_ms)
        if not fidelity.passed:
            gate_failures.append(f"{candidate.learner}: {fidelity.reason}")
            over.insert(0, f"fidelity gate failed: {fidelity.reason}")
        result = dataclasses.replace(
            candidate,
            size_bytes=size,
            latency_ms=latency.p50_ms,
            fits_budget=not over,
            note="; ".join(over) if over else "chosen",
        )
        _record(measured, contender.row, result, progress)
        if fidelity.passed:
            gated.append(result)
        if not over:
            return EdgeChoice(
                contender=contender,
                candidate=result,
                model=model,
                onnx=onnx,
                outputs=outputs,
                fidelity=fidelity,
                latency=latency,
                measured=measured,
            )
    tried = min(len(contenders), max_exports)
    raise TrainingError(_nothing_fits(budget, gated, gate_failures, tried, len(contenders)))


def _over_budget(budget: EdgeBudget, size: int, latency_ms: float) -> list[str]:
    reasons: list[str] = []
    if budget.max_size_bytes is not None and size > budget.max_size_bytes:
        reasons.append(f"{size} bytes is over maxSizeBytes {budget.max_size_bytes}")
    if budget.max_latency_ms is not None and latency_ms > budget.max_latency_ms:
        reasons.append(f"p50 {latency_ms:.4g} ms is over maxLatencyMs {budget.max_latency_ms:g}")
    return reasons


def _record(
    measured: dict[int, Candidate], row: int, candidate: Candidate, progress: ProgressCallback
) -> None:
    measured[row] = candidate
    progress(ProgressEvent(kind="candidate", candidate=candidate))


def _nothing_fits(
    budget: EdgeBudget, gated: list[Candidate], gate_failures: list[str], tried: int, available: int
) -> str:
    """Why no candidate won: the gate's reasons when none passed it, else the best size and latency seen."""
    if tried == 0:
        return "leaderboard: no candidate to export (the search finished no trial)"
    attempts = f"{tried} of {available} candidates tried"
    if not gated:
        return f"fidelity: no candidate passed the export and fidelity gate ({attempts}): " + "; ".join(
            gate_failures
        )
    smallest = min(gated, key=lambda c: c.size_bytes or 0)
    fastest = min(gated, key=lambda c: c.latency_ms if c.latency_ms is not None else math.inf)
    limits = ", ".join(
        text
        for text in (
            None if budget.max_size_bytes is None else f"maxSizeBytes {budget.max_size_bytes}",
            None if budget.max_latency_ms is None else f"maxLatencyMs {budget.max_latency_ms:g}",
        )
        if text is not None
    )
    message = (
        f"budget: no candidate fits the edge budget ({limits}; {attempts}): the smallest export was "
        f"{smallest.size_bytes} bytes ({smallest.learner}), the fastest p50 {fastest.latency_ms:.4g} ms "
        f"({fastest.learner})"
    )
    if gate_failures:
        message += "; failed the export or fidelity gate: " + "; ".join(gate_failures)
    return message
