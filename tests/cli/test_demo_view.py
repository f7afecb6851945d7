"""The demo's view: how the model's results are scored against the faults the hubs injected, and the rendering."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from edgewise.cli.demo_view import AnomalyScore, Hub, Story, render

START = 1_800_000_000.0


def reading(sequence: int, fault: str | None = None) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "timestamp": START + sequence * 0.1,
        "anomaly": int(fault is not None),
        "fault": fault,
    }


def result(sequence: int, anomaly: bool, *, delay: float = 0.004, version: str = "2") -> dict[str, Any]:
    """The model's result for reading ``sequence``, stamped ``delay`` s after it (in ms, as the component does)."""
    at = round((START + sequence * 0.1 + delay) * 1000)
    return {"model": "m", "version": version, "timestamp": at, "anomaly": int(anomaly), "score": 0.9}


def test_flagged_results_are_detections_on_faulty_readings_and_false_alarms_on_normal_ones() -> None:
    score = AnomalyScore("m", "2")
    score.add_readings("hub-1", [reading(0), reading(1, "spike"), reading(2, "stuck"), reading(3)])
    found = score.add_results("hub-1", [result(0, True), result(1, True), result(2, False), result(3, False)])
    assert [(d.thing, d.fault) for d in found] == [("hub-1", None), ("hub-1", "spike")]
    assert (score.results, score.confirmed, score.false_alarms, score.missed) == (4, 1, 1, 1)


def test_a_result_waits_for_its_reading_and_other_versions_do_not_count() -> None:
    score = AnomalyScore("m", "2")
    score.add_readings("hub-1", [reading(0)])
    assert score.add_results("hub-1", [result(1, True), result(0, True, version="1")]) == []
    assert score.results == 0
    found = score.add_results("hub-1", [])
    assert found == []
    score.add_readings("hub-1", [reading(1, "vibration")])
    assert [d.fault for d in score.add_results("hub-1", [])] == ["vibration"]
    assert (score.results, score.confirmed, score.false_alarms) == (1, 1, 0)


@settings(max_examples=100, deadline=None)
@given(
    faults=st.lists(st.sampled_from([None, "spike", "stuck", "vibration"]), min_size=1, max_size=40),
    flags=st.lists(st.booleans(), min_size=40, max_size=40),
    order=st.randoms(use_true_random=False),
    stored=st.integers(min_value=0, max_value=40),
)
def test_every_result_belongs_to_its_own_reading_whenever_it_arrives(
    faults: list[str | None], flags: list[bool], order: Any, stored: int
) -> None:
    """Readings are stored in the order a hub sends them; results come in any order, before their readings or
    after."""
    readings = [reading(sequence, fault) for sequence, fault in enumerate(faults)]
    results = [result(sequence, flags[sequence]) for sequence in range(len(faults))]
    order.shuffle(results)
    score = AnomalyScore("m", "2")
    score.add_readings("hub-1", readings[:stored])
    score.add_results("hub-1", results)
    score.add_readings("hub-1", readings[stored:])
    score.add_results("hub-1", [])
    assert score.results == len(faults)
    assert score.confirmed == sum(1 for s, f in enumerate(faults) if f is not None and flags[s])
    assert score.false_alarms == sum(1 for s, f in enumerate(faults) if f is None and flags[s])
    assert score.missed == sum(1 for s, f in enumerate(faults) if f is not None and not flags[s])


def test_the_view_shows_the_steps_the_fleet_and_the_detections() -> None:
    story = Story(
        header=["Console: http://x/console/"], hubs=[Hub("hub-1", presence="online")], components=[]
    )
    story.components = ["SensorHub"]
    story.hubs[0].components = {"edgewise.sim.SensorHub": "RUNNING"}
    story.step("Provisioning")
    story.step("Watching")
    story.score = AnomalyScore("m", "2")
    story.score.add_readings("hub-1", [reading(0, "spike"), reading(1)])
    story.score.add_results("hub-1", [result(0, True), result(1, False)])
    console = Console(width=160, record=True)
    console.print(render(story))
    text = console.export_text()
    assert "✓ Provisioning" in text
    assert "… Watching" in text
    for shown in ("hub-1", "online", "RUNNING"):
        assert shown in text
    assert "2 results scored: 1 injected faults detected, 0 false alarms" in text
    assert "the spike fault injected into it" in text
