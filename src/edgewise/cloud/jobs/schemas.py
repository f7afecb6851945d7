"""API shapes of jobs (camelCase on the wire, AWS IoT's CreateJob, CancelJob and DescribeJob shapes).

Request shapes are strict (no type coercion) and refuse unknown fields. :class:`JobCreate` is also the Python
API's job specification (see :func:`edgewise.cloud.jobs.service.create_job`): building one validates every
field's shape; the service then checks what needs the store (the targets exist, the job id is free).
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from edgewise.cloud.jobs import rules
from edgewise.cloud.jobs.models import ExecutionStatus, JobStatus, TargetSelection


def _integral_number(value: object) -> object:
    # JSON has one number type: 3.0 is a valid 3, while "3" must stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JobId = Annotated[str, Field(min_length=1, max_length=rules.JOB_ID_MAX_LENGTH, pattern=rules.JOB_ID_PATTERN)]
NamespaceId = Annotated[
    str, Field(min_length=1, max_length=rules.NAMESPACE_MAX_LENGTH, pattern=rules.NAMESPACE_PATTERN)
]
Description = Annotated[
    str, Field(max_length=rules.DESCRIPTION_MAX_LENGTH, pattern=rules.DESCRIPTION_PATTERN)
]
Target = Annotated[str, Field(min_length=1, max_length=rules.TARGET_MAX_LENGTH)]
# Constraints before the validator, so that the OpenAPI schema states them as minimum and maximum.
PerMinute = Annotated[int, Field(ge=1, le=rules.MAX_PER_MINUTE), BeforeValidator(_integral_number)]
Positive = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(_integral_number)]
TimeoutMinutes = Annotated[
    int, Field(ge=1, le=rules.IN_PROGRESS_TIMEOUT_MAX_MINUTES), BeforeValidator(_integral_number)
]
Retries = Annotated[int, Field(ge=0, le=rules.MAX_RETRIES), BeforeValidator(_integral_number)]
AbortFailureType = Literal["FAILED", "REJECTED", "TIMED_OUT", "ALL"]
RetryFailureType = Literal["FAILED", "TIMED_OUT", "ALL"]


def _has_decimals(value: float, decimals: int) -> bool:
    return round(value, decimals) == value


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class RateIncreaseCriteria(_Request):
    """When an exponential rollout multiplies its rate: after every N notified or N succeeded things."""

    number_of_notified_things: Positive | None = None
    number_of_succeeded_things: Positive | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RateIncreaseCriteria:
        if (self.number_of_notified_things is None) == (self.number_of_succeeded_things is None):
            raise ValueError("give exactly one of numberOfNotifiedThings and numberOfSucceededThings")
        return self


class ExponentialRolloutRate(_Request):
    """A rollout rate that starts at ``baseRatePerMinute`` and is multiplied by ``incrementFactor``."""

    base_rate_per_minute: PerMinute
    increment_factor: float = Field(ge=rules.INCREMENT_FACTOR_MIN, le=rules.INCREMENT_FACTOR_MAX)
    rate_increase_criteria: RateIncreaseCriteria

    @field_validator("increment_factor")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        if not _has_decimals(value, 1):
            raise ValueError("has at most one digit after the decimal point")
        return value


class RolloutConfig(_Request):
    """How fast executions are created (AWS ``jobExecutionsRolloutConfig``); at most 1000 a minute."""

    maximum_per_minute: PerMinute | None = None
    exponential_rate: ExponentialRolloutRate | None = None

    @model_validator(mode="after")
    def _base_within_maximum(self) -> RolloutConfig:
        if (
            self.exponential_rate is not None
            and self.maximum_per_minute is not None
            and self.exponential_rate.base_rate_per_minute > self.maximum_per_minute
        ):
            raise ValueError("exponentialRate.baseRatePerMinute is above maximumPerMinute")
        return self


class AbortCriteria(_Request):
    """Cancel the job once at least ``minNumberOfExecutedThings`` things were notified and at least
    ``thresholdPercentage`` % of them ended with ``failureType``."""

    failure_type: AbortFailureType
    action: Literal["CANCEL"]
    threshold_percentage: float = Field(ge=0, le=100)
    min_number_of_executed_things: Positive

    @field_validator("threshold_percentage")
    @classmethod
    def _two_decimals(cls, value: float) -> float:
        if not _has_decimals(value, 2):
            raise ValueError("has at most two digits after the decimal point")
        return value


class AbortConfig(_Request):
    """When to abort the job (AWS ``abortConfig``)."""

    criteria_list: list[AbortCriteria] = Field(min_length=1, max_length=4)

    @field_validator("criteria_list")
    @classmethod
    def _distinct(cls, criteria: list[AbortCriteria]) -> list[AbortCriteria]:
        types = [criterion.failure_type for criterion in criteria]
        if len(set(types)) != len(types):
            raise ValueError("names a failureType more than once")
        return criteria


class TimeoutConfig(_Request):
    """How long an execution may stay IN_PROGRESS before it is TIMED_OUT."""

    in_progress_timeout_in_minutes: TimeoutMinutes


class RetryCriteria(_Request):
    """How many times a thing's execution is retried after it ends with ``failureType``."""

    failure_type: RetryFailureType
    number_of_retries: Retries


