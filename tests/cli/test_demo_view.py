"""The fleet demo's view: when a fleet has converged or cannot, Flaky's crashes from its log, and the rendering."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from edgewise.cli.demo_view import DEMO_COMPONENTS, FLAKY_CRASH, DeviceView, FleetView, flaky_crashes, render

COMPONENTS = list(DEMO_COMPONENTS)
ALL_RUNNING = dict.fromkeys(COMPONENTS, "RUNNING")


def execution(status: str, **details: str) -> dict[str, Any]:
    return {"thingName": "t", "status": status, "statusDetails": details, "executionNumber": 1}


def device(thing: str, status: str | None, components: dict[str, str]) -> DeviceView:
    return DeviceView(
        thing,
        None if status is None else execution(status),
        "online",
        "HEALTHY",
        components,
        flaky_crashes=0,
        flaky_crash_age=None,
    )


def fleet(*devices: DeviceView, status: str = "ACTIVE") -> FleetView:
    return FleetView({"deploymentId": "0554ff09-aaaa", "deploymentStatus": status}, list(devices), "", 1.0)


def test_a_fleet_converges_once_every_device_succeeded_and_reports_every_component_running() -> None:
    assert fleet(device("a", "SUCCEEDED", ALL_RUNNING), device("b", "SUCCEEDED", ALL_RUNNING)).converged(
        COMPONENTS
    )
    flaky_restarting = {**ALL_RUNNING, "com.edgewise.demo.Flaky": "ERRORED"}
    assert not fleet(
        device("a", "SUCCEEDED", ALL_RUNNING), device("b", "SUCCEEDED", flaky_restarting)
    ).converged(COMPONENTS)
    assert not fleet(device("a", "SUCCEEDED", ALL_RUNNING), device("b", None, {})).converged(COMPONENTS)
    assert not fleet(device("a", "IN_PROGRESS", ALL_RUNNING)).converged(COMPONENTS)


def test_a_failed_device_or_a_stopped_deployment_means_the_fleet_cannot_converge() -> None:
    failed = DeviceView(
        "b",
        execution("FAILED", **{"detailed-deployment-status": "FAILED_ROLLBACK_COMPLETE"}),
        "online",
        "HEALTHY",
        {},
        0,
        None,
    )
    assert (
        fleet(device("a", "SUCCEEDED", ALL_RUNNING), failed).failure() == "b: FAILED FAILED_ROLLBACK_COMPLETE"
    )
    assert fleet(device("a", "QUEUED", {}), status="CANCELED").failure() == "the deployment is CANCELED"
    assert fleet(device("a", "IN_PROGRESS", {}), device("b", None, {})).failure() is None


def test_flaky_crashes_are_counted_from_its_log_with_the_age_of_the_last(tmp_path: Path) -> None:
    log = tmp_path / "com.edgewise.demo.Flaky.log"
    last = datetime.datetime(2026, 1, 1, 0, 5, tzinfo=datetime.UTC).timestamp()
    assert flaky_crashes(log, now=last) == (0, None)
    log.write_text(
        f"2026-01-01T00:00:00.000Z [WARN] (Run) {FLAKY_CRASH}\n"
        "2026-01-01T00:00:00.001Z [INFO] (lifecycle) state RUNNING -> ERRORED: Run exited with code 1\n"
        f"2026-01-01T00:05:00.000Z [WARN] (Run) {FLAKY_CRASH}\n"
    )
    assert flaky_crashes(log, now=last + 30) == (2, 30.0)
    log.write_text(f"garbled [WARN] (Run) {FLAKY_CRASH}\n")
    assert flaky_crashes(log, now=last) == (1, None)


def test_the_view_renders_devices_the_rollout_has_not_reached_yet() -> None:
    console = Console(width=120, record=True)
    view = fleet(device("greenhouse-1", "SUCCEEDED", ALL_RUNNING), device("greenhouse-2", None, {}))
    console.print(render(view, group="greenhouses", components=COMPONENTS, header=["Edgewise demo"]))
    text = console.export_text()
    assert "Rollout of deployment 0554ff09 to thing group greenhouses: ACTIVE" in text
    assert "1/2 devices done" in text
    assert "waiting for its stage" in text
    assert "SensorSimulator" in text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400))
def test_any_flaky_log_gives_a_count_and_maybe_an_age(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "flaky.log"
        log.write_text(text, encoding="utf-8")
        count, age = flaky_crashes(log, now=2_000_000_000.0)
        assert count == sum(FLAKY_CRASH in line for line in log.read_text(encoding="utf-8").splitlines())
        assert age is None or age >= 0
