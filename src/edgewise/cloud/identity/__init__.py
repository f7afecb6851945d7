"""Identity for the cloud: the certificate authority, device certificates and AWS IoT-style policies.

Pure functions and plain values (PEM text, ids, dataclasses): the tables that persist them live elsewhere.
"""

from __future__ import annotations

from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.identity.certificates import (
    CertificateStatus,
    IssuedCertificate,
    certificate_id,
    change_status,
    load_certificate,
)
from edgewise.cloud.identity.errors import (
    CertificateError,
    CertificateStatusError,
    IdentityError,
    PolicyError,
    PolicyProblem,
)
from edgewise.cloud.identity.policy import (
    DEFAULT_DEVICE_POLICY_NAME,
    Action,
    Effect,
    Policy,
    RequestContext,
    Resource,
    Statement,
    ThingPermissions,
    TopicRule,
    default_device_policy,
    evaluate,
    parse_policy,
    render_for_thing,
    validate_policy,
)

__all__ = [
    "DEFAULT_DEVICE_POLICY_NAME",
    "Action",
    "CertificateAuthority",
    "CertificateError",
    "CertificateStatus",
    "CertificateStatusError",
    "Effect",
    "IdentityError",
    "IssuedCertificate",
    "Policy",
    "PolicyError",
    "PolicyProblem",
    "RequestContext",
    "Resource",
    "Statement",
    "ThingPermissions",
    "TopicRule",
    "certificate_id",
    "change_status",
    "default_device_policy",
    "evaluate",
    "load_certificate",
    "parse_policy",
    "render_for_thing",
    "validate_policy",
]