class RetryConfig(_Request):
    """When executions are retried (AWS ``jobExecutionsRetryConfig``); at most 10 retries in all."""

    criteria_list: list[RetryCriteria] = Field(min_length=1, max_length=2)

    @field_validator("criteria_list")
    @classmethod
    def _consistent(cls, criteria: list[RetryCriteria]) -> list[RetryCriteria]:
        types = [criterion.failure_type for criterion in criteria]
        if len(set(types)) != len(types):
            raise ValueError("names a failureType more than once")
        if "ALL" in types and len(types) > 1:
            raise ValueError("ALL already covers FAILED and TIMED_OUT; give it alone")
        total = sum(criterion.number_of_retries for criterion in criteria)
        if total > rules.MAX_RETRIES:
            raise ValueError(f"allows {total} retries in all; at most {rules.MAX_RETRIES}")
        return criteria


def json_object(value: object) -> object:
    """A JSON object given as one or as a string holding one (AWS's APIs take JSON documents as strings: a
    job document, a deployment's configuration merge); a pydantic before-validator."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"is a string but not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object, or a string holding one")
    return value


class JobCreate(_Request):
    """A new job (AWS CreateJob): targets are thing or thing group names or ARNs."""

    job_id: JobId
    targets: list[Target] = Field(min_length=1, max_length=rules.TARGETS_MAX)
    document: Annotated[dict[str, Any], BeforeValidator(json_object)]
    description: Description = ""
    namespace_id: NamespaceId | None = None
    target_selection: Annotated[TargetSelection, Field(strict=False)] = TargetSelection.SNAPSHOT
    job_executions_rollout_config: RolloutConfig | None = None
    abort_config: AbortConfig | None = None
    timeout_config: TimeoutConfig | None = None
    job_executions_retry_config: RetryConfig | None = None

    @field_validator("document")
    @classmethod
    def _document_size(cls, document: dict[str, Any]) -> dict[str, Any]:
        try:
            text = json.dumps(document, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise ValueError("must not contain NaN or Infinity") from None
        size = len(text.encode())
        if size > rules.DOCUMENT_MAX_BYTES:
            raise ValueError(f"is {size} bytes of JSON; at most {rules.DOCUMENT_MAX_BYTES}")
        return document


class JobCancel(_Request):
    """Cancel a job: queued executions are cancelled; in-progress ones too with ``force``."""

    force: bool = False
    reason_code: (
        Annotated[
            str,
            Field(min_length=1, max_length=rules.REASON_CODE_MAX_LENGTH, pattern=rules.REASON_CODE_PATTERN),
        ]
        | None
    ) = None
    comment: (
        Annotated[str, Field(max_length=rules.COMMENT_MAX_LENGTH, pattern=rules.DESCRIPTION_PATTERN)] | None
    ) = None


class JobProcessDetails(_Shape):
    """How many things' latest executions are in each status."""

    number_of_queued_things: int
    number_of_in_progress_things: int
    number_of_succeeded_things: int
    number_of_failed_things: int
    number_of_rejected_things: int
    number_of_timed_out_things: int
    number_of_removed_things: int
    number_of_canceled_things: int
    #: Targets' things the rollout has not notified yet.
    number_of_planned_things: int


class JobSummaryPublic(_Shape):
    """A job in a listing."""

    job_id: str
    job_arn: str
    status: JobStatus
    target_selection: TargetSelection
    namespace_id: str | None
    created_at: datetime.datetime
    last_updated_at: datetime.datetime
    completed_at: datetime.datetime | None


class JobPublic(JobSummaryPublic):
    """A job with its document, configuration and progress."""

    targets: list[str]
    document: dict[str, Any]
    description: str
    job_executions_rollout_config: RolloutConfig | None
    abort_config: AbortConfig | None
    timeout_config: TimeoutConfig | None
    job_executions_retry_config: RetryConfig | None
    force_canceled: bool
    reason_code: str | None
    comment: str | None
    job_process_details: JobProcessDetails


class JobsPublic(_Shape):
    """A page of jobs and how many there are in all."""

    data: list[JobSummaryPublic]
    count: int


class JobExecutionPublic(_Shape):
    """One run of a job on a thing."""

    job_id: str
    thing_name: str
    thing_arn: str
    namespace_id: str | None
    execution_number: int
    status: ExecutionStatus
    status_details: dict[str, str]
    version_number: int
    retry_attempt: int
    queued_at: datetime.datetime
    started_at: datetime.datetime | None
    last_updated_at: datetime.datetime
    step_timeout_at: datetime.datetime | None
    in_progress_timeout_at: datetime.datetime | None


class JobExecutionsPublic(_Shape):
    """A page of job executions and how many there are in all."""

    data: list[JobExecutionPublic]
    count: int
