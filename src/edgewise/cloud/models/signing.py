"""The cloud's Ed25519 model-signing key: it signs every model package the cloud builds, and devices trust it.

The key is PEM (PKCS #8, unencrypted) in ``DATA_DIR/model-signing.key`` (mode 0600), created on first use or
when the data directory is prepared. Devices trust its public half, ``ed25519:<base64>``, through the inference
component's ``trustedKeys``; deploying a model through the cloud puts it there. Losing the file means devices
must be given the new key (deploy a model again); anyone who can read it can sign packages devices accept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from edgewise.cloud.jobs.secrets import create_key_file
from edgewise.protocol.model_package import key_id, public_key_text

logger = logging.getLogger(__name__)

KEY_FILE = "model-signing.key"


@dataclass(frozen=True)
class SigningKey:
    """The cloud's model-signing key and how devices name its public half."""

    private_key: Ed25519PrivateKey

    def public_key_text(self) -> str:
        """The public key as devices trust it: ``ed25519:`` and the base64 of its raw 32 bytes."""
        return public_key_text(self.private_key.public_key())

    def key_id(self) -> str:
        """The key's fingerprint, as package manifests name it."""
        return key_id(self.private_key.public_key())


def load_or_create(data_dir: Path) -> SigningKey:
    """The signing key in ``data_dir``, created (mode 0600) if there is none. Blocks (file I/O).

    Raises:
        ValueError: the key file does not hold an Ed25519 private key in PEM.
    """
    path = data_dir / KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        if create_key_file(path, pem):
            logger.info("model-signing-key-created", extra={"path": str(path)})
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} does not hold a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return SigningKey(key)
