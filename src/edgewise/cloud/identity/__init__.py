"""Identity for the cloud: the certificate authority, device certificates and AWS IoT-style policies.

The CA, certificates and policies are pure functions and plain values (PEM text, ids, dataclasses); ``models``
holds the tables that persist them, ``service`` the functions over those tables and ``routes`` the API. Other
packages import the names listed in ``__all__`` from here. A stored policy is a :class:`Policy` row holding the
document's JSON text; :class:`PolicyDocument` is that document parsed and validated.
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
from edgewise.cloud.identity.models import (
    Certificate,
    Policy,
    PolicyCertificateAttachment,
    PolicyGroupAttachment,
    ThingPrincipal,
)
from edgewise.cloud.identity.policy import (
    DEFAULT_DEVICE_POLICY_NAME,
    Action,
    Effect,
    PolicyDocument,
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
from edgewise.cloud.identity.schemas import PolicyName
from edgewise.cloud.identity.service import (
    CA_CERTIFICATE_FILE,
    held_serials,
    load_or_create_ca,
    revoked_serials,
)

__all__ = [
    "CA_CERTIFICATE_FILE",
    "DEFAULT_DEVICE_POLICY_NAME",
    "Action",
    "Certificate",
    "CertificateAuthority",
    "CertificateError",
    "CertificateStatus",
    "CertificateStatusError",
    "Effect",
    "IdentityError",
    "IssuedCertificate",
    "Policy",
    "PolicyCertificateAttachment",
    "PolicyDocument",
    "PolicyError",
    "PolicyGroupAttachment",
    "PolicyName",
    "PolicyProblem",
    "RequestContext",
    "Resource",
    "Statement",
    "ThingPermissions",
    "ThingPrincipal",
    "TopicRule",
    "certificate_id",
    "change_status",
    "default_device_policy",
    "evaluate",
    "held_serials",
    "load_certificate",
    "load_or_create_ca",
    "parse_policy",
    "render_for_thing",
    "revoked_serials",
    "validate_policy",
]
