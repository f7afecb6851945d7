"""AWS IoT Jobs messages: what the device builds the cloud parses, what the cloud builds the device parses, the
topics both sides name, and the shapes each side refuses, naming the field."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.protocol import jobs
from edgewise.protocol.jobs import (
    Execution,
    ExecutionReply,
    ExecutionsChanged,
    ExecutionState,
    ExecutionStatus,
    ExecutionSummary,
    JobsPayloadError,
    JobsRejection,
    NextExecutionChanged,
    Notification,
    Operation,
    PendingExecutions,
    Rejected,
    Reply,
    Request,
    UpdateReply,
)
from edgewise.runtime.cloudlink import CloudMessage
from edgewise.runtime.fleet.jobs import JobExecution, JobsClient, RejectedRequest
from edgewise.topics import filter_matches

things = st.from_regex(r"[a-zA-Z0-9:_-]{1,40}", fullmatch=True)
job_ids = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
namespaces = st.none() | st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)
tokens = st.none() | st.text(max_size=jobs.CLIENT_TOKEN_MAX_LENGTH)
numbers = st.integers(min_value=0, max_value=2**63 - 1)
optional_numbers = st.none() | numbers
detail_keys = st.from_regex(r"[a-zA-Z0-9:_-]{1,128}", fullmatch=True)
detail_values = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32)] + ["\x7f"]
    ),
    min_size=1,
    max_size=40,
)
details = st.dictionaries(detail_keys, detail_values, max_size=3)
statuses = st.sampled_from([status.value for status in ExecutionStatus])
documents = st.none() | st.dictionaries(
    st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=3
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def operations(draw: st.DrawFn) -> Operation:
    kind = draw(st.sampled_from(["get_pending", "start_next", "describe", "update"]))
    thing = draw(things)
    if kind == "get_pending":
        return Operation(kind, thing)
    if kind == "start_next":
        return Operation(kind, thing, draw(namespaces))
    job_id = draw(st.just(jobs.NEXT) | job_ids) if kind == "describe" else draw(job_ids)
    return Operation(kind, thing, draw(namespaces), job_id)


@st.composite
def requests(draw: st.DrawFn) -> tuple[jobs.OperationKind, Request]:
    """A request of a kind with only the fields that kind takes, each within its range."""
    kind: jobs.OperationKind = draw(st.sampled_from(["get_pending", "start_next", "describe", "update"]))
    values: dict[str, Any] = {"client_token": draw(tokens)}
    choices: dict[str, st.SearchStrategy[Any]] = {
        "status": st.sampled_from(sorted(jobs.DEVICE_STATUSES)),
        "status_details": st.none() | details,
        "expected_version": optional_numbers,
        "execution_number": st.none() | st.integers(min_value=1, max_value=2**63 - 1),
        "include_job_execution_state": st.booleans(),
        "include_job_document": st.none() | st.booleans(),
        "step_timeout_in_minutes": st.none()
        | st.integers(min_value=1, max_value=jobs.STEP_TIMEOUT_MAX_MINUTES)
        | (st.just(-1) if kind == "update" else st.none()),
    }
    for name in jobs.REQUEST_FIELDS[kind]:
        values[name] = draw(choices[name])
    return kind, Request(**values)


summaries = st.builds(
    ExecutionSummary,
    job_ids,
    queued_at=optional_numbers,
    last_updated_at=optional_numbers,
    version_number=optional_numbers,
    execution_number=optional_numbers,
    started_at=optional_numbers,
)
executions = st.builds(
    Execution,
    job_ids,
    statuses,
    numbers,
    execution_number=optional_numbers,
    document=documents,
    thing_name=st.none() | things,
    status_details=st.none() | details,
    queued_at=optional_numbers,
    last_updated_at=optional_numbers,
    started_at=optional_numbers,
)
states = st.builds(ExecutionState, statuses, st.none() | details, optional_numbers)


def wire(body: dict[str, Any]) -> bytes:
    """``body`` as the cloud's worker publishes it."""
    return json.dumps(body, separators=(",", ":")).encode()


# -- topics -----------------------------------------------------------------------------------------------


@given(operations())
def test_a_request_topic_names_its_operation_on_both_sides(operation: Operation) -> None:
    topic = jobs.request_topic(operation)

    assert jobs.parse_request_topic(topic) == operation
    assert jobs.parse_topic(topic) == operation


