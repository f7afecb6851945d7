"""The challenger: a second verified package run in shadow on a share of a model's rows, off the message path.

Its output is never a result. One thread runs the queued rows through it (a full queue drops the row,
``challengerDropped``); a row that waited longer than ``timeoutSeconds``, or whose run took longer, is counted as
``challengerTimeouts`` and not compared. The others count as agreements or disagreements: the same class for a
classifier, the same ``anomaly`` flag for a thresholded anomaly detector, else (regressors, unthresholded scores)
values within ``tolerance`` (relative beyond 1). The challenger reads the champion's rows, so it must take the same
inputs and window and only features the champion's rows hold.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgewise.components.inference.config import ChallengerConfig
from edgewise.components.inference.errors import ModelLoadError
from edgewise.components.inference.model import LoadedModel
from edgewise.components.inference.window import FeatureRow

if TYPE_CHECKING:
    from edgewise.components.inference.serving import Counters

logger = logging.getLogger(__name__)

#: Rows waiting for the challenger, all models together; more are dropped.
QUEUE_SIZE = 256


@dataclass(frozen=True)
class Challenger:
    """A loaded challenger and where its features are in the champion's rows."""

    config: ChallengerConfig
    model: LoadedModel
    columns: tuple[int, ...]

    @property
    def version(self) -> str:
        return self.model.manifest.version


def challenger_for(champion: LoadedModel, model: LoadedModel, config: ChallengerConfig) -> Challenger:
    """``model`` as ``champion``'s challenger; :class:`ModelLoadError` when it cannot read the champion's rows."""
    mine, theirs = model.layout, champion.layout
    if model.manifest.outputs.kind != champion.manifest.outputs.kind:
        raise ModelLoadError(
            f"the challenger is a {model.manifest.outputs.kind} and the champion a "
            f"{champion.manifest.outputs.kind}; their outputs cannot be compared"
        )
    if (mine.names, [p.text for p in mine.paths], mine.window, mine.resample_ms) != (
        theirs.names,
        [p.text for p in theirs.paths],
        theirs.window,
        theirs.resample_ms,
    ):
        raise ModelLoadError(
            "the challenger's manifest fields 'inputs' and 'window' differ from the champion's; it must read "
            "its rows the same way"
        )
    position = {name: index for index, name in enumerate(champion.manifest.feature_names)}
    missing = [name for name in model.manifest.feature_names if name not in position]
    if missing:
        raise ModelLoadError(
            f"the challenger's manifest field 'featureNames' names {missing[0]!r}, which the champion's rows "
            "do not hold"
        )
    return Challenger(config, model, tuple(position[name] for name in model.manifest.feature_names))


def agrees(
    kind: str, champion: Mapping[str, object], challenger: Mapping[str, object], tolerance: float
) -> bool:
    """Whether two outputs of the same kind of model agree (see the module's docstring)."""
    if kind == "classifier":
        return champion.get("label") == challenger.get("label")
    if kind == "anomaly" and "anomaly" in champion and "anomaly" in challenger:
        return champion["anomaly"] == challenger["anomaly"]
    key = "prediction" if kind == "regressor" else "score"
    mine, theirs = champion.get(key), challenger.get(key)
    if not isinstance(mine, int | float) or not isinstance(theirs, int | float):
        return mine == theirs
    return math.isclose(mine, theirs, rel_tol=0, abs_tol=tolerance * max(1.0, abs(float(mine))))


@dataclass(frozen=True)
class ShadowRun:
    """A row the champion answered, waiting for the challenger."""

    challenger: Challenger
    row: FeatureRow
    output: Mapping[str, object]
    counters: Counters
    queued_at: float  #: time.monotonic() when it was queued
    model: str  #: the served model's name
    champion: LoadedModel  #: the model that gave ``output``


@dataclass(frozen=True)
class ShadowOutcome:
    """What the challenger said of a row: its output and whether it agrees with the champion's."""

    run: ShadowRun
    output: dict[str, object]
    agrees: bool

    def record(self) -> dict[str, object]:
        """The ``challenger`` part of a capture record."""
        challenger = self.run.challenger
        return {
            "component": challenger.config.component,
            "version": challenger.version,
            "output": self.output,
            "agrees": self.agrees,
        }


class ShadowRunner:
    """The bounded queue of shadow runs and the one thread that runs them; ``done`` gets each compared outcome."""

    def __init__(self, done: Callable[[ShadowOutcome], None], *, size: int = QUEUE_SIZE) -> None:
        self._done = done
        self._queue: queue.Queue[ShadowRun | None] = queue.Queue(size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def offer(self, run: ShadowRun) -> bool:
        """Queue ``run`` without waiting; False (and ``challengerDropped`` counted) when the queue is full."""
        try:
            self._queue.put_nowait(run)
        except queue.Full:
            with self._lock:
                run.counters.challenger_dropped += 1
            return False
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._drain, name="inference-challenger", daemon=True
                    )
                    self._thread.start()
        return True

    def close(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)

    def _drain(self) -> None:
        while (run := self._queue.get()) is not None:
            try:
                outcome = self.run(run)
                if outcome is not None:
                    self._done(outcome)
            except Exception:
                logger.exception("challenger: a shadow run's outcome was not handled")

    def run(self, run: ShadowRun) -> ShadowOutcome | None:
        """Run one row through the challenger; None when it timed out or failed (counted)."""
        counters = run.counters
        challenger = run.challenger
        timeout = challenger.config.timeout_s
        started = time.monotonic()
        if started - run.queued_at > timeout:
            counters.challenger_timeouts += 1
            return None
        try:
            values = run.row.values[list(challenger.columns)].reshape(1, -1)
            output = challenger.model.predict(values)[0]
        except Exception:
            counters.challenger_failed += 1
            if counters.challenger_failed <= 5:
                logger.exception("challenger version %s failed on a row", challenger.version)
            return None
        elapsed = time.monotonic() - started
        counters.challenger_runs += 1
        counters.challenger_seconds += elapsed
        counters.challenger_max_seconds = max(counters.challenger_max_seconds, elapsed)
        if time.monotonic() - run.queued_at > timeout:
            counters.challenger_timeouts += 1
            return None
        same = agrees(challenger.model.manifest.outputs.kind, run.output, output, challenger.config.tolerance)
        if same:
            counters.challenger_agreements += 1
        else:
            counters.challenger_disagreements += 1
        return ShadowOutcome(run, output, same)
