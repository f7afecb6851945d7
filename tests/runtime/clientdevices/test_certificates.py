"""The core's local CA and the broker's server certificate: made once and kept, signed by the CA with the right
names, rotated at 80 % of its validity and when its names change (an injected clock)."""

from __future__ import annotations

import datetime
import socket
import stat
from pathlib import Path

from cryptography import x509

from edgewise.runtime.clientdevices.certificates import CoreCertificates, host_names


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _names(path: Path) -> set[str]:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name) for name in names.get_values_for_type(x509.DNSName)} | {
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    }


def test_the_local_ca_is_made_once_with_a_private_key_and_kept(tmp_path: Path) -> None:
    first = CoreCertificates(tmp_path, clock=Clock())
    first.open()
    again = CoreCertificates(tmp_path, clock=Clock())
    again.open()

    assert again.ca_pem == first.ca_pem
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(first.ca_pem.encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_server_certificate_is_signed_by_the_ca_for_its_names_and_rotated(tmp_path: Path) -> None:
    clock = Clock()
    certificates = CoreCertificates(tmp_path, clock=clock)
    certificates.open()
    names = ["localhost", "127.0.0.1", "192.0.2.7"]
    assert certificates.needs_server_certificate(names)

    server = certificates.issue_server_certificate(names, 200_000)

    certificate = x509.load_pem_x509_certificate(server.certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(certificates.ca_pem.encode())
    certificate.verify_directly_issued_by(ca)
    assert _names(server.certificate) == set(names)
    assert certificate.not_valid_after_utc == datetime.datetime.fromtimestamp(
        clock.now + 200_000, datetime.UTC
    )
    assert stat.S_IMODE(server.key.stat().st_mode) == 0o600
    assert not certificates.needs_server_certificate(reversed(names))
    # Rotated at 80 % of its validity...
    clock.now += 0.8 * 200_000 - 1
    assert not certificates.needs_server_certificate(names)
    clock.now += 1
    assert certificates.needs_server_certificate(names)
    certificates.issue_server_certificate(names, 200_000)
    assert not certificates.needs_server_certificate(names)
    # ... and when the addresses change.
    assert certificates.needs_server_certificate([*names, "198.51.100.1"])


def test_the_host_names_include_loopback_and_the_hosts_own() -> None:
    names = host_names()
    assert {"localhost", "127.0.0.1", socket.gethostname()} <= set(names)
    assert names == sorted(set(names))
