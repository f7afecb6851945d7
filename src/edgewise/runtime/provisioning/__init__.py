"""A device's identity: provisioning by claim (a claim certificate traded for the device's own certificate and
thing over MQTT) and the directory of files the runtime starts from.

``edgewise device bootstrap`` uses it; the runtime process never imports it. The names that need paho-mqtt and
cryptography load on first use, so writing a device directory needs neither.

Usage::

    claim = ClaimIdentity(Path("claim.pem.crt"), Path("claim.private.pem.key"), Path("root-ca.pem"))
    device = provision_by_claim("cloud.example.com", 8883, claim, template="sensors", parameters={"Serial": "7"})
    write_device_directory(
        Path("device"),
        thing=device.thing_name,
        certificate_pem=device.certificate_pem,
        private_key_pem=device.private_key_pem,
        root_ca_pem=Path("root-ca.pem").read_text(),
        host="cloud.example.com",
        port=8883,
    )
"""

from typing import TYPE_CHECKING, Any

from edgewise.runtime.provisioning._directory import (
    CERTIFICATE_FILE,
    CONFIG_FILE,
    DEVICE_FILES,
    PRIVATE_KEY_FILE,
    ROOT_CA_FILE,
    write_device_directory,
)
from edgewise.runtime.provisioning.errors import (
    ClaimConnectionError,
    ClaimError,
    ClaimNotAuthorizedError,
    ClaimRejectedError,
    ClaimTimeoutError,
    rejection,
)

if TYPE_CHECKING:
    from edgewise.runtime.provisioning._claim import (
        ProvisionedDevice,
        provision_by_claim,
        provisioned_device,
    )
    from edgewise.runtime.provisioning._connection import ClaimIdentity

#: Names from the modules that import paho-mqtt and cryptography: loaded on first use.
_LAZY = {
    "ClaimIdentity": "_connection",
    "ProvisionedDevice": "_claim",
    "provision_by_claim": "_claim",
    "provisioned_device": "_claim",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "CERTIFICATE_FILE",
    "CONFIG_FILE",
    "DEVICE_FILES",
    "PRIVATE_KEY_FILE",
    "ROOT_CA_FILE",
    "ClaimConnectionError",
    "ClaimError",
    "ClaimIdentity",
    "ClaimNotAuthorizedError",
    "ClaimRejectedError",
    "ClaimTimeoutError",
    "ProvisionedDevice",
    "provision_by_claim",
    "provisioned_device",
    "rejection",
    "write_device_directory",
]
