"""API shapes of the model registry, model packages and model deployments (camelCase on the wire).

Requests are strict and refuse unknown fields. A model is named by ``^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$``
(:data:`edgewise.ml.names.ML_NAME_PATTERN`); its version N (MLflow's integer) is the component version
``N.0.0`` of ``edgewise.models.NAME``. A package or deploy request names the model version by ``version`` or by
``alias``, exactly one of them.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from edgewise.cloud.deployments.schemas import DeploymentPolicies, IotJobConfiguration
from edgewise.ml.names import ML_NAME_PATTERN
from edgewise.topics import TopicError, validate_filter, validate_topic

MODEL_NAME_PATTERN: Final = ML_NAME_PATTERN
MODEL_NAME_MAX_LENGTH: Final = 64
#: MLflow's aliases: letters, digits, '_' and '-'; ``latest`` and ``vN`` are refused (MLflow reserves them).
ALIAS_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
ALIAS_MAX_LENGTH: Final = 64
#: A model version: MLflow's positive integer.
VERSION_PATTERN: Final = r"^[1-9][0-9]{0,8}$"
TOPIC_MAX_LENGTH: Final = 256
#: MQTT filters (edgewise.topics.validate_filter): '+' only as a whole level, '#' only as the whole last level.
TOPIC_FILTER_PATTERN: Final = r"^(?:(?:\+|[^+#/\x00]*)/)*(?:\+|#|[^+#/\x00]*)$"
#: Topics to publish to: no wildcard, no NUL.
TOPIC_NAME_PATTERN: Final = r"^[^+#\x00]*$"
#: A stream-manager stream name (the inference component's ``capture.stream``).
CAPTURE_STREAM_PATTERN: Final = r"^[\w ,.\-]+$"

ModelName = Annotated[str, Field(min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN)]
AliasName = Annotated[str, Field(min_length=1, max_length=ALIAS_MAX_LENGTH, pattern=ALIAS_PATTERN)]
VersionText = Annotated[str, Field(min_length=1, max_length=9, pattern=VERSION_PATTERN)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class ModelSummaryPublic(_Shape):
    """A registered model: its newest version and its aliases (alias -> version)."""

    name: str
    latest_version: str | None
    aliases: dict[str, str]
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


class ModelsPublic(_Shape):
    """Every registered model, by name."""

    data: list[ModelSummaryPublic]
    count: int


class ModelVersionPublic(_Shape):
    """One model version as the registry keeps it: its run's metrics, parameters and tags."""

    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    source: str
    created_at: datetime.datetime
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str


class ModelVersionsPublic(_Shape):
    """A model's versions, newest first."""

    data: list[ModelVersionPublic]
    count: int


class ModelPublic(ModelSummaryPublic):
    """A registered model with its versions, newest first."""

    versions: list[ModelVersionPublic]


class ModelVersionDetail(ModelVersionPublic):
    """One model version with what its training found: task, learner, leaderboard, fidelity, latency, size.

    The training fields are None for a version registered without Edgewise's ``result.json``.
    """

    task: str | None = None
    learner: str | None = None
    metric: str | None = None
    score: float | None = None
    features: list[str] | None = None
    leaderboard: list[dict[str, Any]] | None = None
    fidelity: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    size_bytes: int | None = None


class AliasSet(_Request):
    """Point an alias at a version."""

    version: VersionText


class AliasEventPublic(_Shape):
    """One move of an alias: to ``version`` (None: deleted) from ``previousVersion``, by ``actor``."""

    alias: str
    version: str | None
    previous_version: str | None
    actor: str
    created_at: datetime.datetime


class AliasHistoryPublic(_Shape):
    """An alias's moves, newest first."""

    data: list[AliasEventPublic]
    count: int


class SigningKeyPublic(_Shape):
    """The public half of the cloud's model-signing key, as devices trust it (``trustedKeys``)."""

    public_key: str
    key_id: str