@given(operations(), st.sampled_from(["accepted", "rejected"]), namespaces)
def test_the_clouds_filters_take_every_request_and_no_reply_or_notification(
    operation: Operation, outcome: jobs.Outcome, namespace: str | None
) -> None:
    def taken(topic: str) -> bool:
        return any(filter_matches(topic_filter, topic) for topic_filter in jobs.REQUEST_FILTERS)

    request = jobs.request_topic(operation)
    assert taken(request)
    assert not taken(jobs.reply_topic(request, outcome))
    assert not taken(jobs.notify_topic(operation.thing_name, namespace))
    assert not taken(jobs.notify_next_topic(operation.thing_name))


@given(operations(), st.sampled_from(["accepted", "rejected"]))
def test_a_reply_topic_names_the_request_it_answers(operation: Operation, outcome: jobs.Outcome) -> None:
    topic = jobs.reply_topic(jobs.request_topic(operation), outcome)

    assert jobs.parse_topic(topic) == Reply(operation, outcome)
    assert jobs.parse_request_topic(topic) is None


@given(things, namespaces)
def test_notification_topics_name_the_thing_and_namespace(thing: str, namespace: str | None) -> None:
    assert jobs.parse_topic(jobs.notify_topic(thing, namespace)) == Notification("notify", thing, namespace)
    assert jobs.parse_topic(jobs.notify_next_topic(thing)) == Notification("notify_next", thing)
    assert jobs.parse_request_topic(jobs.notify_topic(thing, namespace)) is None


def test_topics_are_the_ones_aws_iot_uses() -> None:
    J = "$aws/things/pump-1/jobs"
    assert jobs.request_topic(Operation("get_pending", "pump-1")) == f"{J}/get"
    assert jobs.request_topic(Operation("start_next", "pump-1")) == f"{J}/start-next"
    # Edgewise's own: AWS IoT documents no namespaced start-next topic.
    assert (
        jobs.request_topic(Operation("start_next", "pump-1", "aws-gg-deployment"))
        == f"{J}/namespace-aws-gg-deployment/start-next"
    )
    assert jobs.request_topic(Operation("describe", "pump-1", None, "$next")) == f"{J}/$next/get"
    assert (
        jobs.request_topic(Operation("update", "pump-1", "aws-gg-deployment", "d-1"))
        == f"{J}/d-1/namespace-aws-gg-deployment/update"
    )
    assert (
        jobs.reply_filter(Operation("describe", "pump-1", "aws-gg-deployment", "+"))
        == f"{J}/+/namespace-aws-gg-deployment/get/+"
    )
    assert jobs.notify_topic("pump-1", None) == f"{J}/notify"
    assert jobs.notify_topic("pump-1", "aws-gg-deployment") == f"{J}/notify-namespace-aws-gg-deployment"
    assert jobs.notify_next_topic("pump-1") == f"{J}/notify-next"


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/pump-1/jobs/notify-later",
        "$aws/things/pump-1/jobs/notify-namespace-a.b",
        "$aws/things/pump-1/jobs/accepted",
        "$aws/things/pump-1/jobs/bad.id/get/accepted",
        "$aws/things/pump-1/jobs/$next/update/rejected",
        "$aws/things/pump-1/jobs/namespace-a.b/start-next/accepted",
        "$aws/things/bad thing/jobs/notify",
        "$aws/things/pump-1/shadow/get",
    ],
)
def test_reply_and_notification_topics_that_name_nothing_are_refused(topic: str) -> None:
    with pytest.raises(JobsRejection) as caught:
        jobs.parse_topic(topic)
    assert caught.value.code in ("InvalidTopic", "InvalidRequest")


# -- requests: the device builds, the cloud parses --------------------------------------------------------


@given(requests())
def test_what_the_device_sends_the_cloud_reads_back(request: tuple[jobs.OperationKind, Request]) -> None:
    kind, sent = request

    assert jobs.parse_request(kind, jobs.request_payload(kind, sent)) == sent


def test_the_device_requests_keep_their_bytes() -> None:
    describe = Request(client_token="t1", include_job_document=True)
    update = Request(
        client_token="t2",
        status=ExecutionStatus.FAILED,
        status_details={"detailed-deployment-status": "FAILED_NO_STATE_CHANGE"},
        expected_version=0,
        execution_number=2,
    )

    assert jobs.request_payload("describe", describe) == b'{"clientToken": "t1", "includeJobDocument": true}'
    assert jobs.request_payload("update", update) == (
        b'{"status": "FAILED", "clientToken": "t2", "statusDetails": {"detailed-deployment-status":'
        b' "FAILED_NO_STATE_CHANGE"}, "expectedVersion": 0, "executionNumber": 2}'
    )


