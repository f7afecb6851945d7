"""API shapes of provisioning templates (camelCase on the wire, like AWS IoT's API).

The template body travels as a JSON object; the service checks its contents and names the path of any
problem, since its structure is AWS's and too loose for a useful JSON schema.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.identity import PolicyName
from edgewise.cloud.provisioning import service
from edgewise.cloud.provisioning.hook import PAYLOAD_VERSION, TARGET_URL_MAX_LENGTH, TARGET_URL_PATTERN
from edgewise.protocol.provisioning import TEMPLATE_NAME_MAX_LENGTH

TemplateName = Annotated[
    str,
    Field(min_length=1, max_length=TEMPLATE_NAME_MAX_LENGTH, pattern=service.TEMPLATE_NAME_FIELD_PATTERN),
]
Description = Annotated[str, Field(max_length=service.DESCRIPTION_MAX_LENGTH)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProvisioningHook(_Request):
    """A pre-provisioning hook: the URL that RegisterThing POSTs AWS's hook input to (AWS: a Lambda ARN)."""

    target_url: str = Field(max_length=TARGET_URL_MAX_LENGTH, pattern=TARGET_URL_PATTERN)
    payload_version: Literal["2020-04-01"] = PAYLOAD_VERSION


class ProvisioningHookPublic(_Shape):
    """A template's pre-provisioning hook."""

    target_url: str
    payload_version: str


TemplateBody = Annotated[
    dict[str, Any],
    Field(description="Parameters, Mappings, Conditions, Resources and DeviceConfiguration, as AWS IoT"),
]


class TemplateCreate(_Request):
    """A new fleet provisioning template."""

    template_name: TemplateName
    description: Description = ""
    template_body: TemplateBody
    enabled: bool = True
    pre_provisioning_hook: ProvisioningHook | None = None


class TemplateUpdate(_Request):
    """Changes to a provisioning template; what is left out stays."""

    description: Description | None = None
    template_body: TemplateBody | None = None
    enabled: bool | None = None
    pre_provisioning_hook: ProvisioningHook | None = None
    remove_pre_provisioning_hook: bool = False


class TemplatePublic(_Shape):
    """A provisioning template."""

    template_name: str
    description: str
    template_body: dict[str, Any]
    enabled: bool
    pre_provisioning_hook: ProvisioningHookPublic | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class TemplatesPublic(_Shape):
    """A page of provisioning templates and how many there are in all."""

    data: list[TemplatePublic]
    count: int


class ClaimCertificateCreate(_Request):
    """A claim certificate for devices to provision themselves, with the policies that bound what it may do."""

    policy_names: list[PolicyName] = Field(min_length=1, max_length=10)
    # Lax: JSON has one number type, so 30.0 is a valid 30 days.
    valid_days: Annotated[int, Field(ge=1, le=3650, strict=False)] = 365


class ClaimCertificateIssued(_Shape):
    """A claim certificate and its private key (shown only once)."""

    certificate_id: str
    certificate_pem: str
    common_name: str
    private_key: str
