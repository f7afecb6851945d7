"""Running a rule's actions on its output: republish, store into telemetry, HTTP POST, and the error action.

Each action is prepared once per rule (:func:`prepare_action` parses its substitution templates) and run per
message by :func:`run_actions`: the actions of one message run concurrently, one failing never stops the
others, and when any failed the rule's error action gets one message in AWS's error shape (``ruleName``,
``topic``, ``cloudwatchTraceId``, ``clientId``, ``base64OriginalPayload``, ``failures``) listing them all.

- republish: ``topic`` after substitution (a leading ``$$`` becomes ``$``), at ``qos`` 0 or 1, through the
  worker's broker connection;
- telemetry: one record in ``stream`` with :func:`edgewise.cloud.telemetry.store_records`, its thing being the
  publisher's client id when that is a registered thing, else ``""``;
- http: a POST of the output to ``url`` with ``headers``, within 10 s, redirects not followed (a 3xx is a
  failure naming where it pointed), a 2xx answer is success; the answer's body is not read.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.errors import CloudError
from edgewise.cloud.registry.models import Thing
from edgewise.cloud.rules.evaluate import RuleMessage, RuleOutput, render_template
from edgewise.cloud.rules.schemas import RuleAction
from edgewise.cloud.rules.sql import Template, parse_template
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.errors import EdgewiseError
from edgewise.names import THING_NAME
from edgewise.topics import validate_topic

logger = logging.getLogger(__name__)

#: How long one HTTP action may take, connection included.
HTTP_TIMEOUT_SECONDS: Final = 10.0
_TELEMETRY_TOPIC_MAX_LENGTH: Final = 256
_ERROR_MESSAGE_MAX_LENGTH: Final = 1024

#: Publishes ``payload`` on a topic at a QoS; raises when the broker would refuse the packet.
Publisher = Callable[[str, bytes, int], None]


class RuleActionError(EdgewiseError):
    """An action that did not carry out its job for one message; ``action`` is AWS's name for its kind (e.g.
    ``RepublishAction``) and ``resource`` what it acted on (a topic, URL or stream)."""

    def __init__(self, action: str, resource: str, problem: str) -> None:
        super().__init__(f"{action} on {resource!r} failed: {problem}")
        self.action = action
        self.resource = resource
        self.problem = problem


@dataclass(frozen=True)
class ActionContext:
    """What actions need: the broker, the store and an HTTP client (not following redirects)."""

    publish: Publisher
    sessions: sessionmaker[Session]
    http: httpx.AsyncClient


@dataclass(frozen=True)
class PreparedRepublish:
    """A republish action with its topic template parsed."""

    topic: Template
    qos: int


@dataclass(frozen=True)
class PreparedTelemetry:
    """A telemetry action with its stream template parsed."""

    stream: Template


@dataclass(frozen=True)
class PreparedHttp:
    """An HTTP action with its URL and header templates parsed."""

    url: Template
    headers: tuple[tuple[str, Template], ...]


PreparedAction = PreparedRepublish | PreparedTelemetry | PreparedHttp
#: AWS's names of the action kinds, as error action messages name them.
_AWS_NAMES: Final[dict[type[PreparedAction], str]] = {
    PreparedRepublish: "RepublishAction",
    PreparedTelemetry: "TelemetryAction",
    PreparedHttp: "HttpAction",
}


def prepare_action(action: RuleAction) -> PreparedAction:
    """Parse ``action``'s substitution templates (already checked when the rule was stored).

    Raises:
        RuleSqlError: a template does not parse.
    """
    if action.republish is not None:
        return PreparedRepublish(parse_template(action.republish.topic, field="topic"), action.republish.qos)
    if action.telemetry is not None:
        return PreparedTelemetry(parse_template(action.telemetry.stream, field="stream"))
    assert action.http is not None
    headers = tuple(
        (header.key, parse_template(header.value, field=f"headers.{header.key}"))
        for header in action.http.headers
    )
    return PreparedHttp(parse_template(action.http.url, field="url"), headers)


def create_http_client() -> httpx.AsyncClient:
    """The HTTP client of HTTP actions: bounded in time, never following a redirect."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)


async def run_action(
    action: PreparedAction, output: RuleOutput, message: RuleMessage, context: ActionContext
) -> None:
    """Carry out ``action`` with ``output``.

    Raises:
        RuleActionError: it failed (the message says why).
    """
    if isinstance(action, PreparedRepublish):
        await _republish(action, output, message, context)
    elif isinstance(action, PreparedTelemetry):
        await _store(action, output, message, context)
    else:
        await _post(action, output, message, context)