@pytest.mark.parametrize(
    ("kind", "request_", "field_name"),
    [
        ("update", Request(client_token="t"), "status"),
        ("describe", Request(status=ExecutionStatus.SUCCEEDED), "status"),
        ("get_pending", Request(include_job_document=True), "includeJobDocument"),
        ("start_next", Request(expected_version=1), "expectedVersion"),
    ],
)
def test_the_device_cannot_build_a_request_the_operation_does_not_take(
    kind: jobs.OperationKind, request_: Request, field_name: str
) -> None:
    with pytest.raises(ValueError, match=f"'{field_name}'"):
        jobs.request_payload(kind, request_)


@given(
    kind=st.sampled_from(["get_pending", "start_next", "describe", "update"]),
    body=st.fixed_dictionaries(
        {},
        optional={
            "clientToken": json_values,
            "status": statuses | json_values,
            "statusDetails": st.dictionaries(st.text(max_size=10), json_values, max_size=2) | json_values,
            "expectedVersion": json_values,
            "executionNumber": json_values,
            "includeJobExecutionState": json_values,
            "includeJobDocument": json_values,
            "stepTimeoutInMinutes": st.integers(-2, 10_082) | json_values,
        },
    ),
)
def test_a_request_the_cloud_reads_is_one_the_device_could_have_sent(
    kind: jobs.OperationKind, body: dict[str, Any]
) -> None:
    try:
        read = jobs.parse_request(kind, json.dumps(body).encode())
    except JobsRejection as exc:
        refused = exc
    else:
        assert jobs.parse_request(kind, jobs.request_payload(kind, read)) == read
        return
    assert refused.code == "InvalidRequest"
    assert str(refused).startswith("Field '")


# -- replies and notifications: the cloud builds, the device parses ---------------------------------------


@given(st.lists(summaries, max_size=3), st.lists(summaries, max_size=3), numbers, tokens)
def test_pending_executions_round_trip(
    in_progress: list[ExecutionSummary], queued: list[ExecutionSummary], timestamp: int, token: str | None
) -> None:
    body = PendingExecutions(tuple(in_progress), tuple(queued)).payload()
    sent = wire(jobs.accepted_payload(body, timestamp=timestamp, client_token=token))

    assert jobs.parse_pending_executions(sent) == PendingExecutions(
        tuple(in_progress), tuple(queued), timestamp=timestamp, client_token=token
    )


@given(st.none() | executions, numbers, tokens)
def test_an_execution_reply_round_trips(
    execution: Execution | None, timestamp: int, token: str | None
) -> None:
    sent = wire(
        jobs.accepted_payload(ExecutionReply(execution).payload(), timestamp=timestamp, client_token=token)
    )

    assert jobs.parse_execution_reply(sent) == ExecutionReply(
        execution, timestamp=timestamp, client_token=token
    )


@given(st.none() | states, documents, numbers, tokens)
def test_an_update_reply_round_trips(
    state: ExecutionState | None, document: dict[str, Any] | None, timestamp: int, token: str | None
) -> None:
    body = UpdateReply(state, document).payload()
    sent = wire(jobs.accepted_payload(body, timestamp=timestamp, client_token=token))

    assert jobs.parse_update_reply(sent) == UpdateReply(
        state, document, timestamp=timestamp, client_token=token
    )


@given(st.sampled_from(["InvalidRequest", "VersionMismatch", "InternalError"]), st.text(), st.none() | states)
def test_a_rejection_the_cloud_raises_the_device_reads(
    code: str, message: str, state: ExecutionState | None
) -> None:
    raised = JobsRejection(code, message, execution_state=None if state is None else state.payload())
    sent = wire(raised.payload(client_token="c-1", timestamp=9))

    assert jobs.parse_rejected(sent) == Rejected(
        code, message, timestamp=9, client_token="c-1", execution_state=state
    )


@given(numbers, st.dictionaries(statuses, st.lists(summaries, max_size=3).map(tuple), max_size=3))
def test_executions_changed_round_trips(
    timestamp: int, lists: dict[str, tuple[ExecutionSummary, ...]]
) -> None:
    changed = ExecutionsChanged(timestamp, lists)

    assert jobs.parse_executions_changed(wire(changed.payload())) == changed


@given(numbers, st.none() | executions)
def test_next_execution_changed_round_trips(timestamp: int, execution: Execution | None) -> None:
    changed = NextExecutionChanged(timestamp, execution)

    assert jobs.parse_next_execution_changed(wire(changed.payload())) == changed


