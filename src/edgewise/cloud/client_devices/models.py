"""The client-device tables: which client devices each core device may let in, where client devices reach each
core device, and which CA signs each core device's local broker certificate.

Rows refer to things by id with ``ON DELETE CASCADE``: deleting a thing removes its associations, its
connectivity and its CA, as AWS does.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class ClientDeviceAssociation(Base):
    """A client device (a thing) associated with a core device (another thing): the core trusts it, discovery
    hands it the core's addresses, and the core may bridge its shadow."""

    __tablename__ = "client_device_associations"

    core_thing_id: Mapped[int] = mapped_column(
        sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True
    )
    client_thing_id: Mapped[int] = mapped_column(
        sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    associated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoreDeviceConnectivity(Base):
    """Where client devices reach a core device's broker (Greengrass's connectivity information), as the core's
    IP detector or an operator last set it; ``version`` counts the updates from 1."""

    __tablename__ = "core_device_connectivity"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    #: ``[{"id", "hostAddress", "portNumber", "metadata"}]``, checked by the protocol module before storing.
    entries: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=1)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CoreDeviceAuthority(Base):
    """The CA certificates (PEM) that sign a core device's broker certificate, as the core last reported them
    (Greengrass's PutCertificateAuthorities); discovery hands them to client devices."""

    __tablename__ = "core_device_authorities"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    certificates: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
