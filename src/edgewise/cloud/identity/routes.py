"""REST routes of identity: certificates, policies, policy targets and thing principals.

Roles: reads need any role, writes the operator role. Certificates and policies are fleet resources like
things (provisioning a device is an operator's everyday job); what stays admin-only is the API itself
(tokens). The certificate authority is the one in ``app.state.services``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.identity import service
from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.identity.certificates import CertificateStatus
from edgewise.cloud.identity.models import Certificate, Policy
from edgewise.cloud.identity.schemas import (
    CaCertificatePublic,
    CertificateFromCsr,
    CertificateIssued,
    CertificatePublic,
    CertificatesPublic,
    CertificateUpdate,
    CertificateWithNewKey,
    PoliciesPublic,
    PolicyCreate,
    PolicyPublic,
    PolicyTargetsPublic,
    PolicyUpdate,
    PrincipalsPublic,
    SettableStatus,
)
from edgewise.cloud.registry import rules

CertificateId = Annotated[str, Path(alias="certificateId", pattern=service.CERTIFICATE_ID_PATTERN)]
PolicyName = Annotated[
    str,
    Path(
        alias="policyName",
        min_length=1,
        max_length=service.POLICY_NAME_MAX_LENGTH,
        pattern=service.POLICY_NAME_PATTERN,
    ),
]
ThingName = Annotated[
    str, Path(alias="thingName", min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN)
]
GroupName = Annotated[
    str,
    Path(alias="thingGroupName", min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
StatusFilter = Annotated[SettableStatus | None, Query()]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES)


def _authority(request: Request) -> CertificateAuthority:
    authority: CertificateAuthority = request.app.state.services.certificate_authority
    return authority


AuthorityDep = Annotated[CertificateAuthority, Depends(_authority)]


def certificate_public(certificate: Certificate) -> CertificatePublic:
    """The API shape of ``certificate``."""
    return CertificatePublic(
        certificate_id=certificate.certificate_id,
        certificate_pem=certificate.pem,
        serial_number=certificate.serial_hex,
        common_name=certificate.common_name,
        status=certificate.status.value,
        created_at=certificate.created_at,
        not_after=certificate.not_after,
    )


def policy_public(policy: Policy) -> PolicyPublic:
    """The API shape of ``policy``."""
    return PolicyPublic(
        policy_name=policy.name,
        policy_document=policy.document,
        created_at=policy.created_at,
        updated_at=policy.updated_at,
    )


# The certificate authority


@router.get("/ca", tags=["certificates"])
def get_ca_certificate(authority: AuthorityDep) -> CaCertificatePublic:
    """The CA certificate that devices trust for the broker and that signs their certificates."""
    return CaCertificatePublic(certificate_pem=authority.certificate_pem)


# Certificates


@router.post("/certificates", status_code=status.HTTP_201_CREATED, tags=["certificates"])
def create_certificate(
    session: SessionDep, authority: AuthorityDep, request: CertificateFromCsr | CertificateWithNewKey
) -> CertificateIssued:
    """Issue a device certificate from a CSR, or with a generated key pair (its private key is shown once)."""
    created = service.create_certificate(
        session,
        authority,
        csr_pem=request.csr if isinstance(request, CertificateFromCsr) else None,
        thing_name=request.thing_name,
        set_as_active=request.set_as_active,
        valid_days=request.valid_days,
    )
    public = certificate_public(created.certificate)
    return CertificateIssued(**public.model_dump(), private_key=created.private_key_pem)


@router.get("/certificates", tags=["certificates"])
def list_certificates(
    session: SessionDep, limit: Limit = 100, offset: Offset = 0, status: StatusFilter = None
) -> CertificatesPublic:
    """List certificates, newest first, optionally only those with a status."""
    page = service.list_certificates(
        session, limit=limit, offset=offset, status=None if status is None else CertificateStatus(status)
    )
    return CertificatesPublic(data=[certificate_public(item) for item in page.items], count=page.total)


@router.get("/certificates/{certificateId}", tags=["certificates"])
def get_certificate(session: SessionDep, certificate_id: CertificateId) -> CertificatePublic:
    """Describe a certificate."""
    return certificate_public(service.get_certificate(session, certificate_id))


@router.patch("/certificates/{certificateId}", tags=["certificates"])
def update_certificate(
    session: SessionDep, certificate_id: CertificateId, request: CertificateUpdate
) -> CertificatePublic:
    """Activate, deactivate or revoke a certificate (a revoked one stays revoked)."""
    certificate = service.update_certificate_status(
        session, certificate_id, CertificateStatus(request.status)
    )
    return certificate_public(certificate)


@router.delete(
    "/certificates/{certificateId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["certificates"],
)
def delete_certificate(session: SessionDep, certificate_id: CertificateId) -> None:
    """Delete an INACTIVE or REVOKED certificate attached to no thing and no policy; it stays on the broker's
    CRL until it expires."""
    service.delete_certificate(session, certificate_id)


# Policies


@router.post("/policies", status_code=status.HTTP_201_CREATED, tags=["policies"])
def create_policy(session: SessionDep, request: PolicyCreate) -> PolicyPublic:
    """Create a policy from an AWS IoT-style JSON document."""
    return policy_public(service.create_policy(session, request.policy_name, request.policy_document))


@router.get("/policies", tags=["policies"])
def list_policies(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> PoliciesPublic:
    """List policies by name."""
    page = service.list_policies(session, limit=limit, offset=offset)
    return PoliciesPublic(data=[policy_public(item) for item in page.items], count=page.total)


@router.get("/policies/{policyName}", tags=["policies"])
def get_policy(session: SessionDep, policy_name: PolicyName) -> PolicyPublic:
    """Describe a policy."""
    return policy_public(service.get_policy(session, policy_name))


@router.patch("/policies/{policyName}", tags=["policies"])
def update_policy(session: SessionDep, policy_name: PolicyName, request: PolicyUpdate) -> PolicyPublic:
    """Replace a policy's document; every target gets the new one."""
    return policy_public(service.update_policy(session, policy_name, request.policy_document))