def test_a_document_is_replaced_where_the_answer_carries_it() -> None:
    def opened(document: Any, job_id: str) -> Any:
        return {"opened": document, "for": job_id}

    execution = ExecutionReply(Execution("j1", "QUEUED", 1, document={"a": 1})).payload()
    assert jobs.with_document(execution, None, opened)["execution"]["jobDocument"] == {
        "opened": {"a": 1},
        "for": "j1",
    }
    update = UpdateReply(None, {"b": 2}).payload()
    assert jobs.with_document(update, "j2", opened) == {"jobDocument": {"opened": {"b": 2}, "for": "j2"}}
    assert jobs.with_document(update, None, opened) == update


@pytest.mark.parametrize(
    ("parse", "payload", "field_name"),
    [
        (
            jobs.parse_execution_reply,
            b'{"execution": {"jobId": "j", "status": "QUEUED"}}',
            "execution.versionNumber",
        ),
        (
            jobs.parse_execution_reply,
            b'{"execution": {"jobId": "j/1", "status": "QUEUED", "versionNumber": 1}}',
            "execution.jobId",
        ),
        (
            jobs.parse_execution_reply,
            b'{"execution": {"jobId": "j", "status": "QUEUED", "versionNumber": true}}',
            "execution.versionNumber",
        ),
        (jobs.parse_execution_reply, b'{"execution": []}', "execution"),
        (jobs.parse_update_reply, b'{"executionState": {"status": 3}}', "executionState.status"),
        (jobs.parse_update_reply, b'{"clientToken": 5}', "clientToken"),
        (jobs.parse_rejected, b'{"message": "no code"}', "code"),
        (
            jobs.parse_rejected,
            b'{"code": "VersionMismatch", "executionState": {"status": "QUEUED", "statusDetails": {"a": 1}}}',
            "executionState.statusDetails.a",
        ),
        (jobs.parse_pending_executions, b'{"queuedJobs": [{"jobId": 7}]}', "queuedJobs[0].jobId"),
        (jobs.parse_executions_changed, b'{"timestamp": 1}', "jobs"),
        (jobs.parse_executions_changed, b'{"timestamp": 1, "jobs": {"QUEUED": {}}}', "jobs.QUEUED"),
        (jobs.parse_next_execution_changed, b'{"timestamp": "1"}', "timestamp"),
    ],
)
def test_bad_replies_are_refused_naming_the_field(
    parse: Callable[[bytes], object], payload: bytes, field_name: str
) -> None:
    with pytest.raises(JobsPayloadError) as caught:
        parse(payload)
    assert caught.value.field == field_name
    assert f"Field {field_name!r} is invalid" in str(caught.value)


@pytest.mark.parametrize(
    "parse",
    [
        jobs.parse_pending_executions,
        jobs.parse_execution_reply,
        jobs.parse_update_reply,
        jobs.parse_rejected,
        jobs.parse_executions_changed,
        jobs.parse_next_execution_changed,
    ],
)
@given(payload=st.binary(max_size=80) | json_values.map(lambda value: json.dumps(value).encode()))
def test_any_reply_payload_is_read_or_refused(parse: Callable[[bytes], object], payload: bytes) -> None:
    with contextlib.suppress(JobsPayloadError):
        parse(payload)


# -- the device's client against the cloud's parsers ------------------------------------------------------


@dataclass
class FakeLink:
    """The cloud link as the jobs client uses it: what it publishes, and whom it hands messages to."""

    connected: bool = True
    published: list[tuple[str, bytes]] = field(default_factory=list)
    handlers: list[tuple[str, Callable[[CloudMessage], None]]] = field(default_factory=list)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0) -> None:
        self.published.append((topic, payload))

    async def subscribe(
        self, topic_filter: str, handler: Callable[[CloudMessage], None], *, qos: int = 0
    ) -> Any:
        self.handlers.append((topic_filter, handler))
        return self

    def unsubscribe(self) -> None:
        pass

    def deliver(self, topic: str, payload: bytes) -> None:
        for topic_filter, handler in self.handlers:
            if filter_matches(topic_filter, topic):
                handler(CloudMessage(topic, payload))


@dataclass
class Received:
    notified: list[dict[str, list[str]]] = field(default_factory=list)
    started: list[JobExecution | None] = field(default_factory=list)
    executions: list[tuple[str, JobExecution | None]] = field(default_factory=list)
    rejected: list[RejectedRequest] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)


async def open_client() -> tuple[FakeLink, JobsClient, Received]:
    link, received = FakeLink(), Received()
    client = JobsClient(
        link,  # type: ignore[arg-type]
        "dev-1",
        on_notify=received.notified.append,
        on_started=received.started.append,
        on_execution=lambda job_id, execution: received.executions.append((job_id, execution)),
        on_rejected=received.rejected.append,
        on_updated=lambda job_id, token: received.updated.append((job_id, token)),
    )
    await client.start()
    return link, client, received


