"""``edgewise device bootstrap --claim-cert``: the claim path of the command, as a device does it on first boot.

It checks the claim files and the template parameters, shows each step of provisioning by claim as it starts,
prints what the cloud refused, and writes the device directory. The provisioning itself (MQTT with the claim
certificate, keys and CSRs) is the device's: :mod:`edgewise.runtime.provisioning`.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgewise.cli.connection import err_console, fail
from edgewise.protocol.provisioning import TEMPLATE_NAME_PATTERN
from edgewise.runtime.provisioning import (
    ClaimError,
    ClaimIdentity,
    provision_by_claim,
    write_device_directory,
)


def parse_parameters(values: list[str] | None) -> dict[str, str]:
    """``--parameter NAME=VALUE`` options as template parameters; exits on a malformed or repeated one."""
    parameters: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--parameter: expected NAME=VALUE, got {item!r}")
        if name in parameters:
            fail(f"--parameter: {name!r} is given twice")
        parameters[name] = value
    return parameters


def _read_pem(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{option}: cannot read {path}: {exc.strerror}")


def _check_claim_files(certificate: Path, key: Path, root_ca: Path) -> str:
    """Exit naming the option whose file is missing or wrong; the CA's PEM text."""
    try:
        claim = x509.load_pem_x509_certificate(_read_pem(certificate, "--claim-cert"))
    except ValueError:
        fail(f"--claim-cert: {certificate} is not a PEM certificate")
    try:
        private_key = serialization.load_pem_private_key(_read_pem(key, "--claim-key"), password=None)
    except (ValueError, TypeError):
        fail(f"--claim-key: {key} is not an unencrypted PEM private key")
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(*public) != claim.public_key().public_bytes(*public):
        fail(f"--claim-key: {key} is not the key of --claim-cert {certificate}")
    ca_pem = _read_pem(root_ca, "--ca")
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        fail(f"--ca: {root_ca} is not a PEM certificate")
    return ca_pem.decode("ascii")


def bootstrap_by_claim(
    out: Path,
    claim_cert: Path,
    claim_key: Path,
    root_ca: Path,
    *,
    template: str,
    parameters: dict[str, str],
    use_csr: bool,
    host: str,
    port: int,
    timeout: float,
    https_port: int | None = None,
) -> list[Path]:
    """Provision by claim, showing each step, and write the device directory into ``out``; the paths written.
    Exits with the reason when a file is wrong or a step fails, having written nothing."""
    if re.fullmatch(TEMPLATE_NAME_PATTERN, template) is None:
        fail(f"--template: {template!r} must be 1-36 letters, digits, '_' or '-'")
    root_ca_pem = _check_claim_files(claim_cert, claim_key, root_ca)
    identity = ClaimIdentity(certificate=claim_cert, private_key=claim_key, root_ca=root_ca)
    try:
        with err_console.status(f"Connecting to {host}:{port}") as status:
            device = provision_by_claim(
                host,
                port,
                identity,
                template=template,
                parameters=parameters,
                use_csr=use_csr,
                timeout=timeout,
                on_step=status.update,
            )
    except ClaimError as exc:
        fail(str(exc))
    files = write_device_directory(
        out,
        thing=device.thing_name,
        certificate_pem=device.certificate_pem,
        private_key_pem=device.private_key_pem,
        root_ca_pem=root_ca_pem,
        host=host,
        port=port,
        https_port=https_port,
    )
    typer.echo(
        f"Provisioned thing {device.thing_name} with certificate {device.certificate_id} (template {template})"
    )
    if device.device_configuration:
        pairs = ", ".join(f"{key}={value}" for key, value in sorted(device.device_configuration.items()))
        typer.echo(f"Device configuration: {pairs}")
    return files