@router.delete(
    "/policies/{policyName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["policies"],
)
def delete_policy(session: SessionDep, policy_name: PolicyName) -> None:
    """Delete a policy attached to nothing."""
    service.delete_policy(session, policy_name)


@router.get("/policies/{policyName}/targets", tags=["policies"])
def list_policy_targets(session: SessionDep, policy_name: PolicyName) -> PolicyTargetsPublic:
    """List the certificates and thing groups a policy is attached to."""
    targets = service.list_policy_targets(session, policy_name)
    return PolicyTargetsPublic(certificate_ids=targets.certificate_ids, thing_group_names=targets.group_names)


@router.put(
    "/policies/{policyName}/targets/certificates/{certificateId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["policies"],
)
def attach_policy_to_certificate(
    session: SessionDep, policy_name: PolicyName, certificate_id: CertificateId
) -> None:
    """Attach a policy to a certificate."""
    service.attach_policy_to_certificate(session, policy_name, certificate_id)


@router.delete(
    "/policies/{policyName}/targets/certificates/{certificateId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["policies"],
)
def detach_policy_from_certificate(
    session: SessionDep, policy_name: PolicyName, certificate_id: CertificateId
) -> None:
    """Detach a policy from a certificate."""
    service.detach_policy_from_certificate(session, policy_name, certificate_id)


@router.put(
    "/policies/{policyName}/targets/thing-groups/{thingGroupName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["policies"],
)
def attach_policy_to_group(session: SessionDep, policy_name: PolicyName, group_name: GroupName) -> None:
    """Attach a policy to a thing group; its child groups and their things inherit it."""
    service.attach_policy_to_group(session, policy_name, group_name)


@router.delete(
    "/policies/{policyName}/targets/thing-groups/{thingGroupName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["policies"],
)
def detach_policy_from_group(session: SessionDep, policy_name: PolicyName, group_name: GroupName) -> None:
    """Detach a policy from a thing group."""
    service.detach_policy_from_group(session, policy_name, group_name)


# Thing principals


@router.get("/things/{thingName}/principals", tags=["things"])
def list_thing_principals(session: SessionDep, thing_name: ThingName) -> PrincipalsPublic:
    """List the certificates attached to a thing."""
    certificates = [certificate_public(item) for item in service.list_thing_principals(session, thing_name)]
    return PrincipalsPublic(data=certificates, count=len(certificates))


@router.put(
    "/things/{thingName}/principals/{certificateId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["things"],
)
def attach_thing_principal(session: SessionDep, thing_name: ThingName, certificate_id: CertificateId) -> None:
    """Attach a certificate to a thing (the certificate must have been issued for that thing)."""
    service.attach_thing_principal(session, thing_name, certificate_id)


@router.delete(
    "/things/{thingName}/principals/{certificateId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["things"],
)
def detach_thing_principal(session: SessionDep, thing_name: ThingName, certificate_id: CertificateId) -> None:
    """Detach a certificate from a thing."""
    service.detach_thing_principal(session, thing_name, certificate_id)
