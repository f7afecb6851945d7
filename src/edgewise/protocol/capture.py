"""Capture records: what a device's inference component keeps of a result, and the cloud's drift checks read.

The inference component appends one record per captured result, as one JSON object, to a stream-manager stream
(:data:`DEFAULT_CAPTURE_STREAM` unless configured) that it exports to the cloud, so the records arrive as
telemetry of that stream name (docs/ml.md, "Models on the device"). :func:`capture_record` builds a record;
:func:`read_capture` reads one back, ``None`` for anything that is not a record of this format.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

CAPTURE_FORMAT: Final = "edgewise.capture/1"
DEFAULT_CAPTURE_STREAM: Final = "EdgewiseInferenceCapture"


def capture_record(
    *,
    model: str,
    version: str,
    source: str,
    timestamp_ms: int,
    feature_names: Sequence[str],
    values: Sequence[float],
    output: Mapping[str, object],
    challenger: Mapping[str, object] | None,
    reason: str,
) -> dict[str, object]:
    """One capture record: the model's input columns by name (a missing value, NaN, as null), its output, the
    challenger's (or null) and why it was captured (``disagreement``, ``score`` or ``sample``)."""
    return {
        "format": CAPTURE_FORMAT,
        "model": model,
        "version": version,
        "source": source,
        "timestamp": timestamp_ms,
        "features": {
            name: (float(value) if math.isfinite(value) else None)
            for name, value in zip(feature_names, values, strict=True)
        },
        "output": dict(output),
        "challenger": dict(challenger) if challenger is not None else None,
        "reason": reason,
    }


@dataclass(frozen=True)
class CapturedValues:
    """The numbers of one capture record: its features (missing ones left out) and the model's score — the
    anomaly score, the top class's probability or a regressor's prediction — when it has one."""

    features: dict[str, float]
    score: float | None


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_capture(document: object) -> CapturedValues | None:
    """The values of a capture record (decoded JSON); ``None`` when ``document`` is not one."""
    if not isinstance(document, dict) or document.get("format", CAPTURE_FORMAT) != CAPTURE_FORMAT:
        return None
    features = document.get("features")
    if not isinstance(features, dict):
        return None
    numbers = {
        str(name): number for name, value in features.items() if (number := _number(value)) is not None
    }
    output = document.get("output")
    score = None
    if isinstance(output, dict):
        score = _number(output.get("score", output.get("prediction")))
    return CapturedValues(features=numbers, score=score)
