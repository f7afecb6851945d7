"""API shapes of deployments: Greengrass's CreateDeployment request as a Greengrass user already writes it, and
GetDeployment / ListDeployments answers (camelCase on the wire).

Requests are strict and refuse unknown fields, so a misspelt policy name is an error rather than a default.
``configurationUpdate.merge`` is a JSON document serialised as a string, as in Greengrass; an object is accepted
too.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from edgewise.cloud.jobs.schemas import AbortConfig, RetryConfig, RolloutConfig, TimeoutConfig, json_object

ComponentName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9._-]+$")]
DeploymentStatus = Literal["ACTIVE", "COMPLETED", "CANCELED", "FAILED", "INACTIVE"]
PosixUser = Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]
Seconds = Annotated[int, Field(ge=0, le=2**31 - 1)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class ConfigurationUpdate(_Request):
    """Reset these JSON pointers, then merge this document into the component's configuration."""

    merge: Annotated[dict[str, Any], BeforeValidator(json_object)] | None = None
    reset: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=1000)

    @field_validator("reset")
    @classmethod
    def _pointers(cls, pointers: list[str]) -> list[str]:
        for pointer in pointers:
            if pointer and not pointer.startswith("/"):
                raise ValueError(f"{pointer!r} is not a JSON pointer (it must be empty or start with '/')")
        return pointers


class SystemResourceLimits(_Request):
    """Per-component limits: ``memory`` in KB, ``cpus`` in cores; the device refuses anything not above 0, so the
    cloud does too (a deployment carrying one would fail on every device)."""

    memory: Annotated[int, Field(gt=0)] | None = None
    cpus: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class RunWith(_Request):
    """Who the component runs as."""

    posix_user: PosixUser | None = None
    windows_user: PosixUser | None = None
    system_resource_limits: SystemResourceLimits | None = None


class ComponentDeploymentSpecification(_Request):
    """One root component of a deployment."""

    component_version: Annotated[str, Field(min_length=1, max_length=64)]
    configuration_update: ConfigurationUpdate | None = None
    run_with: RunWith | None = None


class ComponentUpdatePolicy(_Request):
    """Whether components are told before an update, and how long they may defer it."""

    action: Literal["NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"] = "NOTIFY_COMPONENTS"
    timeout_in_seconds: Seconds = 60


class ConfigurationValidationPolicy(_Request):
    """How long components have to validate a new configuration."""

    timeout_in_seconds: Seconds = 30


class DeploymentPolicies(_Request):
    """What devices do while applying and when applying fails."""

    failure_handling_policy: Literal["ROLLBACK", "DO_NOTHING"] = "ROLLBACK"
    component_update_policy: ComponentUpdatePolicy = Field(default_factory=ComponentUpdatePolicy)
    configuration_validation_policy: ConfigurationValidationPolicy = Field(
        default_factory=ConfigurationValidationPolicy
    )


class IotJobConfiguration(_Request):
    """How the deployment's job rolls out, aborts, times out and retries (AWS IoT Jobs' settings; Greengrass has
    no ``jobExecutionsRetryConfig`` here, Edgewise accepts it)."""

    job_executions_rollout_config: RolloutConfig | None = None
    abort_config: AbortConfig | None = None
    timeout_config: TimeoutConfig | None = None
    job_executions_retry_config: RetryConfig | None = None


class DeploymentCreate(_Request):
    """Greengrass CreateDeployment: ``targetArn`` is a thing or thing group name or ARN."""

    target_arn: Annotated[str, Field(min_length=1, max_length=2048)]
    deployment_name: Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    components: dict[ComponentName, ComponentDeploymentSpecification] = Field(min_length=1, max_length=1000)
    deployment_policies: DeploymentPolicies = Field(default_factory=DeploymentPolicies)
    iot_job_configuration: IotJobConfiguration = Field(default_factory=IotJobConfiguration)
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]] = (
        Field(default_factory=dict, max_length=50)
    )


class DeploymentCreated(_Shape):
    """What CreateDeployment answers."""

    deployment_id: str
    iot_job_id: str
    iot_job_arn: str


class DeploymentPublic(_Shape):
    """A deployment (Greengrass GetDeployment), with its job's progress."""

    deployment_id: str
    deployment_name: str
    target_arn: str
    revision_id: str
    deployment_status: DeploymentStatus
    iot_job_id: str
    iot_job_arn: str
    components: dict[str, Any]
    deployment_policies: dict[str, Any]
    iot_job_configuration: dict[str, Any]
    creation_timestamp: datetime.datetime
    is_latest_for_target: bool
    execution_counts: dict[str, int]


class DeploymentsPublic(_Shape):
    """A page of deployments, newest first, and how many match in all."""

    data: list[DeploymentPublic]
    count: int


class DeviceDeploymentPublic(_Shape):
    """How one device is doing with a deployment: its job execution."""

    thing_name: str
    execution_number: int
    status: str
    status_details: dict[str, str]
    queued_at: datetime.datetime
    started_at: datetime.datetime | None
    last_updated_at: datetime.datetime


class DeviceDeploymentsPublic(_Shape):
    """Every device's execution of a deployment."""

    data: list[DeviceDeploymentPublic]
    count: int
