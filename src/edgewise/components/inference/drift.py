"""The streaming drift detector on a model's score stream: river's ADWIN or Page-Hinkley, one per served model.

The score stream is each result's anomaly score, a classifier's top probability, or a regressor's prediction
(``capture.score_of``). When the detector signals a change, the component publishes a drift event locally on the
detector's topic. river (which brings pandas and scipy) is imported only here, when a detector is configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgewise.components.inference.config import DriftDetectorConfig
from edgewise.components.inference.errors import InferenceConfigError


class ScoreDriftDetector:
    """One detector, fed one score at a time; :meth:`update` says whether this score completed a drift."""

    def __init__(self, config: DriftDetectorConfig) -> None:
        try:
            # By name: river has no type information.
            drift: Any = importlib.import_module("river.drift")
        except ImportError:
            raise InferenceConfigError(
                "driftDetector", "needs the river package, which is not installed: pip install river"
            ) from None
        self.config = config
        self.scores = 0
        self._detector: Any = (
            drift.ADWIN(delta=config.delta)
            if config.kind == "adwin"
            else drift.PageHinkley(delta=config.delta, threshold=config.threshold)
        )

    def update(self, score: float) -> bool:
        self.scores += 1
        self._detector.update(score)
        return bool(self._detector.drift_detected)


def drift_event(*, model: str, version: str, detector: str, at: int, value: float) -> dict[str, object]:
    """What is published on the detector's topic: ``at`` is the result's timestamp (ms), ``value`` its score."""
    return {"model": model, "version": version, "detector": detector, "at": at, "value": value}
