"""``edgewise job ...`` end to end against a running ``edgewise cloud up``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edgewise.cli.main import app
from tests.support.cloud_process import CloudProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("jobs-cli") / "data") as process:
        process.wait_ready()
        for name in ("cli-1", "cli-2", "cli-3"):
            assert run(process, "thing", "create", name).exit_code == 0
        assert run(process, "group", "create", "cli-group").exit_code == 0
        for name in ("cli-2", "cli-3"):
            assert run(process, "group", "add-thing", "cli-group", name).exit_code == 0
        yield process


def run(cloud: CloudProcess, *args: str) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.admin_token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(app, [*args, "--api", cloud.api_url], env=env)


def ok(cloud: CloudProcess, *args: str) -> Any:
    result = run(cloud, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "firmware.json"
    path.write_text(json.dumps({"operation": "firmware", "url": "https://example/fw-3.bin"}))
    return path


def test_create_with_every_configuration_then_describe_list_and_executions(
    cloud: CloudProcess, document: Path, tmp_path: Path
) -> None:
    rollout = tmp_path / "rollout.json"
    rollout.write_text(json.dumps({"maximumPerMinute": 1}))
    abort = [
        {
            "failureType": "FAILED",
            "action": "CANCEL",
            "thresholdPercentage": 50,
            "minNumberOfExecutedThings": 1,
        }
    ]
    created = ok(
        cloud,
        "job",
        "create",
        "--job-id",
        "cli-fw",
        "--targets",
        "cli-1,cli-group",
        "--document",
        str(document),
        "--rollout",
        str(rollout),
        "--abort",
        json.dumps(abort),
        "--timeout-minutes",
        "15",
        "--retries",
        '{"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 2}]}',
        "--description",
        "firmware 3",
    )
    assert created["jobExecutionsRolloutConfig"]["maximumPerMinute"] == 1
    assert created["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 50
    assert created["timeoutConfig"] == {"inProgressTimeoutInMinutes": 15}
    assert created["jobProcessDetails"]["numberOfQueuedThings"] == 1
    assert created["jobProcessDetails"]["numberOfPlannedThings"] == 2
    assert ok(cloud, "job", "describe", "cli-fw")["document"] == {
        "operation": "firmware",
        "url": "https://example/fw-3.bin",
    }
    assert "cli-fw" in [job["jobId"] for job in ok(cloud, "job", "list", "--status", "IN_PROGRESS")]
    [execution] = ok(cloud, "job", "executions", "cli-fw")
    assert (execution["thingName"], execution["status"]) == ("cli-1", "QUEUED")
    table = run(cloud, "job", "describe", "cli-fw")
    assert table.exit_code == 0, table.stderr
    assert "Not yet notified" in table.stdout
    assert "firmware 3" in table.stdout


def test_cancel_watch_and_delete(cloud: CloudProcess, document: Path) -> None:
    ok(
        cloud,
        "job",
        "create",
        "--job-id",
        "cli-cancel",
        "--targets",
        "cli-group",
        "--document",
        str(document),
        "--continuous",
        "--namespace",
        "ops",
    )
    refused = run(cloud, "job", "delete", "cli-cancel")
    assert refused.exit_code == 1
    assert "give force" in " ".join(refused.stderr.split())
    cancelled = run(
        cloud, "job", "cancel", "cli-cancel", "--reason-code", "NOT_NEEDED", "--comment", "changed plans"
    )
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "Job cli-cancel is CANCELED" in cancelled.stdout
    watched = ok(cloud, "job", "describe", "cli-cancel", "--watch", "--interval", "0.2")
    assert (watched["status"], watched["reasonCode"]) == ("CANCELED", "NOT_NEEDED")
    assert watched["jobProcessDetails"]["numberOfCanceledThings"] == 2
    live = run(cloud, "job", "describe", "cli-cancel", "--watch", "--interval", "0.2")
    assert live.exit_code == 0, live.stderr
    assert "2/2 things done" in live.stdout
    assert [e["status"] for e in ok(cloud, "job", "executions", "cli-cancel", "--status", "CANCELED")] == [
        "CANCELED",
        "CANCELED",
    ]
    assert [job["jobId"] for job in ok(cloud, "job", "list", "--namespace", "ops")] == ["cli-cancel"]
    deleted = run(cloud, "job", "delete", "cli-cancel")
    assert deleted.exit_code == 0, deleted.stderr
    assert "Deleted job cli-cancel" in deleted.stdout


def test_bad_options_are_reported_without_a_request(
    cloud: CloudProcess, tmp_path: Path, document: Path
) -> None:
    missing = run(
        cloud, "job", "create", "--job-id", "x", "--targets", "cli-1", "--document", str(tmp_path / "none")
    )
    assert missing.exit_code == 1
    assert "--document: cannot read" in missing.stderr
    bad = run(
        cloud,
        "job",
        "create",
        "--job-id",
        "x",
        "--targets",
        "cli-1",
        "--document",
        str(document),
        "--rollout",
        "{oops",
    )
    assert bad.exit_code == 1
    assert "--rollout: not JSON" in bad.stderr
    refused = run(
        cloud,
        "job",
        "create",
        "--job-id",
        "x",
        "--targets",
        "cli-1",
        "--document",
        str(document),
        "--timeout-minutes",
        "0",
    )
    assert refused.exit_code == 1
    assert "inProgressTimeoutInMinutes" in refused.stderr
    assert run(cloud, "job", "describe", "x").exit_code == 1


def test_secret_values_in_a_job_document_show_only_as_redacted(cloud: CloudProcess, tmp_path: Path) -> None:
    secret = {"arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", "versionId": "v1"}
    document = tmp_path / "deployment.json"
    document.write_text(
        json.dumps(
            {
                "components": {
                    "aws.greengrass.SecretManager": {
                        "configurationUpdate": {
                            "merge": {"secrets": [{**secret, "secretString": "pa55-w0rd"}]}
                        }
                    }
                }
            }
        )
    )
    created = run(
        cloud, "job", "create", "--job-id", "with-secret", "--targets", "cli-1", "--document", str(document)
    )
    described = run(cloud, "job", "describe", "with-secret", "--json")
    for result in (created, described):
        assert result.exit_code == 0, result.stderr
        assert "pa55-w0rd" not in result.stdout + result.stderr
    shown = json.loads(described.stdout)["document"]["components"]["aws.greengrass.SecretManager"]
    assert shown["configurationUpdate"]["merge"]["secrets"] == [{**secret, "secretString": "<redacted>"}]