async def _republish(
    action: PreparedRepublish, output: RuleOutput, message: RuleMessage, context: ActionContext
) -> None:
    topic = render_template(action.topic, message)
    # AWS writes a reserved topic as $$aws/...: a single $ would start a substitution.
    if topic.startswith("$$"):
        topic = topic[1:]
    try:
        validate_topic(topic)
        context.publish(topic, output.payload, action.qos)
    except (EdgewiseError, ValueError) as exc:
        raise RuleActionError("RepublishAction", topic, str(exc)) from exc


async def _store(
    action: PreparedTelemetry, output: RuleOutput, message: RuleMessage, context: ActionContext
) -> None:
    stream = render_template(action.stream, message)
    try:
        await asyncio.to_thread(_store_record, context.sessions, stream, output, message)
    except (CloudError, sa.exc.SQLAlchemyError) as exc:
        raise RuleActionError("TelemetryAction", stream, str(exc)) from exc


def _store_record(
    sessions: sessionmaker[Session], stream: str, output: RuleOutput, message: RuleMessage
) -> None:
    """Store one telemetry record. Blocks."""
    topic = message.topic if len(message.topic) <= _TELEMETRY_TOPIC_MAX_LENGTH else None
    with sessions() as session:
        thing = ""
        client_id = message.client_id
        if (
            client_id is not None
            and THING_NAME.fullmatch(client_id)
            and session.scalar(sa.select(Thing.id).where(Thing.name == client_id)) is not None
        ):
            thing = client_id
        record = TelemetryRecord(
            thing_name=thing,
            stream=stream,
            timestamp_ms=message.timestamp_ms,
            payload=output.payload,
            topic=topic,
        )
        store_records(session, [record])
        session.commit()


async def _post(
    action: PreparedHttp, output: RuleOutput, message: RuleMessage, context: ActionContext
) -> None:
    url = render_template(action.url, message)
    headers = {"content-type": "application/json"}
    headers.update((key, render_template(value, message)) for key, value in action.headers)
    try:
        async with context.http.stream("POST", url, content=output.payload, headers=headers) as response:
            status = response.status_code
            location = response.headers.get("location", "")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise RuleActionError("HttpAction", url, f"{type(exc).__name__}: {exc}") from exc
    if 300 <= status < 400:
        raise RuleActionError(
            "HttpAction", url, f"answered {status}, a redirect to {location!r} (not followed)"
        )
    if not 200 <= status < 300:
        raise RuleActionError("HttpAction", url, f"answered {status}")


def error_payload(rule_name: str, message: RuleMessage, failures: Sequence[RuleActionError]) -> bytes:
    """The message an error action receives: AWS's shape, one per rule and message, with every failure."""
    document = {
        "ruleName": rule_name,
        "topic": message.topic,
        "cloudwatchTraceId": str(uuid.uuid4()),
        "clientId": message.client_id or "",
        "base64OriginalPayload": base64.b64encode(message.payload).decode("ascii"),
        "failures": [
            {
                "failedAction": failure.action,
                "failedResource": failure.resource,
                "errorMessage": failure.problem[:_ERROR_MESSAGE_MAX_LENGTH],
            }
            for failure in failures
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ActionsOutcome:
    """What happened to one message's actions: the failures, and the error action's own failure if any."""

    failures: tuple[RuleActionError, ...]
    error_action_failure: RuleActionError | None = None


async def run_actions(
    rule_name: str,
    actions: Sequence[PreparedAction],
    error_action: PreparedAction | None,
    output: RuleOutput,
    message: RuleMessage,
    context: ActionContext,
) -> ActionsOutcome:
    """Run every action of one message concurrently, then the error action if any of them failed.

    Never raises for an action's failure (each is in the outcome); cancellation propagates.
    """
    results = await asyncio.gather(
        *(run_action(action, output, message, context) for action in actions), return_exceptions=True
    )
    failures: list[RuleActionError] = []
    for action, result in zip(actions, results, strict=True):
        if isinstance(result, RuleActionError):
            failures.append(result)
        elif isinstance(result, Exception):
            kind = _AWS_NAMES[type(action)]
            logger.error("rule-action-crashed rule=%s action=%s", rule_name, kind, exc_info=result)
            failures.append(RuleActionError(kind, "", f"unexpected {type(result).__name__}: {result}"))
        elif isinstance(result, BaseException):
            raise result
    if not failures or error_action is None:
        return ActionsOutcome(tuple(failures))
    report = RuleOutput(error_payload(rule_name, message, failures))
    try:
        await run_action(error_action, report, message, context)
    except RuleActionError as exc:
        return ActionsOutcome(tuple(failures), error_action_failure=exc)
    return ActionsOutcome(tuple(failures))
