"""What ``edgewise demo`` shows, in one Rich view, and how it scores the anomalies the hubs report.

:class:`Story` is the demo at one moment: the steps done, each hub as the cloud sees it, the training job, the
model's rollout and what the model found. :func:`render` turns it into the live view.

:class:`AnomalyScore` scores the model against the faults the simulation injected: every reading a hub sends
to the cloud says whether a fault was injected into it (``anomaly``, ``fault``), and every result the inference
component sends back says what the model made of one reading. A result names no reading, but it is made the
moment its reading arrives on the device, so it belongs to the hub's latest reading at or before the result's
time: a flagged result on a faulty reading is a confirmed detection, on a normal one a false alarm. Only the
results of the model version the hubs were sent count (an earlier version may still answer while it rolls out).
"""

from __future__ import annotations

import bisect
import datetime
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Column, Table
from rich.text import Text

from edgewise.cli.model_training import job_view
from edgewise.cli.runtime import STATE_STYLES

#: How much later than its reading a result may be stamped and still belong to it (clock steps, rounding).
_MATCH_SLACK_S = 0.05
#: Detections listed in the view, newest first.
_SHOWN_DETECTIONS = 8


@dataclass
class Hub:
    """One simulated hub as the cloud sees it."""

    thing: str
    #: ``online``, ``offline`` or ``unknown`` (not reported yet).
    presence: str = "unknown"
    health: str = ""
    #: Component name → lifecycle state, as last reported to the cloud.
    components: dict[str, str] = field(default_factory=dict)
    #: Readings stored in the cloud since the demo started, as the hub published them over MQTT.
    readings: int = 0
    #: Readings stored in the cloud since the demo started through the hub's stream-manager export.
    exported: int = 0
    #: This hub's execution status of the deployment being rolled out, ``""`` before it has one.
    rollout: str = ""


@dataclass(frozen=True)
class Detection:
    """One result the model flagged, and what the simulation had injected into its reading."""

    thing: str
    at: float  #: the result's time, seconds since the epoch
    score: float | None
    #: The fault injected into the reading; ``None`` for a false alarm.
    fault: str | None


@dataclass
class _Readings:
    times: list[float] = field(default_factory=list)
    faults: list[str | None] = field(default_factory=list)


class AnomalyScore:
    """The model's results matched with the hubs' labelled readings."""

    def __init__(self, model: str = "", version: str = "") -> None:
        #: The model and version whose results count.
        self.model = model
        self.version = version
        self._readings: dict[str, _Readings] = {}
        #: Results whose reading may not be stored yet, per thing.
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self.results = 0
        self.detections: list[Detection] = []
        #: Faulty readings the model saw and did not flag.
        self.missed = 0

    @property
    def confirmed(self) -> int:
        """Flagged results on readings with an injected fault."""
        return sum(1 for detection in self.detections if detection.fault is not None)

    @property
    def false_alarms(self) -> int:
        return sum(1 for detection in self.detections if detection.fault is None)

    def add_readings(self, thing: str, payloads: list[dict[str, Any]]) -> None:
        """Readings as the hub sent them (in the order the cloud stored them)."""
        series = self._readings.setdefault(thing, _Readings())
        for payload in payloads:
            at = float(payload["timestamp"])
            index = bisect.bisect_right(series.times, at)
            series.times.insert(index, at)
            series.faults.insert(index, payload.get("fault") or None)

    def add_results(self, thing: str, payloads: list[dict[str, Any]]) -> list[Detection]:
        """The model's results for ``thing``; the new detections among those whose reading is known."""
        pending = self._pending.setdefault(thing, [])
        pending.extend(
            result
            for result in payloads
            if result.get("model") == self.model and str(result.get("version")) == self.version
        )
        series = self._readings.get(thing, _Readings())
        latest = series.times[-1] if series.times else None
        found: list[Detection] = []
        waiting: list[dict[str, Any]] = []
        for result in pending:
            at = float(result["timestamp"]) / 1000
            index = bisect.bisect_right(series.times, at + _MATCH_SLACK_S) - 1
            if latest is None or at > latest + _MATCH_SLACK_S or index < 0:
                # Its reading (or a later one, which would show it is the latest) is not stored yet.
                waiting.append(result)
                continue
            self.results += 1
            fault = series.faults[index]
            if result.get("anomaly"):
                score = result.get("score")
                detection = Detection(
                    thing, at, float(score) if isinstance(score, int | float) else None, fault
                )
                self.detections.append(detection)
                found.append(detection)
            elif fault is not None:
                self.missed += 1
        self._pending[thing] = waiting
        return found


