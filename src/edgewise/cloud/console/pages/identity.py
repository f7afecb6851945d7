"""Certificates and policies pages: device certificates (list, one certificate, issuing one with a key pair the
cloud generates, whose private key is shown once) and AWS IoT-style policies (list, one policy with its targets,
creating one from its JSON document). Issuing and creating go through the API, so its roles apply."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApiDep, ConsoleApiError, gather, listing, render

router = APIRouter()

DOCUMENT_MAX_LENGTH = 20 * 1024


def _segment(name: str) -> str:
    return quote(name, safe="")


@router.get("/certificates")
async def certificates(request: Request, api: ConsoleApiDep) -> Response:
    """Device certificates, and the form that issues one."""
    return await listing(request, api, "certificates", "identity/certificates.html", title="Certificates")


@router.get("/certificates/{certificate_id}")
async def certificate(request: Request, api: ConsoleApiDep, certificate_id: str) -> Response:
    """One certificate: its status, subject, validity and PEM."""
    described = await api.get(f"/certificates/{_segment(certificate_id)}")
    return render(
        request, "identity/certificate.html", title="Certificate", certificate=described, issued=False
    )


@router.post("/certificates")
async def create_certificate(
    request: Request,
    api: ConsoleApiDep,
    thing: Annotated[str, Form(max_length=128)] = "",
    inactive: Annotated[bool, Form()] = False,
) -> Response:
    """Issue a certificate with a new key pair; the page shows its private key this once."""
    body: dict[str, Any] = {"generateKeyPair": True, "setAsActive": not inactive}
    if thing:
        body["thingName"] = thing
    try:
        issued = await api.post("/certificates", body)
    except ConsoleApiError as exc:
        entered = {"thing": thing, "inactive": inactive}
        return await listing(
            request,
            api,
            "certificates",
            "identity/certificates.html",
            title="Certificates",
            error=exc.message,
            status_code=exc.status,
            entered=entered,
        )
    response = render(
        request,
        "identity/certificate.html",
        status_code=201,
        title="Certificate",
        certificate=issued,
        issued=True,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/policies")
async def policies(request: Request, api: ConsoleApiDep) -> Response:
    """Policies by name, and the form that creates one."""
    return await listing(request, api, "policies", "identity/policies.html", title="Policies")


def _pretty(document: str) -> str:
    try:
        return json.dumps(json.loads(document), indent=2)
    except ValueError:
        return document


@router.get("/policies/{name}")
async def policy(request: Request, api: ConsoleApiDep, name: str) -> Response:
    """One policy: its document and the certificates and thing groups it is attached to."""
    described, targets = await gather(
        api.get(f"/policies/{_segment(name)}"), api.get(f"/policies/{_segment(name)}/targets")
    )
    return render(
        request,
        "identity/policy.html",
        title=name,
        policy=described,
        document=_pretty(described["policyDocument"]),
        targets=targets,
    )


@router.post("/policies")
async def create_policy(
    request: Request,
    api: ConsoleApiDep,
    name: Annotated[str, Form(max_length=128)],
    document: Annotated[str, Form(max_length=DOCUMENT_MAX_LENGTH)],
) -> Response:
    """Create a policy from its JSON document; a refusal re-shows the form with the API's message."""
    try:
        created = await api.post("/policies", {"policyName": name, "policyDocument": document})
    except ConsoleApiError as exc:
        entered = {"name": name, "document": document}
        return await listing(
            request,
            api,
            "policies",
            "identity/policies.html",
            title="Policies",
            error=exc.message,
            status_code=exc.status,
            entered=entered,
        )
    return RedirectResponse(f"/console/policies/{_segment(created['policyName'])}", status_code=303)
