"""API shapes of routing rules, in AWS IoT's ``CreateTopicRule`` / ``GetTopicRule`` shapes (camelCase on the wire).

A rule is its name plus a ``TopicRulePayload``: ``sql``, ``description``, ``actions`` (a list of one-key objects
such as ``{"republish": {"topic": "...", "qos": 1}}``), ``errorAction``, ``ruleDisabled`` and
``awsIotSqlVersion``. Request shapes are strict and refuse unknown fields; an action other than ``republish``,
``telemetry`` or ``http`` is refused with its name, never ignored. The SQL and every substitution template are
parsed while the request is read, so a rule that would fail later is refused with the position of its problem.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from edgewise.cloud.rules.sql import SQL_MAX_LENGTH, TEMPLATE_MAX_LENGTH, RuleSqlError, parse_template

#: AWS IoT rule names.
RULE_NAME_PATTERN: Final = r"^[a-zA-Z0-9_]+$"
RULE_NAME_MAX_LENGTH: Final = 128
DESCRIPTION_MAX_LENGTH: Final = 2028
#: AWS IoT's limit of actions per rule.
MAX_ACTIONS: Final = 10
MAX_HEADERS: Final = 100
HEADER_KEY_MAX_LENGTH: Final = 256
STREAM_MAX_LENGTH: Final = 256
SQL_VERSIONS: Final = ("2015-10-08", "2016-03-23", "beta")
DEFAULT_SQL_VERSION: Final = "2016-03-23"
SUPPORTED_ACTIONS: Final = ("republish", "telemetry", "http")

RuleName = Annotated[str, Field(min_length=1, max_length=RULE_NAME_MAX_LENGTH, pattern=RULE_NAME_PATTERN)]
TemplateText = Annotated[str, Field(min_length=1, max_length=TEMPLATE_MAX_LENGTH)]


def _checked_template(value: str, field: str) -> str:
    try:
        parse_template(value, field=field)
    except RuleSqlError as exc:
        raise ValueError(
            f"substitution template, column {exc.column} (offset {exc.offset}): {exc.sql_problem}"
        ) from None
    return value


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RepublishAction(_Request):
    """Publish the rule's output on ``topic`` (a substitution template; ``$$`` writes a leading ``$``)."""

    topic: TemplateText
    qos: Literal[0, 1] = 0
    #: Accepted so AWS rule documents load as they are; Edgewise needs no role.
    role_arn: str | None = Field(default=None, max_length=2048)

    @field_validator("topic")
    @classmethod
    def _topic_template(cls, value: str) -> str:
        return _checked_template(value, "topic")


class TelemetryAction(_Request):
    """Store the rule's output in the telemetry stream ``stream`` (a substitution template)."""

    stream: Annotated[str, Field(min_length=1, max_length=STREAM_MAX_LENGTH)]

    @field_validator("stream")
    @classmethod
    def _stream_template(cls, value: str) -> str:
        return _checked_template(value, "stream")


class HttpHeader(_Request):
    """One header of an HTTP action; its value is a substitution template."""

    key: Annotated[
        str, Field(min_length=1, max_length=HEADER_KEY_MAX_LENGTH, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    ]
    value: Annotated[str, Field(max_length=TEMPLATE_MAX_LENGTH)]

    @field_validator("value")
    @classmethod
    def _value_template(cls, value: str) -> str:
        return _checked_template(value, "value")


class HttpAction(_Request):
    """POST the rule's output to ``url`` (http or https; a substitution template) with ``headers``.

    ``confirmationUrl`` is accepted so AWS rule documents load as they are; Edgewise sends no confirmation
    request (the URL is trusted because only an admin may create rules).
    """

    url: TemplateText
    headers: Annotated[list[HttpHeader], Field(max_length=MAX_HEADERS)] = []
    confirmation_url: str | None = Field(default=None, max_length=2048)

    @field_validator("url")
    @classmethod
    def _url_template(cls, value: str) -> str:
        checked = _checked_template(value, "url")
        if not checked.lower().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return checked


class RuleAction(_Request):
    """One action: exactly one of ``republish``, ``telemetry`` or ``http``."""

    republish: RepublishAction | None = None
    telemetry: TelemetryAction | None = None
    http: HttpAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_known_action(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = sorted(key for key in data if key not in SUPPORTED_ACTIONS)
        if unknown:
            raise ValueError(
                f"action {unknown[0]!r} is not supported by Edgewise (supported: {', '.join(SUPPORTED_ACTIONS)})"
            )
        if len(data) != 1:
            raise ValueError(
                f"an action names exactly one of {', '.join(SUPPORTED_ACTIONS)}, not {len(data)}"
            )
        return data

    @property
    def kind(self) -> str:
        """``republish``, ``telemetry`` or ``http``."""
        return next(name for name in SUPPORTED_ACTIONS if getattr(self, name) is not None)


class TopicRulePayload(_Request):
    """AWS's ``TopicRulePayload``: what a rule does."""

    sql: Annotated[str, Field(min_length=1, max_length=SQL_MAX_LENGTH)]
    description: Annotated[str, Field(max_length=DESCRIPTION_MAX_LENGTH)] = ""
    actions: Annotated[list[RuleAction], Field(max_length=MAX_ACTIONS)] = []
    error_action: RuleAction | None = None
    rule_disabled: bool = False
    aws_iot_sql_version: Literal["2015-10-08", "2016-03-23", "beta"] = DEFAULT_SQL_VERSION


class RuleCreate(_Request):
    """``CreateTopicRule``: a name and its payload."""

    rule_name: RuleName
    topic_rule_payload: TopicRulePayload


class RulePublic(_Shape):
    """A rule as ``GetTopicRule`` shows it, with Edgewise's counters."""

    rule_name: str
    sql: str
    description: str
    actions: list[dict[str, Any]]
    error_action: dict[str, Any] | None
    rule_disabled: bool
    aws_iot_sql_version: str
    created_at: datetime.datetime
    last_modified_at: datetime.datetime
    matched: int
    actions_failed: int
    last_error: str | None


class RulesPublic(_Shape):
    """A page of rules, by name."""

    data: list[RulePublic]
    count: int
