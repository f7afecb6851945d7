"""PutComponentMetric against a real runtime: authorization, validation, and the metrics file it keeps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.ipc.services.harness import ComponentClient, connect, deploy
from tests.support.runtime_process import write_recipe
from tests.support.waiting import eventually

from edgewise.runtime.deployment import DeploymentStatus
from edgewise.runtime.ipc.services.metrics import MetricsService
from edgewise.runtime.kernel import Kernel
from edgewise.runtime.metrics import load_metrics, metrics_file

REPORTER = "test.Reporter"


@pytest.fixture
async def reporter(kernel: Kernel, recipes: Path) -> AsyncIterator[ComponentClient]:
    write_recipe(
        recipes,
        REPORTER,
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            accessControl:
              aws.greengrass.ipc.componentmetric:
                test.Reporter:metrics:1:
                  operations: ["aws.greengrass#PutComponentMetric"]
                  resources: ["requests*", "latency"]
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    record = await deploy(kernel, recipes, {REPORTER: "1.0.0"})
    assert record.status is DeploymentStatus.SUCCEEDED, record.failure_cause
    client = await connect(kernel, REPORTER)
    yield client
    await client.close()


def _metric(name: str, value: Any, unit: Any = "COUNT") -> dict[str, Any]:
    return {"name": name, "unit": unit, "value": value}


def _written(kernel: Kernel) -> list[dict[str, Any]]:
    path = metrics_file(kernel.paths.root)
    return [summary.to_json() for summary in load_metrics(path)]


async def test_metrics_are_summarized_and_written_for_the_cli(
    kernel: Kernel, reporter: ComponentClient
) -> None:
    for value in (3, 1, 8):
        reply = await reporter.call("PutComponentMetric", {"metrics": [_metric("requests", value)]})
        assert reply.error is None
        assert reply.body == {}
    await reporter.call("PutComponentMetric", {"metrics": [_metric("latency", 0.25, "SECONDS")]})

    written = await eventually(
        lambda: len(_written(kernel)) == 2 and _written(kernel), what="the metrics file"
    )

    latency, requests = written
    assert requests["component"] == REPORTER
    assert (requests["latest"], requests["count"], requests["sum"], requests["min"], requests["max"]) == (
        8,
        3,
        12,
        1,
        8,
    )
    assert (latency["name"], latency["unit"], latency["latest"]) == ("latency", "SECONDS", 0.25)


async def test_the_metrics_file_starts_empty_on_each_run(kernel: Kernel) -> None:
    assert json.loads(metrics_file(kernel.paths.root).read_text()) == {"metrics": []}


async def test_metrics_without_a_covering_policy_are_refused_and_nothing_is_recorded(
    kernel: Kernel, reporter: ComponentClient
) -> None:
    reply = await reporter.call(
        "PutComponentMetric", {"metrics": [_metric("requests", 1), _metric("secret", 1)]}
    )

    assert reply.error == "UnauthorizedError"
    assert "secret" in reply.message
    assert _recorded(kernel) == 0


async def test_a_component_without_any_metric_policy_is_refused(
    kernel: Kernel, reporter: ComponentClient
) -> None:
    other = await connect(kernel, "test.NoPolicy")

    reply = await other.call("PutComponentMetric", {"metrics": [_metric("requests", 1)]})

    assert reply.error == "UnauthorizedError"
    assert "test.NoPolicy" in reply.message
    await other.close()


async def test_stream_manager_may_report_metrics_without_a_policy(kernel: Kernel) -> None:
    client = await connect(kernel, "aws.greengrass.StreamManager")

    reply = await client.call("PutComponentMetric", {"metrics": [_metric("streams", 2)]})

    assert reply.error is None
    assert _recorded(kernel) == 1
    await client.close()


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        (None, "metrics"),
        ([], "metrics"),
        ({"name": "requests"}, "metrics"),
        (["requests"], "metrics[0]"),
        ([_metric("", 1)], "metrics[0].name"),
        ([_metric("requests" + "x" * 30, 1)], "metrics[0].name"),
        ([_metric("requests", 1, "LITRES")], "metrics[0].unit"),
        ([_metric("requests", 1, ["COUNT"])], "metrics[0].unit"),
        ([_metric("requests", -1)], "metrics[0].value"),
        ([_metric("requests", "1")], "metrics[0].value"),
        ([_metric("requests", True)], "metrics[0].value"),
        ([_metric("requests", float("nan"))], "metrics[0].value"),
        ([_metric("requests", 1), _metric("requests", None)], "metrics[1].value"),
    ],
)
async def test_a_malformed_metric_names_the_field(
    kernel: Kernel, reporter: ComponentClient, metrics: Any, field: str
) -> None:
    reply = await reporter.call("PutComponentMetric", {"metrics": metrics})

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith(f"{field}:")
    assert _recorded(kernel) == 0


def _recorded(kernel: Kernel) -> int:
    """How many measurements the runtime's recorder has taken."""
    service = next(service for service in kernel.services if isinstance(service, MetricsService))
    return service.recorder.statistics().measurements
