"""The jobs protocol's payloads: executions, notifications and the statusDetails a deployment reports."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol import jobs
from edgewise.protocol.jobs import STATUS_DETAIL_VALUE_MAX_LENGTH as MAX_DETAIL_LENGTH
from edgewise.protocol.jobs import JobsPayloadError
from edgewise.runtime.fleet.jobs import JobExecution, deployment_status_details, detail_value, parse_notify


def test_an_execution_is_read_with_its_document() -> None:
    execution = JobExecution.of(
        jobs.parse_execution(
            {
                "jobId": "job-1",
                "status": "QUEUED",
                "versionNumber": 1,
                "executionNumber": 2,
                "jobDocument": {"deploymentId": "d"},
            }
        )
    )

    assert (execution.job_id, execution.status, execution.version) == ("job-1", "QUEUED", 1)
    assert execution.key == "job-1#2"
    assert execution.document == {"deploymentId": "d"}


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"jobId": "job/1", "status": "QUEUED", "versionNumber": 1},
        {"jobId": "job-1", "status": "QUEUED", "versionNumber": True},
        {"jobId": "job-1", "status": "QUEUED", "versionNumber": 1, "executionNumber": "1"},
    ],
)
def test_a_malformed_execution_is_refused(value: object) -> None:
    with pytest.raises(JobsPayloadError):
        jobs.parse_execution(value)


def test_a_notification_lists_the_pending_executions_by_status() -> None:
    queued = [{"jobId": "b"}, {"jobId": "a", "executionNumber": 2}]
    payload = json.dumps(
        {"timestamp": 1, "jobs": {"QUEUED": queued, "IN_PROGRESS": [{"jobId": "a"}]}}
    ).encode()

    # A retry of job a (its second execution) is not the first one, which is in progress.
    assert parse_notify(payload) == {"QUEUED": ["b#1", "a#2"], "IN_PROGRESS": ["a#1"]}
    assert parse_notify(b'{"timestamp": 1, "jobs": {}}') == {}


@given(st.binary(max_size=200))
def test_any_notification_payload_is_read_or_ignored(payload: bytes) -> None:
    result = parse_notify(payload)
    assert result is None or all(isinstance(job, str) for ids in result.values() for job in ids)


def test_a_success_reports_only_its_detailed_status() -> None:
    assert deployment_status_details("SUCCESSFUL") == {"detailed-deployment-status": "SUCCESSFUL"}


def test_a_failure_reports_cause_and_error_types_within_the_service_limits() -> None:
    details = deployment_status_details(
        "FAILED_ROLLBACK_COMPLETE",
        cause="line one\nline two\t" + "x" * 3000,
        error_types=("COMPONENT_BROKEN",),
        error_stack=("first", "second"),
    )

    assert details["detailed-deployment-status"] == "FAILED_ROLLBACK_COMPLETE"
    assert details["deployment-failure-cause"].startswith("line one line two x")
    assert json.loads(details["deployment-error-types"]) == ["COMPONENT_BROKEN"]
    assert json.loads(details["deployment-error-stack"]) == ["first", "second"]
    assert all(1 <= len(value) <= MAX_DETAIL_LENGTH for value in details.values())


@given(st.text(max_size=3000))
def test_a_detail_value_never_holds_control_characters_or_exceeds_the_limit(text: str) -> None:
    value = detail_value(text)
    assert len(value) <= MAX_DETAIL_LENGTH
    assert not any(ord(char) < 0x20 or ord(char) == 0x7F for char in value)
