"""The Jobs MQTT protocol's shapes: which topic is which operation, request checks naming the field, and
hypothesis fuzzing of topics and payloads (every input is either understood or refused with AWS's codes)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edgewise.cloud.jobs.models import ExecutionStatus
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.protocol import jobs
from edgewise.protocol.jobs import JobsRejection, Operation

J = "$aws/things/pump-1/jobs"


@pytest.mark.parametrize(
    ("topic", "operation"),
    [
        (f"{J}/get", Operation("get_pending", "pump-1")),
        (f"{J}/start-next", Operation("start_next", "pump-1")),
        (f"{J}/fw-2/get", Operation("describe", "pump-1", None, "fw-2")),
        (f"{J}/$next/get", Operation("describe", "pump-1", None, "$next")),
        (f"{J}/get/get", Operation("describe", "pump-1", None, "get")),
        (f"{J}/fw-2/update", Operation("update", "pump-1", None, "fw-2")),
        (
            f"{J}/$next/namespace-aws-gg-deployment/get",
            Operation("describe", "pump-1", "aws-gg-deployment", "$next"),
        ),
        (
            f"{J}/d-1/namespace-aws-gg-deployment/update",
            Operation("update", "pump-1", "aws-gg-deployment", "d-1"),
        ),
        (f"{J}/get/accepted", None),
        (f"{J}/fw-2/update/rejected", None),
        (f"{J}/notify", None),
        (f"{J}/notify-next", None),
        (f"{J}/notify-namespace-aws-gg-deployment", None),
    ],
)
def test_topics_name_operations_and_replies_are_ignored(topic: str, operation: Operation | None) -> None:
    assert jobs.parse_request_topic(topic) == operation


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        (f"{J}/list", "InvalidTopic"),
        (f"{J}", "InvalidTopic"),
        (f"{J}/a/b/c/d", "InvalidTopic"),
        (f"{J}/fw-2/delete", "InvalidTopic"),
        (f"{J}/fw-2/namespace-/get", "InvalidTopic"),
        (f"{J}/fw-2/namespace-a.b/get", "InvalidTopic"),
        (f"{J}/fw-2/other/get", "InvalidTopic"),
        (f"{J}/bad.id/get", "InvalidTopic"),
        (f"{J}/$next/update", "InvalidRequest"),
        ("$aws/things/bad thing/jobs/get", "InvalidTopic"),
    ],
)
def test_topics_that_map_to_no_operation_are_refused(topic: str, code: str) -> None:
    with pytest.raises(JobsRejection) as caught:
        jobs.parse_request_topic(topic)
    assert caught.value.code == code


def test_requests_are_read_with_their_defaults() -> None:
    assert jobs.parse_request("get_pending", b"") == jobs.Request()
    assert jobs.parse_request("describe", b'{"clientToken": "c1", "executionNumber": 2.0}') == jobs.Request(
        client_token="c1", execution_number=2
    )
    update = jobs.parse_request(
        "update",
        json.dumps(
            {
                "status": "FAILED",
                "statusDetails": {"reason": "disk full"},
                "expectedVersion": 3,
                "includeJobExecutionState": True,
                "stepTimeoutInMinutes": -1,
                "futureField": "ignored",
            }
        ).encode(),
    )
    assert update == jobs.Request(
        status=ExecutionStatus.FAILED,
        status_details={"reason": "disk full"},
        expected_version=3,
        include_job_execution_state=True,
        step_timeout_in_minutes=-1,
    )


@pytest.mark.parametrize(
    ("kind", "payload", "code", "field"),
    [
        ("get_pending", b"{nope", "InvalidJson", None),
        ("get_pending", b"\xff\xfe", "InvalidJson", None),
        ("get_pending", b"[1]", "InvalidJson", None),
        ("get_pending", b'{"clientToken": 7}', "InvalidRequest", "clientToken"),
        ("get_pending", json.dumps({"clientToken": "x" * 65}).encode(), "InvalidRequest", "clientToken"),
        ("update", b"{}", "InvalidRequest", "status"),
        ("update", b'{"status": "QUEUED"}', "InvalidRequest", "status"),
        ("update", b'{"status": "DONE"}', "InvalidRequest", "status"),
        ("update", b'{"status": "SUCCEEDED", "expectedVersion": true}', "InvalidRequest", "expectedVersion"),
        ("update", b'{"status": "SUCCEEDED", "expectedVersion": "1"}', "InvalidRequest", "expectedVersion"),
        (
            "update",
            b'{"status": "SUCCEEDED", "includeJobDocument": 1}',
            "InvalidRequest",
            "includeJobDocument",
        ),
        (
            "update",
            b'{"status": "SUCCEEDED", "stepTimeoutInMinutes": 0}',
            "InvalidRequest",
            "stepTimeoutInMinutes",
        ),
        (
            "update",
            b'{"status": "SUCCEEDED", "statusDetails": {"a b": "c"}}',
            "InvalidRequest",
            "statusDetails",
        ),
        (
            "update",
            b'{"status": "SUCCEEDED", "statusDetails": {"a": ""}}',
            "InvalidRequest",
            "statusDetails.a",
        ),
        (
            "update",
            b'{"status": "SUCCEEDED", "statusDetails": {"a": 1}}',
            "InvalidRequest",
            "statusDetails.a",
        ),
        (
            "update",
            b'{"status": "SUCCEEDED", "statusDetails": {"a": "x\\ny"}}',
            "InvalidRequest",
            "statusDetails.a",
        ),
        ("update", b'{"status": "SUCCEEDED", "statusDetails": ["a"]}', "InvalidRequest", "statusDetails"),
        ("start_next", b'{"stepTimeoutInMinutes": -1}', "InvalidRequest", "stepTimeoutInMinutes"),
        ("start_next", b'{"stepTimeoutInMinutes": 10081}', "InvalidRequest", "stepTimeoutInMinutes"),
        ("describe", b'{"executionNumber": 0}', "InvalidRequest", "executionNumber"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    kind: jobs.OperationKind, payload: bytes, code: str, field: str | None
) -> None:
    with pytest.raises(JobsRejection) as caught:
        jobs.parse_request(kind, payload)
    assert caught.value.code == code
    if field is not None:
        assert f"Field {field!r} is invalid" in str(caught.value)


def test_rejections_echo_the_client_token_and_carry_the_execution_state() -> None:
    state = {"status": "SUCCEEDED", "statusDetails": {}, "versionNumber": 3}
    rejected = JobsRejection("VersionMismatch", "stale", execution_state=state)
    assert rejected.payload(client_token="c-9", timestamp=17) == {
        "code": "VersionMismatch",
        "message": "stale",
        "timestamp": 17,
        "clientToken": "c-9",
        "executionState": state,
    }
    assert jobs.client_token_of(b'{"clientToken": "c-9", "status": 5}') == "c-9"
    assert jobs.client_token_of(b'{"clientToken": 5}') is None
    assert jobs.client_token_of(b"garbage") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
request_fields = st.fixed_dictionaries(
    {},
    optional={
        "clientToken": json_values | st.text(max_size=70),
        "status": st.sampled_from([status.value for status in ExecutionStatus]) | json_values,
        "statusDetails": st.dictionaries(
            st.text(max_size=130), st.text(max_size=30) | json_values, max_size=3
        )
        | json_values,
        "expectedVersion": st.integers() | json_values,
        "executionNumber": st.integers() | json_values,
        "includeJobExecutionState": st.booleans() | json_values,
        "includeJobDocument": st.booleans() | json_values,
        "stepTimeoutInMinutes": st.integers(min_value=-2, max_value=10_082) | json_values,
    },
)
kinds = st.sampled_from(["get_pending", "start_next", "describe", "update"])


@given(kind=kinds, body=request_fields)
def test_any_json_request_is_read_or_refused_as_invalid(
    kind: jobs.OperationKind, body: dict[str, Any]
) -> None:
    try:
        request = jobs.parse_request(kind, json.dumps(body).encode())
    except JobsRejection as exc:
        refused = exc
    else:
        assert request.client_token is None or isinstance(request.client_token, str)
        assert kind != "update" or request.status in jobs.DEVICE_STATUSES
        return
    assert refused.code == "InvalidRequest"
    assert str(refused).startswith("Field '")


@given(kind=kinds, payload=st.binary(max_size=64))
def test_any_bytes_are_read_or_refused(kind: jobs.OperationKind, payload: bytes) -> None:
    code = "accepted"
    try:
        jobs.parse_request(kind, payload)
    except JobsRejection as exc:
        code = exc.code
    assert code in ("accepted", "InvalidJson", "InvalidRequest")


@given(levels=st.lists(st.text(alphabet="ab$-_.+ get/updatnxsp", max_size=12), min_size=1, max_size=5))
def test_any_topic_under_jobs_is_understood_ignored_or_refused(levels: list[str]) -> None:
    topic = "/".join([J, *levels])
    try:
        operation = jobs.parse_request_topic(topic)
    except JobsRejection as exc:
        refused = exc
    else:
        assert operation is None or operation.thing_name == "pump-1"
        return
    assert refused.code in ("InvalidTopic", "InvalidRequest")


@given(
    body=st.fixed_dictionaries(
        {"jobId": st.text(max_size=70), "targets": st.lists(st.text(max_size=30), max_size=3)},
        optional={
            "document": json_values,
            "description": json_values,
            "namespaceId": json_values,
            "targetSelection": st.sampled_from(["SNAPSHOT", "CONTINUOUS"]) | json_values,
            "jobExecutionsRolloutConfig": st.fixed_dictionaries(
                {}, optional={"maximumPerMinute": json_values, "exponentialRate": json_values}
            )
            | json_values,
            "abortConfig": st.fixed_dictionaries({"criteriaList": st.lists(json_values, max_size=2)})
            | json_values,
            "timeoutConfig": st.fixed_dictionaries({"inProgressTimeoutInMinutes": json_values}) | json_values,
            "jobExecutionsRetryConfig": st.fixed_dictionaries(
                {"criteriaList": st.lists(json_values, max_size=2)}
            )
            | json_values,
        },
    )
)
def test_any_create_job_body_is_validated_or_refused_by_field(body: dict[str, Any]) -> None:
    try:
        spec = JobCreate.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        refused = exc
    else:
        assert 1 <= len(spec.job_id) <= 64
        assert isinstance(spec.document, dict)
        return
    assert all(error["loc"] for error in refused.errors())
