"""What the Auth component decides, in one place: which certificate is which client device, what each device may
do, and the TLS settings the gate offers (the core's server certificate; the cloud CA and its CRL as the only
issuers of client certificates).

Nothing is trusted without a trust list younger than ``clientDeviceTrustDurationMinutes``: with none, the gate
refuses every handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from pathlib import Path
from typing import Final

from edgewise.runtime.clientdevices.auth_settings import AuthSettings
from edgewise.runtime.clientdevices.certificates import CoreCertificates
from edgewise.runtime.clientdevices.trust import TrustList, TrustStore
from edgewise.runtime.files import write_atomically

logger = logging.getLogger(__name__)

_ISSUERS: Final = "client-issuers.pem"


class Authority:
    """The Auth component's decisions for the gate and the broker. Must be used from the event loop; methods
    that block say so."""

    def __init__(self, settings: AuthSettings, trust: TrustStore, certificates: CoreCertificates) -> None:
        self.settings = settings
        self.trust = trust
        self.certificates = certificates
        self._context: ssl.SSLContext | None = None
        self._context_of: tuple[object, ...] | None = None
        self._building = asyncio.Lock()

    def trusted(self) -> TrustList | None:
        """The trust list in force, or None when there is none or it is too old."""
        return self.trust.current(self.settings.trust_duration)

    def identify(self, certificate_der: bytes) -> str | None:
        """The thing name of the client device whose ACTIVE certificate this is, or None."""
        trusted = self.trusted()
        return None if trusted is None else trusted.thing_of(hashlib.sha256(certificate_der).hexdigest())

    def may_connect(self, thing_name: str, client_id: str) -> bool:
        return self.settings.may_connect(thing_name, client_id)

    def broker_acls(self) -> dict[str, list[str]]:
        """Each trusted client device that some device group selects, with its broker ACL lines."""
        trusted = self.trusted()
        if trusted is None:
            return {}
        acls: dict[str, list[str]] = {}
        for device in trusted.devices.client_devices:
            if self.settings.statements_for(device.thing_name):
                acls[device.thing_name] = self.settings.acl_lines(device.thing_name)
        return acls

    async def context(self) -> ssl.SSLContext | None:
        """The gate's TLS server context, rebuilt (off the loop, one at a time) when the trust list or the server
        certificate changed; None while nothing can be trusted."""
        trusted, server = self.trusted(), self.certificates.server
        if trusted is None or server is None or not trusted.devices.ca_certificates:
            return None
        key = (trusted.devices.ca_certificates, trusted.devices.crl, server)
        async with self._building:
            if key != self._context_of:
                self._context = await asyncio.to_thread(self._build, trusted, server.certificate, server.key)
                self._context_of = key
        return self._context

    def _build(self, trusted: TrustList, certificate: Path, key: Path) -> ssl.SSLContext:
        """Blocks (file I/O)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, key)
        context.verify_mode = ssl.CERT_REQUIRED
        issuers = self.certificates.directory / _ISSUERS
        # A file, not cadata: only a file brings the CRL along with the certificates.
        text = "\n".join(pem.strip() for pem in trusted.devices.ca_certificates)
        if trusted.devices.crl:
            text += "\n" + trusted.devices.crl.strip()
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        write_atomically(issuers, (text + "\n").encode("ascii"), mode=0o600)
        context.load_verify_locations(cafile=issuers)
        return context
