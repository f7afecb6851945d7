"""The Uninstall step against a real runtime: it runs when a deployment removes a component."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, write_recipe

pytestmark = pytest.mark.integration


def test_removing_a_component_runs_its_uninstall_and_a_failure_does_not_fail_the_deployment(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    for name, code in (("test.Clean", 0), ("test.Messy", 7)):
        write_recipe(
            recipes,
            name,
            "1.2.3",
            f"""\
            Manifests:
              - Lifecycle:
                  Run: sleep 60
                  Shutdown: echo {name} shutdown >> {events}
                  Uninstall: echo {name} uninstall $GREENGRASS_COMPONENT_VERSION $AWS_IOT_THING_NAME >> {events}; exit {code}
            """,
        )
    deployed = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Clean": "1.2.3", "test.Messy": "1.2.3"})
    )
    assert deployed["status"] == "SUCCEEDED"
    assert not events.exists()

    removed = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentsToRemove=["test.Clean", "test.Messy"])
    )

    assert removed["status"] == "SUCCEEDED"
    assert "test.Clean" not in runtime.states()
    assert "test.Messy" not in runtime.states()
    for name in ("test.Clean", "test.Messy"):
        mine = [line for line in events.read_text().splitlines() if line.startswith(name)]
        assert mine == [f"{name} shutdown", f"{name} uninstall 1.2.3 edgewise-device"]
    assert "Uninstall failed: Uninstall exited with code 7" in runtime.log("test.Messy")
    assert "component-uninstall-failed: test.Messy" in runtime.paths.runtime_log.read_text()


def test_stopping_the_runtime_does_not_uninstall(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "uninstalled"
    write_recipe(
        recipes,
        "test.Stays",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: sleep 60
              Uninstall: touch {marker}
        """,
    )
    assert (
        runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Stays": "1.0.0"}))[
            "status"
        ]
        == "SUCCEEDED"
    )

    assert runtime.stop() == 0

    assert not marker.exists()
