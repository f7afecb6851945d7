"""The runtime on either event loop: asyncio's own (the default) and uvloop (``EDGEWISE_EVENT_LOOP=uvloop``).

One runtime per loop starts a component (a subprocess with its output read through pipes), answers the CLI
over its Unix socket and stops cleanly on SIGTERM (a signal handler on the loop).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runtime_process import running, write_recipe

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_runtime_runs_a_component_and_stops_cleanly_on_either_loop(
    loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEWISE_EVENT_LOOP", loop)
    recipes = tmp_path / "recipes"
    write_recipe(
        recipes,
        "test.Hello",
        "1.0.0",
        """
        Manifests:
          - Lifecycle:
              Run: echo "hello from $PPID"
        """,
    )
    with running(tmp_path / "root", "--log-level", "DEBUG") as runtime:
        deployment = runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Hello": "1.0.0"})
        assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
        runtime.wait_state("test.Hello", "FINISHED")
        assert "hello from" in runtime.log("test.Hello")

        assert runtime.stop() == 0
    assert f"edgewise.runtime.eventloop: event loop: {loop}" in runtime.paths.runtime_log.read_text()
