"""Identity behaviour: the CA on disk, certificates, policies and their attachments, with AWS IoT's rules.

Every function takes the session first, validates its input (raising :class:`InvalidRequestError` naming the
field) and commits its change. Errors of the pure identity layer are turned into the cloud's errors here:
a bad CSR or policy document is an invalid request, a status change the lifecycle forbids a conflict.

The broker identifies a device by its certificate's CN (``use_identity_as_username``), so a certificate is
issued with the thing name as CN and may only be attached to the thing of that name. The broker's CRL is
what refuses a certificate, so it lists every certificate the CA issued that is not ACTIVE: REVOKED ones,
INACTIVE and PENDING_TRANSFER ones (on hold), deleted ones until they expire (:class:`DeletedCertificate`),
and any whose CN is reserved for the cloud's own clients.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
)
from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.identity.certificates import CertificateStatus, change_status
from edgewise.cloud.identity.errors import CertificateError, CertificateStatusError, PolicyError
from edgewise.cloud.identity.models import (
    Certificate,
    DeletedCertificate,
    Policy,
    PolicyCertificateAttachment,
    PolicyGroupAttachment,
    ThingPrincipal,
)
from edgewise.cloud.identity.policy import (
    DEFAULT_DEVICE_POLICY_NAME,
    PolicyDocument,
    default_device_policy,
    parse_policy,
)
from edgewise.cloud.registry import Page, Thing, ThingGroup, rules
from edgewise.cloud.registry import service as registry

logger = logging.getLogger(__name__)

CERTIFICATE = "Certificate"
POLICY = "Policy"

CA_COMMON_NAME = "Edgewise Root CA"
CA_CERTIFICATE_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CERTIFICATE_ID_PATTERN = r"^[0-9a-f]{64}$"
POLICY_NAME_PATTERN = r"^[a-zA-Z0-9_+=,.@-]+$"
POLICY_NAME_MAX_LENGTH = 128
#: AWS IoT: at most 10 policies per certificate; we apply the same to each group.
MAX_POLICIES_PER_TARGET = 10
DEFAULT_VALID_DAYS = 365
# Certificates made without a thing (e.g. claim certificates) get a CN no thing can have.
_UNASSIGNED_PREFIX = "unassigned."


@dataclass(frozen=True)
class CreatedCertificate:
    """A certificate just issued, and its private key when the cloud generated one (shown only once)."""

    certificate: Certificate
    private_key_pem: str | None


# Certificate authority on disk


def load_or_create_ca(data_dir: Path) -> CertificateAuthority:
    """The CA kept in ``data_dir/ca``; created there (key mode 0600) when neither file exists. Blocks.

    Raises:
        CertificateError: only one of the two files exists, or they do not form a CA.
    """
    directory = data_dir / "ca"
    certificate_path = directory / CA_CERTIFICATE_FILE
    key_path = directory / CA_KEY_FILE
    if certificate_path.exists() and key_path.exists():
        return CertificateAuthority.load(
            certificate_path.read_text(encoding="ascii"), key_path.read_text(encoding="ascii")
        )
    for present, missing in ((certificate_path, key_path), (key_path, certificate_path)):
        if present.exists():
            raise CertificateError(
                str(missing), f"is missing while {present} exists; restore it or remove both"
            )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    authority = CertificateAuthority.create(CA_COMMON_NAME)
    _write_private(key_path, authority.private_key_pem)
    _write_private(certificate_path, authority.certificate_pem, mode=0o644)
    logger.info("certificate-authority-created", extra={"path": str(directory)})
    return authority


def _write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` with ``mode`` from the start, replacing any older file atomically."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="ascii") as stream:
        stream.write(text)
    partial.replace(path)


# Certificates


def check_certificate_id(field: str, certificate_id: str) -> None:
    """Raise unless ``certificate_id`` is 64 lowercase hex digits."""
    if re.fullmatch(CERTIFICATE_ID_PATTERN, certificate_id) is None:
        raise InvalidRequestError(
            field, f"{certificate_id!r} is not a certificate id (64 lowercase hex digits)"
        )


def create_certificate(
    session: Session,
    authority: CertificateAuthority,
    *,
    csr_pem: str | None = None,
    thing_name: str | None = None,
    set_as_active: bool = True,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> CreatedCertificate:
    """Issue a certificate for the key in ``csr_pem``, or with a new key pair when it is None.

    With ``thing_name`` (an existing thing) the certificate's CN is the thing name and it is attached to the
    thing; without, it belongs to no thing and can be attached to none.
    """
    thing: Thing | None = None
    if thing_name is not None:
        thing = registry.get_thing(session, thing_name)
        # A thing made before names were reserved must not get a certificate that acts as a cloud client.
        rules.check_unreserved("thingName", thing.name)
        common_name = thing.name
    else:
        common_name = _UNASSIGNED_PREFIX + secrets.token_hex(8)
    certificate, private_key_pem = issue_certificate(
        session,
        authority,
        common_name,
        CertificateStatus.ACTIVE if set_as_active else CertificateStatus.INACTIVE,
        csr_pem=csr_pem,
        valid_days=valid_days,
        fields={"valid_days": "validDays", "common_name": "thingName"},
    )
    if thing is not None:
        session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
    session.commit()
    logger.info(
        "certificate-created",
        extra={
            "certificate_id": certificate.certificate_id,
            "thing": thing_name,
            "status": certificate.status,
        },
    )
    return CreatedCertificate(certificate, private_key_pem)


def issue_certificate(
    session: Session,
    authority: CertificateAuthority,
    common_name: str,
    status: CertificateStatus,
    *,
    csr_pem: str | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
    fields: Mapping[str, str] | None = None,
) -> tuple[Certificate, str | None]:
    """Issue and store (not commit) a certificate for ``common_name``: for the key in ``csr_pem``, or with a
    new key pair whose private key is returned (once; it is never stored).

    Raises:
        InvalidRequestError: the CSR or a value is refused; ``fields`` maps the CA's field names to the
            caller's request field names.
    """
    try:
        if csr_pem is None:
            issued, private_key_pem = authority.issue_with_new_key(common_name, valid_days=valid_days)
        else:
            issued = authority.sign_csr(csr_pem, common_name=common_name, valid_days=valid_days)
            private_key_pem = None
    except CertificateError as exc:
        raise InvalidRequestError((fields or {}).get(exc.field, exc.field), exc.problem) from exc
    certificate = Certificate(
        certificate_id=issued.certificate_id,
        pem=issued.certificate_pem,
        serial_hex=issued.serial_hex,
        common_name=issued.common_name,
        status=status,
        not_after=issued.not_after,
    )
    session.add(certificate)
    session.flush()
    return certificate, private_key_pem


def get_certificate(session: Session, certificate_id: str) -> Certificate:
    """The certificate with id ``certificate_id``."""
    certificate = session.scalar(sa.select(Certificate).where(Certificate.certificate_id == certificate_id))
    if certificate is None:
        raise NotFoundError(CERTIFICATE, certificate_id)
    return certificate


def list_certificates(
    session: Session, *, limit: int = 100, offset: int = 0, status: CertificateStatus | None = None
) -> Page[Certificate]:
    """Certificates, newest first, optionally only those with ``status``."""
    _check_page(limit, offset)
    where = [] if status is None else [Certificate.status == status]
    total = session.scalar(sa.select(sa.func.count()).select_from(Certificate).where(*where)) or 0
    items = session.scalars(
        sa.select(Certificate)
        .where(*where)
        .order_by(Certificate.created_at.desc(), Certificate.certificate_id)
        .limit(limit)
        .offset(offset)
    )
    return Page(list(items), total)


def update_certificate_status(
    session: Session, certificate_id: str, status: CertificateStatus
) -> Certificate:
    """Move a certificate to ``status`` if its lifecycle allows it (nothing leaves REVOKED)."""
    certificate = get_certificate(session, certificate_id)
    try:
        certificate.status = change_status(certificate.status, status)
    except CertificateStatusError as exc:
        raise CloudConflictError(
            f"Certificate {certificate_id!r} is {exc.current.value} and cannot become {exc.target.value}"
        ) from exc
    session.commit()
    logger.info(
        "certificate-status-changed", extra={"certificate_id": certificate_id, "status": status.value}
    )
    return certificate


def delete_certificate(
    session: Session, certificate_id: str, *, now: datetime.datetime | None = None
) -> None:
    """Delete an INACTIVE or REVOKED certificate that no thing or policy is attached to.

    Its serial stays on the CRL until the certificate expires (the device still holds it), and the
    tombstones of certificates that expired by ``now`` go.
    """
    certificate = get_certificate(session, certificate_id)
    if certificate.status not in (CertificateStatus.INACTIVE, CertificateStatus.REVOKED):
        raise CloudConflictError(
            f"Certificate {certificate_id!r} is {certificate.status.value}; only an INACTIVE or REVOKED"
            " certificate can be deleted"
        )
    things = list_certificate_things(session, certificate_id)
    if things:
        raise CloudConflictError(
            f"Certificate {certificate_id!r} is attached to thing {things[0].name!r}; detach it first"
        )
    policy = session.scalar(
        sa.select(Policy.name)
        .join(PolicyCertificateAttachment, PolicyCertificateAttachment.policy_id == Policy.id)
        .where(PolicyCertificateAttachment.certificate_id == certificate.id)
        .order_by(Policy.name)
        .limit(1)
    )
    if policy is not None:
        raise CloudConflictError(
            f"Certificate {certificate_id!r} has policy {policy!r} attached; detach it first"
        )
    now = now or utcnow()
    session.execute(sa.delete(DeletedCertificate).where(DeletedCertificate.not_after <= now))
    session.add(
        DeletedCertificate(
            certificate_id=certificate.certificate_id,
            serial_hex=certificate.serial_hex,
            common_name=certificate.common_name,
            not_after=certificate.not_after,
            deleted_at=now,
        )
    )
    session.delete(certificate)
    session.commit()
    logger.info("certificate-deleted", extra={"certificate_id": certificate_id})


def revoked_serials(session: Session, *, now: datetime.datetime | None = None) -> list[int]:
    """Serial numbers refused for good, for the CRL: REVOKED certificates, and deleted ones that have not
    expired by ``now`` (after that the device's TLS handshake fails on the date alone)."""
    now = now or utcnow()
    revoked = session.scalars(
        sa.select(Certificate.serial_hex).where(Certificate.status == CertificateStatus.REVOKED)
    )
    deleted = session.scalars(
        sa.select(DeletedCertificate.serial_hex).where(DeletedCertificate.not_after > now)
    )
    return sorted({int(serial, 16) for serial in [*revoked, *deleted]})


def held_serials(session: Session) -> list[int]:
    """Serial numbers refused for now, for the CRL: certificates on hold (INACTIVE, PENDING_TRANSFER), and
    any other but REVOKED whose CN is reserved for the cloud's own clients (issued before names were)."""
    hex_serials = session.scalars(
        sa.select(Certificate.serial_hex).where(
            Certificate.status.in_([CertificateStatus.INACTIVE, CertificateStatus.PENDING_TRANSFER])
            | (
                Certificate.common_name.startswith(rules.RESERVED_PREFIX, autoescape=True)
                & (Certificate.status != CertificateStatus.REVOKED)
            )
        )
    )
    return sorted(int(serial, 16) for serial in hex_serials)


# Policies


def check_policy_name(field: str, name: str) -> None:
    """Raise unless ``name`` is a valid policy name (AWS: 1-128 of letters, digits and _+=,.@-)."""
    if not 1 <= len(name) <= POLICY_NAME_MAX_LENGTH or re.fullmatch(POLICY_NAME_PATTERN, name) is None:
        raise InvalidRequestError(
            field, f"{name!r} must be 1-{POLICY_NAME_MAX_LENGTH} characters of letters, digits and _+=,.@-"
        )


def check_policy_document(field: str, document: str) -> PolicyDocument:
    """The parsed ``document``; raises naming every problem in it."""
    try:
        return parse_policy(document)
    except PolicyError as exc:
        raise InvalidRequestError(field, "; ".join(str(problem) for problem in exc.problems)) from exc


def create_policy(session: Session, name: str, document: str) -> Policy:
    """Create the policy ``name`` with the JSON ``document``."""
    check_policy_name("policyName", name)
    check_policy_document("policyDocument", document)
    if session.scalar(sa.select(Policy.id).where(Policy.name == name)) is not None:
        raise AlreadyExistsError(POLICY, name)
    policy = Policy(name=name, document=document)
    session.add(policy)
    try:
        session.commit()
    except IntegrityError as exc:
        # Two requests raced to create the same name; the unique constraint decided.
        session.rollback()
        raise AlreadyExistsError(POLICY, name) from exc
    logger.info("policy-created", extra={"policy": name})
    return policy


def ensure_default_policy(session: Session) -> Policy:
    """The default device policy, created if it does not exist (an operator's edits are kept)."""
    existing = session.scalar(sa.select(Policy).where(Policy.name == DEFAULT_DEVICE_POLICY_NAME))
    if existing is not None:
        return existing
    return create_policy(session, DEFAULT_DEVICE_POLICY_NAME, json.dumps(default_device_policy(), indent=2))


def get_policy(session: Session, name: str) -> Policy:
    """The policy called ``name``."""
    policy = session.scalar(sa.select(Policy).where(Policy.name == name))
    if policy is None:
        raise NotFoundError(POLICY, name)
    return policy


def list_policies(session: Session, *, limit: int = 100, offset: int = 0) -> Page[Policy]:
    """Policies by name."""
    _check_page(limit, offset)
    total = session.scalar(sa.select(sa.func.count()).select_from(Policy)) or 0
    items = session.scalars(sa.select(Policy).order_by(Policy.name).limit(limit).offset(offset))
    return Page(list(items), total)


def update_policy(session: Session, name: str, document: str) -> Policy:
    """Replace the document of policy ``name``; it applies to every target at once."""
    policy = get_policy(session, name)
    check_policy_document("policyDocument", document)
    policy.document = document
    policy.updated_at = utcnow()
    session.commit()
    logger.info("policy-updated", extra={"policy": name})
    return policy


def delete_policy(session: Session, name: str) -> None:
    """Delete a policy that is attached to nothing."""
    policy = get_policy(session, name)
    targets = list_policy_targets(session, name)
    if targets.certificate_ids or targets.group_names:
        target = (
            f"certificate {targets.certificate_ids[0]!r}"
            if targets.certificate_ids
            else f"thing group {targets.group_names[0]!r}"
        )
        raise CloudConflictError(f"Policy {name!r} is attached to {target}; detach it first")
    session.delete(policy)
    session.commit()
    logger.info("policy-deleted", extra={"policy": name})


# Attachments


@dataclass(frozen=True)
class PolicyTargets:
    """What a policy is attached to."""

    certificate_ids: list[str]
    group_names: list[str]


def attach_policy_to_certificate(session: Session, policy_name: str, certificate_id: str) -> None:
    """Attach a policy to a certificate; attaching it again changes nothing."""
    policy = get_policy(session, policy_name)
    certificate = get_certificate(session, certificate_id)
    attached = list(
        session.scalars(
            sa.select(PolicyCertificateAttachment.policy_id).where(
                PolicyCertificateAttachment.certificate_id == certificate.id
            )
        )
    )
    if policy.id in attached:
        return
    if len(attached) >= MAX_POLICIES_PER_TARGET:
        raise LimitExceededError(
            f"Certificate {certificate_id!r} already has {MAX_POLICIES_PER_TARGET} policies, the maximum"
        )
    session.add(PolicyCertificateAttachment(policy_id=policy.id, certificate_id=certificate.id))
    session.commit()
    logger.info("policy-attached", extra={"policy": policy_name, "certificate_id": certificate_id})


def detach_policy_from_certificate(session: Session, policy_name: str, certificate_id: str) -> None:
    """Detach a policy from a certificate; detaching one not attached changes nothing."""
    policy = get_policy(session, policy_name)
    certificate = get_certificate(session, certificate_id)
    session.execute(
        sa.delete(PolicyCertificateAttachment).where(
            PolicyCertificateAttachment.policy_id == policy.id,
            PolicyCertificateAttachment.certificate_id == certificate.id,
        )
    )
    session.commit()
    logger.info("policy-detached", extra={"policy": policy_name, "certificate_id": certificate_id})


def attach_policy_to_group(session: Session, policy_name: str, group_name: str) -> None:
    """Attach a policy to a thing group (its child groups and all their things inherit it)."""
    policy = get_policy(session, policy_name)
    group = registry.get_group(session, group_name)
    attached = list(
        session.scalars(
            sa.select(PolicyGroupAttachment.policy_id).where(PolicyGroupAttachment.group_id == group.id)
        )
    )
    if policy.id in attached:
        return
    if len(attached) >= MAX_POLICIES_PER_TARGET:
        raise LimitExceededError(
            f"Thing group {group_name!r} already has {MAX_POLICIES_PER_TARGET} policies, the maximum"
        )
    session.add(PolicyGroupAttachment(policy_id=policy.id, group_id=group.id))
    session.commit()
    logger.info("policy-attached", extra={"policy": policy_name, "thing_group": group_name})


def detach_policy_from_group(session: Session, policy_name: str, group_name: str) -> None:
    """Detach a policy from a thing group; detaching one not attached changes nothing."""
    policy = get_policy(session, policy_name)
    group = registry.get_group(session, group_name)
    session.execute(
        sa.delete(PolicyGroupAttachment).where(
            PolicyGroupAttachment.policy_id == policy.id, PolicyGroupAttachment.group_id == group.id
        )
    )
    session.commit()
    logger.info("policy-detached", extra={"policy": policy_name, "thing_group": group_name})


def list_policy_targets(session: Session, policy_name: str) -> PolicyTargets:
    """The certificates (by id) and thing groups (by name) a policy is attached to."""
    policy = get_policy(session, policy_name)
    certificate_ids = session.scalars(
        sa.select(Certificate.certificate_id)
        .join(PolicyCertificateAttachment, PolicyCertificateAttachment.certificate_id == Certificate.id)
        .where(PolicyCertificateAttachment.policy_id == policy.id)
        .order_by(Certificate.certificate_id)
    )
    group_names = session.scalars(
        sa.select(ThingGroup.name)
        .join(PolicyGroupAttachment, PolicyGroupAttachment.group_id == ThingGroup.id)
        .where(PolicyGroupAttachment.policy_id == policy.id)
        .order_by(ThingGroup.name)
    )
    return PolicyTargets(list(certificate_ids), list(group_names))


def attach_thing_principal(session: Session, thing_name: str, certificate_id: str) -> None:
    """Attach a certificate to a thing; its CN must be the thing name (the broker knows devices by CN)."""
    thing = registry.get_thing(session, thing_name)
    certificate = get_certificate(session, certificate_id)
    if certificate.common_name != thing.name:
        raise CloudConflictError(
            f"Certificate {certificate_id!r} was issued for {certificate.common_name!r}, not thing"
            f" {thing_name!r}: the gateway knows a device by its certificate's common name"
        )
    exists = session.scalar(
        sa.select(ThingPrincipal.thing_id).where(
            ThingPrincipal.thing_id == thing.id, ThingPrincipal.certificate_id == certificate.id
        )
    )
    if exists is not None:
        return
    session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
    session.commit()
    logger.info("thing-principal-attached", extra={"thing": thing_name, "certificate_id": certificate_id})


def detach_thing_principal(session: Session, thing_name: str, certificate_id: str) -> None:
    """Detach a certificate from a thing; detaching one not attached changes nothing."""
    thing = registry.get_thing(session, thing_name)
    certificate = get_certificate(session, certificate_id)
    session.execute(
        sa.delete(ThingPrincipal).where(
            ThingPrincipal.thing_id == thing.id, ThingPrincipal.certificate_id == certificate.id
        )
    )
    session.commit()
    logger.info("thing-principal-detached", extra={"thing": thing_name, "certificate_id": certificate_id})


def list_thing_principals(session: Session, thing_name: str) -> list[Certificate]:
    """The certificates attached to a thing, by id."""
    thing = registry.get_thing(session, thing_name)
    return list(
        session.scalars(
            sa.select(Certificate)
            .join(ThingPrincipal, ThingPrincipal.certificate_id == Certificate.id)
            .where(ThingPrincipal.thing_id == thing.id)
            .order_by(Certificate.certificate_id)
        )
    )


def list_certificate_things(session: Session, certificate_id: str) -> list[Thing]:
    """The things a certificate is attached to, by name."""
    certificate = get_certificate(session, certificate_id)
    return list(
        session.scalars(
            sa.select(Thing)
            .join(ThingPrincipal, ThingPrincipal.thing_id == Thing.id)
            .where(ThingPrincipal.certificate_id == certificate.id)
            .order_by(Thing.name)
        )
    )


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit", f"{limit} is not between 1 and 1000")
    if offset < 0:
        raise InvalidRequestError("offset", f"{offset} is negative")
