"""API shapes of identity: certificates, policies and attachments (camelCase on the wire, like AWS IoT's API).

Request shapes are strict and refuse unknown fields. A certificate request is either ``{"csr": ...}`` or
``{"generateKeyPair": true}``, stated as two shapes so the OpenAPI schema says that too.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.identity import service
from edgewise.cloud.identity.ca import MAX_COMMON_NAME_LENGTH
from edgewise.cloud.registry import rules

# A certificate's CN is the thing name, and RFC 5280 bounds a CN to 64 characters.
CertificateThingName = Annotated[
    str, Field(min_length=1, max_length=MAX_COMMON_NAME_LENGTH, pattern=rules.NAME_PATTERN)
]
PolicyName = Annotated[
    str,
    Field(min_length=1, max_length=service.POLICY_NAME_MAX_LENGTH, pattern=service.POLICY_NAME_PATTERN),
]
# Generous bound: a 4096-bit RSA CSR in PEM is about 1.7 kB.
CsrPem = Annotated[str, Field(min_length=1, max_length=16384)]
# Large enough for any document within AWS's 2,048 non-whitespace characters, pretty-printed.
PolicyDocumentText = Annotated[str, Field(min_length=1, max_length=20480)]
ValidDays = Annotated[int, Field(ge=1, le=3650)]
SettableStatus = Literal["ACTIVE", "INACTIVE", "REVOKED"]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class _CertificateRequest(_Request):
    thing_name: CertificateThingName | None = Field(
        default=None, description="An existing thing: the certificate's CN, and it is attached to it"
    )
    set_as_active: bool = True
    valid_days: ValidDays = service.DEFAULT_VALID_DAYS


class CertificateFromCsr(_CertificateRequest):
    """A certificate for the key in a PEM certificate signing request (the key never leaves the device)."""

    csr: CsrPem


class CertificateWithNewKey(_CertificateRequest):
    """A certificate with a key pair the cloud generates; the private key is returned once."""

    generate_key_pair: Literal[True]


class CertificateUpdate(_Request):
    """A status change (REVOKED is final)."""

    status: SettableStatus


class CertificatePublic(_Shape):
    """A certificate as the API shows it."""

    certificate_id: str
    certificate_pem: str
    serial_number: str = Field(description="Lowercase hex")
    common_name: str
    status: str
    created_at: datetime.datetime
    not_after: datetime.datetime


class CertificateIssued(CertificatePublic):
    """A certificate just issued; ``privateKey`` only when the cloud generated the key, and only this once."""

    private_key: str | None


class CaCertificatePublic(_Shape):
    """The cloud's CA certificate (PEM), for devices to trust."""

    certificate_pem: str


class CertificatesPublic(_Shape):
    """A page of certificates and how many match in all."""

    data: list[CertificatePublic]
    count: int


class PolicyCreate(_Request):
    """A policy to create; the document is JSON text, as in AWS IoT."""

    policy_name: PolicyName
    policy_document: PolicyDocumentText


class PolicyUpdate(_Request):
    """A new document for a policy."""

    policy_document: PolicyDocumentText


class PolicyPublic(_Shape):
    """A policy as the API shows it."""

    policy_name: str
    policy_document: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


class PoliciesPublic(_Shape):
    """A page of policies and how many there are in all."""

    data: list[PolicyPublic]
    count: int


class PolicyTargetsPublic(_Shape):
    """What a policy is attached to."""

    certificate_ids: list[str]
    thing_group_names: list[str]


class PrincipalsPublic(_Shape):
    """The certificates attached to a thing."""

    data: list[CertificatePublic]
    count: int
