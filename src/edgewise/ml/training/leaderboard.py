"""The leaderboard of a training run and the progress events it streams while it runs.

Every candidate's ``score`` is higher-is-better whatever the metric (``roc_auc``, ``accuracy``, ``r2``,
``neg_mae``: the negated mean absolute error), so one sort ranks any leaderboard. A candidate that has been
exported and measured against the edge budget carries its ONNX size, one-thread p50 latency and verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from edgewise.ml.errors import TrainingError


@dataclass(frozen=True)
class Candidate:
    """One leaderboard row: a learner with its settings and its validation score."""

    learner: str
    params: dict[str, object]
    metric: str
    score: float
    size_bytes: int | None = None
    latency_ms: float | None = None
    fits_budget: bool | None = None
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "learner": self.learner,
            "params": dict(self.params),
            "metric": self.metric,
            "score": _json_number(self.score),
            "sizeBytes": self.size_bytes,
            "latencyMs": self.latency_ms,
            "fitsBudget": self.fits_budget,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: object, *, field: str = "candidate") -> Candidate:
        if not isinstance(data, Mapping):
            raise TrainingError(f"{field}: must be a JSON object, not {type(data).__name__}")
        try:
            params = data["params"]
            if not isinstance(params, Mapping):
                raise TypeError("params is not an object")
            score = data["score"]
            size, latency, fits = data.get("sizeBytes"), data.get("latencyMs"), data.get("fitsBudget")
            return cls(
                learner=str(data["learner"]),
                params=dict(params),
                metric=str(data["metric"]),
                score=float("nan") if score is None else float(score),
                size_bytes=None if size is None else int(size),
                latency_ms=None if latency is None else float(latency),
                fits_budget=None if fits is None else bool(fits),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise TrainingError(f"{field}: not a leaderboard candidate ({error!r})") from error


@dataclass(frozen=True)
class ProgressEvent:
    """A phase of the run starting (``message``) or a candidate scored or measured (``candidate``)."""

    kind: Literal["phase", "candidate"]
    message: str = ""
    candidate: Candidate | None = field(default=None)

    def to_json(self) -> dict[str, object]:
        if self.kind == "candidate" and self.candidate is not None:
            return {"event": "candidate", "candidate": self.candidate.to_json()}
        return {"event": self.kind, "message": self.message}


#: What ``train`` calls with each event; it must return quickly. During a FLAML search it is called from a
#: thread that watches the trial log (see ``supervised.TrialWatcher``), never while another call runs.
ProgressCallback = Callable[[ProgressEvent], None]


def phase(message: str) -> ProgressEvent:
    """A phase event."""
    return ProgressEvent(kind="phase", message=message)


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    """Best first; a score that is not a number (a failed trial) ranks last."""
    return sorted(candidates, key=lambda c: c.score if math.isfinite(c.score) else -math.inf, reverse=True)


def _json_number(value: float) -> float | None:
    # JSON has no NaN or infinity; a score that is not a number is written as null.
    return value if math.isfinite(value) else None