def _exactly_one(*names: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of these fields is given"."""
    return {"oneOf": [{"required": [name]} for name in names]}


def _given(value: object) -> object:
    # A field left out is None; an explicit null is refused, so that the schema can say "a string, if given".
    if value is None:
        raise ValueError("must be a string; leave the field out rather than send null")
    return value


#: Optional string fields: a string when given (never null), absent otherwise.
OptionalVersion = Annotated[VersionText | SkipJsonSchema[None], BeforeValidator(_given)]
OptionalAlias = Annotated[AliasName | SkipJsonSchema[None], BeforeValidator(_given)]
OptionalTarget = Annotated[
    Annotated[str, Field(min_length=1, max_length=2048)] | SkipJsonSchema[None], BeforeValidator(_given)
]
OptionalThingName = Annotated[
    Annotated[str, Field(min_length=1, max_length=128)] | SkipJsonSchema[None], BeforeValidator(_given)
]


class _VersionChoice(_Request):
    version: OptionalVersion = None
    alias: OptionalAlias = None

    @model_validator(mode="after")
    def _one_of_version_and_alias(self) -> _VersionChoice:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of 'version' and 'alias'")
        return self


class ModelPackageRequest(_VersionChoice):
    """Package a model version (by number or alias) as the component ``edgewise.models.NAME`` ``N.0.0``."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("version", "alias"))


class ModelPackagePublic(_Shape):
    """The component a model version was packaged as; ``created`` is false when it was there already."""

    model_name: str
    model_version: str
    component_name: str
    component_version: str
    key_id: str
    created: bool


class ModelDeployRequest(_VersionChoice):
    """Package a model version and deploy it with the inference component to a thing or thing group.

    The target is ``targetArn`` (a name or ARN), ``thing`` or ``group``: exactly one. The target's current
    components stay; the model's component is added or replaced, and ``edgewise.ml.Inference`` is told to serve
    it from ``inputTopic`` (a local topic filter) to ``outputTopic`` (and ``iotCoreTopic`` in the cloud, when set).
    Any ``capture*`` setting turns capture on (records to the stream ``captureStream``, by default
    ``EdgewiseInferenceCapture``, exported to the cloud's telemetry; ``aws.greengrass.StreamManager`` is added
    unless the target runs it); ``challengerVersion`` / ``challengerAlias`` packages that version too and runs it
    in shadow (its disagreements captured when capture is on); ``driftDetector`` watches the score on the device.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [_exactly_one("version", "alias"), _exactly_one("targetArn", "thing", "group")]
        }
    )

    target_arn: OptionalTarget = None
    thing: OptionalThingName = None
    group: OptionalThingName = None
    input_topic: Annotated[
        str, Field(min_length=1, max_length=TOPIC_MAX_LENGTH, pattern=TOPIC_FILTER_PATTERN)
    ]
    output_topic: Annotated[str, Field(min_length=1, max_length=TOPIC_MAX_LENGTH, pattern=TOPIC_NAME_PATTERN)]
    iot_core_topic: Annotated[str, Field(max_length=TOPIC_MAX_LENGTH, pattern=TOPIC_NAME_PATTERN)] = ""
    deployment_name: Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    deployment_policies: DeploymentPolicies | SkipJsonSchema[None] = None
    iot_job_configuration: IotJobConfiguration | SkipJsonSchema[None] = None
    capture_sample_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | SkipJsonSchema[None] = (
        None
    )
    capture_score_above: Annotated[float, Field(allow_inf_nan=False)] | SkipJsonSchema[None] = None
    capture_stream: (
        Annotated[str, Field(min_length=1, max_length=255, pattern=CAPTURE_STREAM_PATTERN)]
        | SkipJsonSchema[None]
    ) = None
    challenger_version: OptionalVersion = None
    challenger_alias: OptionalAlias = None
    drift_detector: Literal["adwin", "page-hinkley"] | SkipJsonSchema[None] = None

    @field_validator("input_topic")
    @classmethod
    def _input_filter(cls, value: str) -> str:
        try:
            validate_filter(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("output_topic", "iot_core_topic")
    @classmethod
    def _output_topic(cls, value: str) -> str:
        if value:
            try:
                validate_topic(value)
            except TopicError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> ModelDeployRequest:
        given = [name for name in ("target_arn", "thing", "group") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'targetArn', 'thing' and 'group'")
        if self.challenger_version is not None and self.challenger_alias is not None:
            raise ValueError("give at most one of 'challengerVersion' and 'challengerAlias'")
        return self

    @property
    def captures(self) -> bool:
        """Whether any capture setting is given: the results then go to a stream-manager stream."""
        return any(
            value is not None
            for value in (self.capture_sample_rate, self.capture_score_above, self.capture_stream)
        )


class ModelDeployPublic(_Shape):
    """The deployment that carries a model version, and the component it was packaged as."""

    deployment_id: str
    iot_job_id: str
    iot_job_arn: str
    target_arn: str
    model_name: str
    model_version: str
    component_name: str
    component_version: str


#: The most rows one ``invoke`` request may carry (the API's body limit applies too).
INVOKE_MAX_ROWS: Final = 10_000


def _given_list(value: object) -> object:
    if value is None:
        raise ValueError("must be a list; leave the field out rather than send null")
    return value


# Values are checked by the service against the model's features, so that a refusal names the row and the feature;
# the schema still says what is expected.
InvokeRow = Annotated[list[Any], WithJsonSchema({"type": "array", "items": {"type": "number"}})]
InvokeInstance = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "additionalProperties": {"type": "number"}})
]
OptionalRows = Annotated[
    Annotated[list[InvokeRow], Field(min_length=1, max_length=INVOKE_MAX_ROWS)] | SkipJsonSchema[None],
    BeforeValidator(_given_list),
]
OptionalInstances = Annotated[
    Annotated[list[InvokeInstance], Field(min_length=1, max_length=INVOKE_MAX_ROWS)] | SkipJsonSchema[None],
    BeforeValidator(_given_list),
]


