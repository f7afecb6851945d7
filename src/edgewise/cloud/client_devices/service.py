"""Client devices behind core devices: associations (Greengrass's BatchAssociateClientDeviceWithCoreDevice and
its disassociate twin), connectivity, the core device CA, and what each core may trust.

Associating works entry by entry as AWS's batch does: the core device must exist (else the whole request is a
404), and each entry that cannot be associated (no such thing, the core itself) comes back as an error entry
naming its thing while the others are stored. Associating twice keeps the first association and its time.
Every function blocks (database I/O) and commits what it changes.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from edgewise.cloud.client_devices.models import (
    ClientDeviceAssociation,
    CoreDeviceAuthority,
    CoreDeviceConnectivity,
)
from edgewise.cloud.db import utcnow
from edgewise.cloud.identity import Certificate, CertificateStatus, ThingPrincipal
from edgewise.cloud.registry import Thing
from edgewise.cloud.registry import service as registry
from edgewise.protocol.client_devices import (
    ClientCertificate,
    ClientDevice,
    ConnectivityEntry,
)

#: AWS's error codes in ``errorEntries``.
RESOURCE_NOT_FOUND: Final = "ResourceNotFoundException"
VALIDATION: Final = "ValidationException"
#: AWS's largest batch.
MAX_BATCH: Final = 100


@dataclass(frozen=True)
class EntryError:
    """An entry of a batch that was not applied, and why (AWS's ``errorEntries``)."""

    thing_name: str
    code: str
    message: str


@dataclass(frozen=True)
class Association:
    """A client device associated with a core device, and since when."""

    thing_name: str
    associated_at: datetime.datetime


@dataclass(frozen=True)
class Connectivity:
    """A core device's connectivity; ``version`` 0 and no entries when none was ever set."""

    entries: tuple[ConnectivityEntry, ...]
    version: int
    updated_at: datetime.datetime | None


@dataclass(frozen=True)
class DiscoveredCore:
    """A core device a client device may connect to: its addresses and the CAs of its broker certificate."""

    thing_name: str
    connectivity: tuple[ConnectivityEntry, ...]
    ca_certificates: tuple[str, ...]


def _things_by_name(session: Session, names: Iterable[str]) -> dict[str, Thing]:
    wanted = sorted(set(names))
    if not wanted:
        return {}
    return {thing.name: thing for thing in session.scalars(sa.select(Thing).where(Thing.name.in_(wanted)))}


def _check_entries(core: str, names: Sequence[str], found: dict[str, Thing]) -> list[EntryError]:
    errors: list[EntryError] = []
    for name in dict.fromkeys(names):
        if name == core:
            errors.append(EntryError(name, VALIDATION, f"Thing {name!r} is the core device itself"))
        elif name not in found:
            errors.append(EntryError(name, RESOURCE_NOT_FOUND, f"Thing {name!r} does not exist"))
    return errors


def associate(
    session: Session, core: str, names: Sequence[str], *, now: datetime.datetime | None = None
) -> list[EntryError]:
    """Associate the things ``names`` with core device ``core``; the entries that could not be, with why.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    core_thing = registry.get_thing(session, core)
    found = _things_by_name(session, names)
    errors = _check_entries(core, names, found)
    refused = {error.thing_name for error in errors}
    existing = set(
        session.scalars(
            sa.select(ClientDeviceAssociation.client_thing_id).where(
                ClientDeviceAssociation.core_thing_id == core_thing.id
            )
        )
    )
    when = now or utcnow()
    for name in dict.fromkeys(names):
        if name in refused or found[name].id in existing:
            continue
        session.add(
            ClientDeviceAssociation(
                core_thing_id=core_thing.id, client_thing_id=found[name].id, associated_at=when
            )
        )
    session.commit()
    return errors


def disassociate(session: Session, core: str, names: Sequence[str]) -> list[EntryError]:
    """Disassociate the things ``names`` from core device ``core`` (one not associated is no error); the entries
    that name no thing, with why.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    core_thing = registry.get_thing(session, core)
    found = _things_by_name(session, names)
    errors = [
        EntryError(name, RESOURCE_NOT_FOUND, f"Thing {name!r} does not exist")
        for name in dict.fromkeys(names)
        if name not in found
    ]
    ids = [thing.id for thing in found.values()]
    if ids:
        session.execute(
            sa.delete(ClientDeviceAssociation).where(
                ClientDeviceAssociation.core_thing_id == core_thing.id,
                ClientDeviceAssociation.client_thing_id.in_(ids),
            )
        )
    session.commit()
    return errors


def list_associations(session: Session, core: str) -> list[Association]:
    """The client devices associated with core device ``core``, by thing name.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    core_thing = registry.get_thing(session, core)
    rows = session.execute(
        sa.select(Thing.name, ClientDeviceAssociation.associated_at)
        .join(ClientDeviceAssociation, ClientDeviceAssociation.client_thing_id == Thing.id)
        .where(ClientDeviceAssociation.core_thing_id == core_thing.id)
        .order_by(Thing.name)
    )
    return [Association(name, when) for name, when in rows]


def associated_client_names(session: Session, core_thing_id: int) -> list[str]:
    """The thing names of the client devices associated with the core device whose thing id is given."""
    return list(
        session.scalars(
            sa.select(Thing.name)
            .join(ClientDeviceAssociation, ClientDeviceAssociation.client_thing_id == Thing.id)
            .where(ClientDeviceAssociation.core_thing_id == core_thing_id)
            .order_by(Thing.name)
        )
    )


# -- connectivity and the core device CA ----------------------------------------------------------------


def _entry_body(entry: ConnectivityEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "hostAddress": entry.host_address,
        "portNumber": entry.port_number,
        "metadata": entry.metadata,
    }


def _entries(rows: list[dict[str, object]]) -> tuple[ConnectivityEntry, ...]:
    return tuple(
        ConnectivityEntry(
            str(row["id"]), str(row["hostAddress"]), int(str(row["portNumber"])), str(row["metadata"])
        )
        for row in rows
    )


def get_connectivity(session: Session, core: str) -> Connectivity:
    """Core device ``core``'s connectivity.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    thing = registry.get_thing(session, core)
    row = session.get(CoreDeviceConnectivity, thing.id)
    if row is None:
        return Connectivity((), 0, None)
    return Connectivity(_entries(row.entries), row.version, row.updated_at)


def set_connectivity(session: Session, core: str, entries: Sequence[ConnectivityEntry]) -> Connectivity:
    """Replace core device ``core``'s connectivity with ``entries`` (checked by the protocol module); the new
    version.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    thing = registry.get_thing(session, core)
    row = session.get(CoreDeviceConnectivity, thing.id)
    now = utcnow()
    bodies = [_entry_body(entry) for entry in entries]
    if row is None:
        row = CoreDeviceConnectivity(thing_id=thing.id, entries=bodies, version=1, updated_at=now)
        session.add(row)
    else:
        row.entries, row.version, row.updated_at = bodies, row.version + 1, now
    session.commit()
    return Connectivity(tuple(entries), row.version, now)


def set_core_authorities(session: Session, core: str, certificates: Sequence[str]) -> None:
    """Replace the CA certificates (PEM) of core device ``core``'s broker.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    thing = registry.get_thing(session, core)
    row = session.get(CoreDeviceAuthority, thing.id)
    if row is None:
        session.add(
            CoreDeviceAuthority(thing_id=thing.id, certificates=list(certificates), updated_at=utcnow())
        )
    else:
        row.certificates, row.updated_at = list(certificates), utcnow()
    session.commit()


# -- what a core trusts, and what a client discovers ----------------------------------------------------


def client_devices_of(session: Session, core: str) -> tuple[ClientDevice, ...]:
    """The client devices associated with core device ``core``, each with its ACTIVE certificates.

    Raises:
        NotFoundError: there is no thing ``core``.
    """
    core_thing = registry.get_thing(session, core)
    return _client_devices(session, [core_thing.id]).get(core_thing.id, ())


def _client_devices(session: Session, core_ids: Sequence[int] | None) -> dict[int, tuple[ClientDevice, ...]]:
    """Each core's client devices with their ACTIVE certificates, for ``core_ids`` (every core: None)."""
    client = aliased(Thing)
    query = (
        sa.select(ClientDeviceAssociation.core_thing_id, client.name, Certificate.certificate_id)
        .join(client, client.id == ClientDeviceAssociation.client_thing_id)
        .outerjoin(ThingPrincipal, ThingPrincipal.thing_id == client.id)
        .outerjoin(
            Certificate,
            (Certificate.id == ThingPrincipal.certificate_id)
            & (Certificate.status == CertificateStatus.ACTIVE),
        )
        .order_by(ClientDeviceAssociation.core_thing_id, client.name, Certificate.certificate_id)
    )
    if core_ids is not None:
        query = query.where(ClientDeviceAssociation.core_thing_id.in_(core_ids))
    certificates: dict[int, dict[str, list[ClientCertificate]]] = {}
    for core_id, name, certificate_id in session.execute(query):
        listed = certificates.setdefault(core_id, {}).setdefault(name, [])
        if certificate_id is not None:
            # AWS's certificate id is the SHA-256 of the certificate's DER.
            listed.append(ClientCertificate(certificate_id, certificate_id))
    return {
        core_id: tuple(ClientDevice(name, tuple(found)) for name, found in devices.items())
        for core_id, devices in certificates.items()
    }


def trust_digests(session: Session) -> dict[str, str]:
    """A digest of each core device's trust list (its client devices and their ACTIVE certificates), by core
    thing name, for telling when one changed."""
    cores = sa.select(ClientDeviceAssociation.core_thing_id)
    names = {
        row.id: row.name
        for row in session.execute(sa.select(Thing.id, Thing.name).where(Thing.id.in_(cores)))
    }
    digests: dict[str, str] = {}
    for core_id, devices in _client_devices(session, None).items():
        text = ";".join(
            f"{device.thing_name}={','.join(c.certificate_id for c in device.certificates)}"
            for device in devices
        )
        digests[names[core_id]] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def discover(session: Session, client: str) -> list[DiscoveredCore]:
    """The core devices client device ``client`` is associated with, by thing name; none when it is not (or
    is no thing)."""
    core = aliased(Thing)
    client_thing = aliased(Thing)
    rows = session.execute(
        sa.select(core.name, CoreDeviceConnectivity.entries, CoreDeviceAuthority.certificates)
        .select_from(ClientDeviceAssociation)
        .join(core, core.id == ClientDeviceAssociation.core_thing_id)
        .join(client_thing, client_thing.id == ClientDeviceAssociation.client_thing_id)
        .outerjoin(CoreDeviceConnectivity, CoreDeviceConnectivity.thing_id == core.id)
        .outerjoin(CoreDeviceAuthority, CoreDeviceAuthority.thing_id == core.id)
        .where(client_thing.name == client)
        .order_by(core.name)
    )
    return [
        DiscoveredCore(name, _entries(entries or []), tuple(certificates or ()))
        for name, entries, certificates in rows
    ]
