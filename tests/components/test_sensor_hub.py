"""The simulated sensor hub component: what it publishes where, and how it treats failures and bad options."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from edgewise.components import RECIPES_DIR
from edgewise.components.sensor_hub.__main__ import SensorHub, parse_arguments
from edgewise.recipe import load_recipe


class Recorder:
    def __init__(self, *, fail_first: int = 0) -> None:
        self.local_messages: list[tuple[str, dict[str, object]]] = []
        self.cloud_messages: list[tuple[str, dict[str, object]]] = []
        self._fail_first = fail_first

    def local(self, topic: str, payload: dict[str, object]) -> None:
        if self._fail_first > 0:
            self._fail_first -= 1
            raise ConnectionError("IPC connection lost")
        self.local_messages.append((topic, payload))

    def cloud(self, topic: str, payload: bytes) -> None:
        self.cloud_messages.append((topic, json.loads(payload)))


def test_every_reading_goes_to_both_topics_with_the_thing_name_in_them() -> None:
    recorder = Recorder()
    args = parse_arguments(["--interval", "0.001", "--fault-rate", "0.2", "--seed", "4"])
    hub = SensorHub(
        recorder, thing="hub-7", local_topic=args.local_topic, iot_core_topic=args.iot_core_topic, count=50
    )
    assert hub.run(args.settings, threading.Event()) == 50
    assert {topic for topic, _ in recorder.local_messages} == {"sensors/hub-7/reading"}
    assert {topic for topic, _ in recorder.cloud_messages} == {"dt/hub-7/reading"}
    payloads = [payload for _, payload in recorder.local_messages]
    assert payloads == [payload for _, payload in recorder.cloud_messages]
    assert [payload["sequence"] for payload in payloads] == list(range(50))
    assert {payload["thing"] for payload in payloads} == {"hub-7"}
    assert {payload["anomaly"] for payload in payloads} == {0, 1}


def test_an_empty_topic_turns_that_destination_off() -> None:
    recorder = Recorder()
    args = parse_arguments(["--interval", "0.001", "--iot-core-topic", ""])
    hub = SensorHub(recorder, thing="hub-1", local_topic=args.local_topic, iot_core_topic="", count=3)
    hub.run(args.settings, threading.Event())
    assert len(recorder.local_messages) == 3
    assert recorder.cloud_messages == []


def test_a_failing_publish_is_logged_once_and_the_next_readings_still_go_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(fail_first=3)
    args = parse_arguments(["--interval", "0.001"])
    hub = SensorHub(recorder, thing="hub-1", local_topic="s/{thing}", iot_core_topic="", count=6)
    with caplog.at_level(logging.INFO, logger="edgewise.components.sensor_hub"):
        hub.run(args.settings, threading.Event())
    assert [payload["sequence"] for _, payload in recorder.local_messages] == [3, 4, 5]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("publish failed" in message for message in messages) == 1
    assert "publishing again" in messages


def test_a_stop_ends_the_series() -> None:
    stop = threading.Event()
    stop.set()
    args = parse_arguments(["--interval", "60"])
    hub = SensorHub(Recorder(), thing="hub-1", local_topic="s", iot_core_topic="", count=0)
    assert hub.run(args.settings, stop) == 1


@pytest.mark.parametrize(
    ("argv", "problem"),
    [(["--fault-rate", "2"], "fault_rate"), (["--interval", "0"], "interval_s"), (["--seed", "x"], "--seed")],
)
def test_bad_options_are_refused_naming_them(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(argv)
    assert problem in capsys.readouterr().err


def test_the_recipe_runs_the_module_with_its_configuration() -> None:
    recipe = load_recipe(RECIPES_DIR / "edgewise.sim.SensorHub-1.1.0.yaml")
    assert recipe.name == "edgewise.sim.SensorHub"
    run = recipe.raw["Manifests"][0]["Lifecycle"]["Run"]
    assert "-m edgewise.components.sensor_hub" in run
    for key in (
        "intervalSeconds",
        "faultRate",
        "driftAfter",
        "seed",
        "simulatedIntervalSeconds",
        "localTopic",
        "iotCoreTopic",
    ):
        assert f"{{configuration:/{key}}}" in run