class ModelInvokeRequest(_VersionChoice):
    """Run a model version (by number or alias) in the cloud on ``rows`` (values in the model's feature order) or
    ``instances`` (objects of feature name to value): exactly one of them, at most 10,000 rows."""

    model_config = ConfigDict(
        json_schema_extra={"allOf": [_exactly_one("version", "alias"), _exactly_one("rows", "instances")]}
    )

    rows: OptionalRows = None
    instances: OptionalInstances = None

    @model_validator(mode="after")
    def _one_of_rows_and_instances(self) -> ModelInvokeRequest:
        if (self.rows is None) == (self.instances is None):
            raise ValueError("give exactly one of 'rows' and 'instances'")
        return self


class PredictionPublic(_Shape):
    """What the model says about one row, read as the device reads it: ``label`` (the class), ``score`` (its
    probability) and ``probabilities`` (per class) for a classifier; ``prediction`` for a regressor; ``score``
    (higher is more anomalous) and, when the model has a threshold, ``anomaly`` for an anomaly detector."""

    label: Any = None
    prediction: float | None = None
    score: float | None = None
    anomaly: bool | None = None
    probabilities: dict[str, float] | None = None


class ModelInvokePublic(_Shape):
    """The predictions of model version ``version`` (the one the alias pointed to, when invoked by alias), one per
    row in order, and how long the request took in the cloud."""

    model: str
    version: str
    predictions: list[PredictionPublic]
    latency_ms: float


class InvokeMetricsPublic(_Shape):
    """Invocations of a model in this cloud process since it started: requests, the ones that failed, rows
    predicted, requests per version, and the request latency's p50/p99 over the latest ``samples`` requests
    (None before the first)."""

    model: str
    requests: int
    errors: int
    rows: int
    versions: dict[str, int]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    samples: int
