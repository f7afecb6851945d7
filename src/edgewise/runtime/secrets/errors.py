"""Errors of the secret store. Messages name secrets and versions, never their values.

EdgewiseError
 └── SecretError
      ├── SecretNotFoundError     no such secret, version or stage
      └── SecretStoreError        the key or the encrypted store cannot be used
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class SecretError(EdgewiseError):
    """Base class of secret errors."""


class SecretNotFoundError(SecretError):
    """The secret, or the version or stage asked for, is not on this device."""

    def __init__(self, secret_id: str, message: str) -> None:
        super().__init__(message)
        self.secret_id = secret_id


class SecretStoreError(SecretError):
    """The key file or the encrypted values cannot be read, written or decrypted."""