def detection_line(detection: Detection) -> str:
    """One detection as a line of text (Rich markup)."""
    at = datetime.datetime.fromtimestamp(detection.at).strftime("%H:%M:%S.%f")[:-3]
    score = "" if detection.score is None else f" (score {detection.score:.2f})"
    if detection.fault is None:
        return f"{at} {detection.thing}: [yellow]flagged{score}, but no fault was injected (false alarm)[/]"
    return f"{at} {detection.thing}: [red]anomaly{score}[/]: the {detection.fault} fault injected into it"


@dataclass
class Story:
    """The demo at one moment."""

    header: list[str]
    hubs: list[Hub]
    #: Component short names shown as columns, in order.
    components: list[str]
    #: (step, state) where state is ``done``, ``running`` or ``waiting``; the detail follows the step's name.
    steps: list[tuple[str, str]] = field(default_factory=list)
    training_job: dict[str, Any] | None = None
    rollout_title: str = ""
    score: AnomalyScore = field(default_factory=AnomalyScore)

    def step(self, text: str) -> None:
        """Mark the running step done and start ``text``."""
        self.steps = [(name, "done") for name, _ in self.steps]
        self.steps.append((text, "running"))

    def update_step(self, text: str) -> None:
        """Replace the running step's text."""
        if self.steps:
            self.steps[-1] = (text, self.steps[-1][1])

    def finish(self) -> None:
        self.steps = [(name, "done") for name, _ in self.steps]


def _styled(state: str) -> str:
    style = STATE_STYLES.get(state, "")
    return f"[{style}]{state}[/]" if style else state


def _table(*columns: Column | str) -> Table:
    return Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)


def _steps(story: Story) -> Panel:
    lines = Text()
    for name, state in story.steps:
        mark = {"done": ("✓ ", "green"), "running": ("… ", "yellow")}.get(state, ("  ", ""))
        lines.append(mark[0], style=mark[1])
        lines.append(name + "\n")
    lines.rstrip()
    return Panel(lines, title="The story", title_align="left")


def _fleet(story: Story) -> Panel:
    table = _table(
        Column("Hub", no_wrap=True),
        "Presence",
        "Health",
        *story.components,
        "Readings",
        "Exported",
        "Rollout",
    )
    for hub in story.hubs:
        presence = {"online": "[green]online[/]", "offline": "[red]offline[/]"}.get(
            hub.presence, "[dim]unknown[/]"
        )
        health = {"HEALTHY": "[green]HEALTHY[/]", "UNHEALTHY": "[red]UNHEALTHY[/]"}.get(
            hub.health, hub.health
        )
        states = [
            _styled(next((state for name, state in hub.components.items() if name.endswith(short)), ""))
            for short in story.components
        ]
        table.add_row(
            hub.thing, presence, health, *states, str(hub.readings), str(hub.exported), _styled(hub.rollout)
        )
    title = "Fleet: each hub as it reports to the cloud"
    if story.rollout_title:
        title += f"; rollout of {story.rollout_title}"
    return Panel(table, title=title, title_align="left")


def _anomalies(score: AnomalyScore) -> Panel:
    summary = Text.from_markup(
        f"{score.results} results scored: [red]{score.confirmed} injected faults detected[/], "
        f"{score.false_alarms} false alarms, {score.missed} faulty readings not flagged"
    )
    newest = [Text.from_markup(detection_line(d)) for d in reversed(score.detections[-_SHOWN_DETECTIONS:])]
    return Panel(Group(summary, *newest), title="Anomalies the model finds on the hubs", title_align="left")


def render(story: Story) -> RenderableType:
    """The live view: the header, the steps, the fleet, the training job, the anomalies."""
    parts: list[RenderableType] = [Text("\n".join(story.header), style="bold"), _steps(story), _fleet(story)]
    if story.training_job is not None:
        parts.append(Panel(job_view(story.training_job), title="Training", title_align="left"))
    if story.score.results:
        parts.append(_anomalies(story.score))
    return Group(*parts)
