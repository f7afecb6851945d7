"""Jobs over REST: AWS's CreateJob shape, describe with process details, listings, cancel and delete, role
checks, and bad input answered 422/404/409 naming the field with nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from edgewise.cloud.app import FirstStart
from tests.cloud.conftest import ApiClientFactory

API = "/api/v1"


@pytest.fixture
async def with_things(admin_api: httpx.AsyncClient) -> httpx.AsyncClient:
    for name in ("pump-1", "pump-2", "pump-3"):
        assert (await admin_api.post(f"{API}/things", json={"thingName": name})).status_code == 201
    assert (await admin_api.post(f"{API}/thing-groups", json={"thingGroupName": "pumps"})).status_code == 201
    for name in ("pump-2", "pump-3"):
        assert (await admin_api.put(f"{API}/thing-groups/pumps/things/{name}")).status_code == 204
    return admin_api


def job(**fields: Any) -> dict[str, Any]:
    return {"jobId": "fw-1", "targets": ["pump-1"], "document": {"url": "https://example/fw.bin"}, **fields}


async def test_create_describe_and_list_a_job(with_things: httpx.AsyncClient) -> None:
    api = with_things
    created = await api.post(
        f"{API}/jobs",
        json=job(
            targets=["pump-1", "arn:aws:iot:eu-west-1:123456789012:thinggroup/pumps"],
            document='{"url": "https://example/fw.bin"}',
            description="firmware 1.2",
            jobExecutionsRolloutConfig={"maximumPerMinute": 2},
            abortConfig={
                "criteriaList": [
                    {
                        "failureType": "ALL",
                        "action": "CANCEL",
                        "thresholdPercentage": 25.5,
                        "minNumberOfExecutedThings": 2,
                    }
                ]
            },
            timeoutConfig={"inProgressTimeoutInMinutes": 30},
            jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]},
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["jobArn"] == "arn:aws:iot:edgewise:edgewise:job/fw-1"
    assert body["status"] == "IN_PROGRESS"
    assert body["targets"] == [
        "arn:aws:iot:edgewise:edgewise:thing/pump-1",
        "arn:aws:iot:edgewise:edgewise:thinggroup/pumps",
    ]
    assert body["document"] == {"url": "https://example/fw.bin"}
    assert body["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 2, "exponentialRate": None}
    assert body["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    details = body["jobProcessDetails"]
    assert (details["numberOfQueuedThings"], details["numberOfPlannedThings"]) == (2, 1)
    described = (await api.get(f"{API}/jobs/fw-1")).json()
    assert described == body
    listing = (await api.get(f"{API}/jobs", params={"status": "IN_PROGRESS"})).json()
    assert [item["jobId"] for item in listing["data"]] == ["fw-1"]
    assert "document" not in listing["data"][0]
    executions = (await api.get(f"{API}/jobs/fw-1/things")).json()
    assert [(e["thingName"], e["status"]) for e in executions["data"]] == [
        ("pump-1", "QUEUED"),
        ("pump-2", "QUEUED"),
    ]
    of_thing = (await api.get(f"{API}/things/pump-2/jobs")).json()
    assert [(e["jobId"], e["executionNumber"], e["thingArn"]) for e in of_thing["data"]] == [
        ("fw-1", 1, "arn:aws:iot:edgewise:edgewise:thing/pump-2")
    ]


async def test_cancel_then_delete(with_things: httpx.AsyncClient) -> None:
    api = with_things
    assert (await api.post(f"{API}/jobs", json=job(targets=["pumps"]))).status_code == 201
    refused = await api.delete(f"{API}/jobs/fw-1")
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    cancelled = await api.post(f"{API}/jobs/fw-1/cancel", json={"reasonCode": "BAD_IMAGE", "comment": "oops"})
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert (body["status"], body["reasonCode"], body["comment"], body["forceCanceled"]) == (
        "CANCELED",
        "BAD_IMAGE",
        "oops",
        False,
    )
    assert body["jobProcessDetails"]["numberOfCanceledThings"] == 2
    again = await api.post(f"{API}/jobs/fw-1/cancel")
    assert again.status_code == 409
    assert (await api.post(f"{API}/jobs/fw-1/cancel", json={"force": True})).json()["forceCanceled"] is True
    assert (await api.delete(f"{API}/jobs/fw-1")).status_code == 204
    gone = await api.get(f"{API}/jobs/fw-1")
    assert gone.json() == {"code": "not_found", "message": "Job 'fw-1' does not exist"}


async def test_a_running_job_is_deleted_with_force(with_things: httpx.AsyncClient) -> None:
    assert (await with_things.post(f"{API}/jobs", json=job())).status_code == 201
    assert (await with_things.delete(f"{API}/jobs/fw-1", params={"force": "true"})).status_code == 204
    assert (await with_things.get(f"{API}/jobs")).json()["count"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"jobId": "bad id"}, "'jobId'"),
        ({"targets": "pump-1"}, "'targets'"),
        ({"targets": []}, "'targets'"),
        ({"document": [1]}, "'document'"),
        ({"document": "{"}, "'document'"),
        ({"namespaceId": "a/b"}, "'namespaceId'"),
        ({"targetSelection": "ALWAYS"}, "'targetSelection'"),
        (
            {"jobExecutionsRolloutConfig": {"maximumPerMinute": 0}},
            "'jobExecutionsRolloutConfig.maximumPerMinute'",
        ),
        (
            {"timeoutConfig": {"inProgressTimeoutInMinutes": True}},
            "'timeoutConfig.inProgressTimeoutInMinutes'",
        ),
        ({"abortConfig": {"criteriaList": []}}, "'abortConfig.criteriaList'"),
        (
            {
                "jobExecutionsRetryConfig": {
                    "criteriaList": [{"failureType": "REJECTED", "numberOfRetries": 1}]
                }
            },
            "failureType",
        ),
        ({"extra": 1}, "'extra'"),
    ],
)
async def test_bad_jobs_are_422_naming_the_field_and_nothing_is_stored(
    with_things: httpx.AsyncClient, fields: dict[str, Any], field: str
) -> None:
    response = await with_things.post(f"{API}/jobs", json=job(**fields))
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["message"]
    assert (await with_things.get(f"{API}/jobs")).json()["count"] == 0


@pytest.mark.parametrize(
    ("targets", "status", "message"),
    [
        (["nobody"], 404, "Thing or thing group 'nobody' does not exist"),
        (["arn:aws:iot:::thinggroup/nobody"], 404, "Thing group 'nobody' does not exist"),
        (["arn:aws:sqs:::queue"], 422, "Field 'targets[0]' is invalid"),
    ],
)
async def test_unknown_targets_are_refused(
    with_things: httpx.AsyncClient, targets: list[str], status: int, message: str
) -> None:
    response = await with_things.post(f"{API}/jobs", json=job(targets=targets))
    assert response.status_code == status
    assert message in response.json()["message"]
    assert (await with_things.get(f"{API}/jobs")).json()["count"] == 0


async def test_duplicate_ids_bad_paths_and_filters_are_refused(with_things: httpx.AsyncClient) -> None:
    api = with_things
    assert (await api.post(f"{API}/jobs", json=job())).status_code == 201
    duplicate = await api.post(f"{API}/jobs", json=job(targets=["pump-2"]))
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "already_exists")
    assert (await api.get(f"{API}/jobs/fw-1/things")).json()["count"] == 1
    assert (await api.get(f"{API}/jobs/bad%20id")).status_code == 422
    assert (await api.get(f"{API}/jobs", params={"status": "RUNNING"})).status_code == 422
    assert (await api.get(f"{API}/jobs/fw-1/things", params={"status": "DONE"})).status_code == 422
    assert (await api.get(f"{API}/jobs", params={"colour": "red"})).status_code == 422
    cancel = await api.post(f"{API}/jobs/fw-1/cancel", json={"reasonCode": "lower case"})
    assert (cancel.status_code, "'reasonCode'" in cancel.json()["message"]) == (422, True)
    assert (await api.get(f"{API}/jobs/fw-1")).json()["status"] == "IN_PROGRESS"
    assert (await api.get(f"{API}/jobs/nope/things")).status_code == 404


async def test_reads_need_a_token_and_writes_the_operator_role(
    with_things: httpx.AsyncClient, api_client: ApiClientFactory, first_start: FirstStart
) -> None:
    viewer = await with_things.post(f"{API}/tokens", json={"name": "viewer", "role": "read-only"})
    assert viewer.status_code == 201, viewer.text
    async with api_client(viewer.json()["token"]) as reader:
        assert (await reader.get(f"{API}/jobs")).status_code == 200
        assert (await reader.post(f"{API}/jobs", json=job())).status_code == 403
    async with api_client(None) as anonymous:
        assert (await anonymous.get(f"{API}/jobs")).status_code == 401
