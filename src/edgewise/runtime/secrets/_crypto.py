"""The secret store's key and its AES-GCM encryption.

The key is 256 random bits in ``ROOT/secrets/secret.key``, created by the runtime with mode 0600 in a 0700
directory, so only the runtime's user can read it. When the runtime runs as root, components run as their own
user and cannot read the key (nor the encrypted values); a component running as the runtime's user could, which
is why production runtimes run as root with ``--run-as``.

Each value is encrypted with a fresh 96-bit nonce and bound to its secret, version and kind through the
associated data, so a ciphertext moved to another slot of the store fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.runtime.secrets.errors import SecretStoreError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

KEY_BYTES = 32
_NONCE_BYTES = 12


def _create_key(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    logger.info("Created the secret store key %s", path)


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, created (mode 0600) when missing. Blocks (file system).

    Raises:
        SecretStoreError: the key belongs to another user, or is not 32 bytes.
    """
    if not path.exists():
        _create_key(path)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise SecretStoreError(
            f"Secret key {path} belongs to user id {info.st_uid}, not to the runtime's user id {os.geteuid()}"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        logger.warning("Secret key %s was readable by others (mode %o); making it 0600", path, info.st_mode)
        path.chmod(0o600)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise SecretStoreError(
            f"Secret key {path} holds {len(key)} bytes instead of {KEY_BYTES}; without the original key "
            "the stored secrets cannot be read (deploy them again after removing the key and secrets.json)"
        )
    return key


class SecretCipher:
    """AES-256-GCM with the store's key; tokens are base64 of nonce + ciphertext + tag."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._cipher: AESGCM | None = None

    @property
    def _aead(self) -> AESGCM:
        # Loaded on first use: a runtime with no secrets never pays for the cryptography package.
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._cipher = AESGCM(self._key)
        return self._cipher

    def encrypt(self, plaintext: bytes, *, associated: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, associated)).decode("ascii")

    def decrypt(self, token: str, *, associated: bytes) -> bytes:
        """Raises:
        SecretStoreError: the token is damaged, or was encrypted with another key or for another slot.
        """
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(token, validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated)
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretStoreError("A stored secret value cannot be decrypted with the store's key") from None
