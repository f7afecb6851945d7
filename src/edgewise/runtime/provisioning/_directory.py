"""The directory a provisioned device starts from: its certificate, its private key, the cloud's CA and
``edgewise.yaml`` (the runtime configuration file) naming them by paths relative to it, so the directory can be
moved to the device as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgewise.protocol.device_config import CloudSection, DeviceConfig, write_device_config

CERTIFICATE_FILE = "device.pem.crt"
PRIVATE_KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "root-ca.pem"
CONFIG_FILE = "edgewise.yaml"
DEVICE_FILES = (CERTIFICATE_FILE, PRIVATE_KEY_FILE, ROOT_CA_FILE, CONFIG_FILE)


def _config(thing: str, host: str, port: int, https_port: int | None) -> DeviceConfig:
    cloud = CloudSection(
        endpoint=host,
        port=port,
        https_port=CloudSection.https_port if https_port is None else https_port,
        certificate=Path(CERTIFICATE_FILE),
        private_key=Path(PRIVATE_KEY_FILE),
        root_ca=Path(ROOT_CA_FILE),
    )
    return DeviceConfig(thing_name=thing, cloud=cloud)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file only its owner can read; the file must not exist yet."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)


def write_device_directory(
    out: Path,
    *,
    thing: str,
    certificate_pem: str,
    private_key_pem: str,
    root_ca_pem: str,
    host: str,
    port: int,
    https_port: int | None = None,
) -> list[Path]:
    """Write a device's certificate, key (0600), CA and ``edgewise.yaml`` into ``out``, replacing what is
    there; the paths written. ``https_port`` is the cloud's HTTPS listener (None: the default). Blocks."""
    files = [out / name for name in DEVICE_FILES]
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        path.unlink(missing_ok=True)
    _write_private(out / PRIVATE_KEY_FILE, private_key_pem)
    (out / CERTIFICATE_FILE).write_text(certificate_pem, encoding="ascii")
    (out / ROOT_CA_FILE).write_text(root_ca_pem, encoding="ascii")
    (out / CONFIG_FILE).write_text(
        write_device_config(_config(thing, host, port, https_port)), encoding="utf-8"
    )
    os.chmod(out / CONFIG_FILE, 0o644)
    return files