async def test_the_cloud_reads_the_device_clients_requests() -> None:
    link, client, _ = await open_client()
    await client.start_next()
    await client.describe()
    execution = JobExecution("d-1", "IN_PROGRESS", 3, 2, None)
    token = await client.update(execution, "FAILED", {"detailed-deployment-status": "FAILED_NO_STATE_CHANGE"})

    (start_topic, start_payload), (describe_topic, describe_payload), (update_topic, update_payload) = (
        link.published
    )
    assert jobs.parse_request_topic(start_topic) == Operation("start_next", "dev-1", "aws-gg-deployment")
    assert jobs.parse_request("start_next", start_payload).client_token is not None
    assert jobs.parse_request_topic(describe_topic) == Operation(
        "describe", "dev-1", "aws-gg-deployment", "$next"
    )
    assert jobs.parse_request("describe", describe_payload).include_job_document is True
    assert jobs.parse_request_topic(update_topic) == Operation("update", "dev-1", "aws-gg-deployment", "d-1")
    assert jobs.parse_request("update", update_payload) == Request(
        client_token=token,
        status=ExecutionStatus.FAILED,
        status_details={"detailed-deployment-status": "FAILED_NO_STATE_CHANGE"},
        execution_number=2,
    )
    assert [topic_filter for topic_filter, _ in link.handlers] == [
        "$aws/things/dev-1/jobs/notify-namespace-aws-gg-deployment",
        "$aws/things/dev-1/jobs/namespace-aws-gg-deployment/start-next/+",
        "$aws/things/dev-1/jobs/+/namespace-aws-gg-deployment/get/+",
        "$aws/things/dev-1/jobs/+/namespace-aws-gg-deployment/update/+",
    ]


async def test_the_device_client_reads_the_clouds_answers() -> None:
    link, _, received = await open_client()
    J = "$aws/things/dev-1/jobs"
    describe = jobs.request_topic(Operation("describe", "dev-1", "aws-gg-deployment", "$next"))
    start_next = jobs.request_topic(Operation("start_next", "dev-1", "aws-gg-deployment"))
    update = jobs.request_topic(Operation("update", "dev-1", "aws-gg-deployment", "d-1"))
    execution = Execution(
        "d-1", "QUEUED", 1, execution_number=1, document={"deploymentId": "x"}, thing_name="dev-1"
    )
    summary = ExecutionSummary("d-1", queued_at=5, version_number=1, execution_number=1)

    link.deliver(
        jobs.notify_topic("dev-1", "aws-gg-deployment"),
        wire(ExecutionsChanged(7, {"QUEUED": (summary,)}).payload()),
    )
    link.deliver(jobs.notify_topic("dev-1", None), wire(ExecutionsChanged(7, {}).payload()))
    link.deliver(
        jobs.reply_topic(describe, "accepted"),
        wire(jobs.accepted_payload(ExecutionReply(execution).payload(), timestamp=8, client_token="c1")),
    )
    link.deliver(
        jobs.reply_topic(start_next, "accepted"),
        wire(jobs.accepted_payload(ExecutionReply().payload(), timestamp=8, client_token="c0")),
    )
    link.deliver(
        jobs.reply_topic(start_next, "rejected"),
        wire(JobsRejection("RequestThrottled", "slow").payload(client_token="c4", timestamp=9)),
    )
    link.deliver(
        jobs.reply_topic(update, "accepted"),
        wire(jobs.accepted_payload(UpdateReply().payload(), timestamp=8, client_token="c2")),
    )
    rejection = JobsRejection(
        "InvalidStateTransition", "final", execution_state=ExecutionState("FAILED", {}, 2).payload()
    )
    link.deliver(
        jobs.reply_topic(update, "rejected"), wire(rejection.payload(client_token="c3", timestamp=9))
    )
    link.deliver(f"{J}/d-1/namespace-aws-gg-deployment/get/accepted", b'{"execution": {"jobId": "d-1"}}')
    link.deliver(f"{J}/d-1/namespace-aws-gg-deployment/update/accepted", b"not json")

    assert received.notified == [{"QUEUED": ["d-1#1"]}]
    assert received.executions == [
        ("$next", JobExecution("d-1", "QUEUED", 1, 1, {"deploymentId": "x"})),
        ("d-1", None),
    ]
    assert received.started == [None]
    assert received.updated == [("d-1", "c2")]
    assert received.rejected == [
        RejectedRequest("$next", "start-next", "RequestThrottled", "slow", "c4"),
        RejectedRequest("d-1", "update", "InvalidStateTransition", "final", "c3", execution_status="FAILED"),
    ]
