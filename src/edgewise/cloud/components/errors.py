"""The errors of the component registry and its artifact store.

CloudError
 ├── InvalidRequestError
 │    └── DigestMismatchError      the bytes do not have the SHA-256 they were announced with
 └── NotFoundError
      └── ArtifactNotFoundError    the store holds no file with that SHA-256
EdgewiseError
 └── ArtifactStoreError            the store itself failed (a bucket unreachable, access denied, a full disk)
"""

from __future__ import annotations

from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.errors import EdgewiseError


class ArtifactNotFoundError(NotFoundError):
    """No artifact with this SHA-256 is stored."""

    def __init__(self, sha256: str) -> None:
        super().__init__("Artifact", sha256)
        self.sha256 = sha256


class DigestMismatchError(InvalidRequestError):
    """Received bytes whose SHA-256 is not the expected one; nothing was stored."""

    def __init__(self, *, expected: str, actual: str, size: int) -> None:
        super().__init__(
            "sha256", f"the {size} bytes received have SHA-256 {actual}, not the expected {expected}"
        )
        self.expected = expected
        self.actual = actual


class ArtifactStoreError(EdgewiseError):
    """The artifact store failed; the message names the store, the operation and the artifact."""
