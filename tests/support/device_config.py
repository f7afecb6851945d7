"""The runtime configuration file of a device whose cloud is a test broker: thing name, its certificate from the
test CA, and a cloud link that reconnects within half a second."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.pki import CertificateAuthority


def write_device_config(path: Path, *, thing: str, ca: CertificateAuthority, port: int) -> Path:
    """Write ``edgewise.yaml`` for ``thing`` (its certificate issued now) connecting to ``localhost:port``."""
    device = ca.issue(thing)
    path.write_text(
        textwrap.dedent(
            f"""\
            thingName: {thing}
            cloud:
              endpoint: localhost
              port: {port}
              certificate: {device.certificate}
              privateKey: {device.private_key}
              rootCa: {ca.certificate}
              keepAlive: 10
              reconnect: {{minDelay: 0.1, maxDelay: 0.5}}
            """
        )
    )
    return path
