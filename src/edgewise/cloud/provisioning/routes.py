"""REST routes of provisioning templates and claim certificates; reads need any role, writes the operator role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.identity import CertificateAuthority
from edgewise.cloud.provisioning import service
from edgewise.cloud.provisioning.hook import PreProvisioningHook
from edgewise.cloud.provisioning.models import ProvisioningTemplate
from edgewise.cloud.provisioning.schemas import (
    ClaimCertificateCreate,
    ClaimCertificateIssued,
    ProvisioningHook,
    ProvisioningHookPublic,
    TemplateCreate,
    TemplatePublic,
    TemplatesPublic,
    TemplateUpdate,
)
from edgewise.protocol.provisioning import TEMPLATE_NAME_MAX_LENGTH

TemplateName = Annotated[
    str,
    Path(
        alias="templateName",
        min_length=1,
        max_length=TEMPLATE_NAME_MAX_LENGTH,
        pattern=service.TEMPLATE_NAME_FIELD_PATTERN,
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["provisioning"])


def template_public(template: ProvisioningTemplate) -> TemplatePublic:
    """The API shape of ``template``."""
    hook = service.template_hook(template)
    return TemplatePublic(
        template_name=template.name,
        description=template.description,
        template_body=service.template_body(template),
        enabled=template.enabled,
        pre_provisioning_hook=(
            ProvisioningHookPublic(target_url=hook.target_url, payload_version=hook.payload_version)
            if hook is not None
            else None
        ),
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


def _hook(shape: ProvisioningHook | None) -> PreProvisioningHook | None:
    return PreProvisioningHook(shape.target_url, shape.payload_version) if shape is not None else None


@router.post("/provisioning-templates", status_code=status.HTTP_201_CREATED)
def create_template(session: SessionDep, request: TemplateCreate) -> TemplatePublic:
    """Create a fleet provisioning template."""
    return template_public(
        service.create_template(
            session,
            request.template_name,
            request.template_body,
            description=request.description,
            enabled=request.enabled,
            hook=_hook(request.pre_provisioning_hook),
        )
    )


@router.get("/provisioning-templates")
def list_templates(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> TemplatesPublic:
    """List provisioning templates by name."""
    page = service.list_templates(session, limit=limit, offset=offset)
    return TemplatesPublic(data=[template_public(item) for item in page.items], count=page.total)


@router.get("/provisioning-templates/{templateName}")
def get_template(session: SessionDep, template_name: TemplateName) -> TemplatePublic:
    """Describe a provisioning template."""
    return template_public(service.get_template(session, template_name))


@router.patch("/provisioning-templates/{templateName}")
def update_template(
    session: SessionDep, template_name: TemplateName, request: TemplateUpdate
) -> TemplatePublic:
    """Change a provisioning template's body, description, enabled flag or pre-provisioning hook."""
    return template_public(
        service.update_template(
            session,
            template_name,
            body=request.template_body,
            description=request.description,
            enabled=request.enabled,
            hook=_hook(request.pre_provisioning_hook),
            remove_hook=request.remove_pre_provisioning_hook,
        )
    )


@router.delete(
    "/provisioning-templates/{templateName}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_template(session: SessionDep, template_name: TemplateName) -> None:
    """Delete a provisioning template."""
    service.delete_template(session, template_name)


@router.post("/claim-certificates", status_code=status.HTTP_201_CREATED)
def create_claim_certificate(
    session: SessionDep, http_request: Request, request: ClaimCertificateCreate
) -> ClaimCertificateIssued:
    """Issue an ACTIVE claim certificate with a generated key and the given policies attached."""
    authority: CertificateAuthority = http_request.app.state.services.certificate_authority
    created = service.create_claim_certificate(
        session, authority, request.policy_names, valid_days=request.valid_days
    )
    assert created.private_key_pem is not None  # generated here, never from a CSR
    return ClaimCertificateIssued(
        certificate_id=created.certificate.certificate_id,
        certificate_pem=created.certificate.pem,
        common_name=created.certificate.common_name,
        private_key=created.private_key_pem,
    )
