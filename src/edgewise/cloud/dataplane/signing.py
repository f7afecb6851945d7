"""Signed, expiring artifact URLs: ``<base>/artifacts/<sha256>?expires=<unix seconds>&signature=<hex>``.

The signature is HMAC-SHA256, under a key only the cloud holds, of ``GET``, the path and the expiry, so a
URL grants exactly one artifact until one moment. The key is generated on first start and kept in the data
directory (``dataplane/signing.key``, mode 0600); several cloud processes sharing that directory sign alike.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

from edgewise.cloud.components.store import check_sha256
from edgewise.errors import EdgewiseError

SIGNING_KEY_FILE = "signing.key"
URL_LIFETIME = 3600
_KEY_BYTES = 32
_KEY_TEXT = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class SignatureError(EdgewiseError):
    """A URL whose signature is missing, malformed, wrong or expired; the message says which."""


class SigningKeyError(EdgewiseError):
    """The signing key file exists but does not hold a key."""


def load_or_create_signing_key(directory: Path) -> bytes:
    """The key in ``directory/signing.key``, created (mode 0600) on first use. Blocks.

    Raises:
        SigningKeyError: the file holds something other than 64 hex digits.
    """
    path = directory / SIGNING_KEY_FILE
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        if not _KEY_TEXT.fullmatch(text):
            raise SigningKeyError(f"{path} does not hold a signing key (64 hex digits); remove it") from None
        return bytes.fromhex(text)
    key = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(descriptor, "w", encoding="ascii") as stream:
        stream.write(key.hex() + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    return key


def artifact_path(sha256: str) -> str:
    """The data plane path of an artifact."""
    return f"/artifacts/{check_sha256(sha256)}"


class UrlSigner:
    """Signs artifact URLs under ``base_url`` and checks the signatures of requests."""

    def __init__(self, key: bytes, base_url: str, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a signing key needs at least 16 bytes")
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._clock = clock

    def _signature(self, path: str, expires: int) -> str:
        message = f"GET\n{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, sha256: str, *, lifetime: int = URL_LIFETIME) -> str:
        """A URL for the artifact ``sha256`` that is valid for ``lifetime`` seconds from now."""
        path = artifact_path(sha256)
        expires = int(self._clock()) + lifetime
        return f"{self.base_url}{path}?expires={expires}&signature={self._signature(path, expires)}"

    def check(self, path: str, query: str) -> None:
        """Accept a request for ``path`` whose query string is ``query``, or raise.

        Raises:
            SignatureError: the query is malformed, the signature does not match, or it expired.
        """
        expires, signature = parse_signed_query(query)
        if not hmac.compare_digest(signature, self._signature(path, expires)):
            raise SignatureError("The signature does not match this URL")
        if expires < self._clock():
            raise SignatureError("The URL expired; ask for a new one")


def parse_signed_query(query: str) -> tuple[int, str]:
    """The ``expires`` and ``signature`` of a signed URL's query string.

    Raises:
        SignatureError: a parameter is missing, repeated, unknown or malformed.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, max_num_fields=4)
    except ValueError as exc:
        raise SignatureError(f"The query string is malformed: {exc}") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in ("expires", "signature"):
            raise SignatureError(f"Query parameter {name[:40]!r} is not part of a signed URL")
        if name in values:
            raise SignatureError(f"Query parameter {name!r} is given more than once")
        values[name] = value
    for name in ("expires", "signature"):
        if name not in values:
            raise SignatureError(f"Query parameter {name!r} is missing")
    if not _EXPIRES.fullmatch(values["expires"]):
        raise SignatureError("Query parameter 'expires' must be a time in seconds since 1970")
    if not _SIGNATURE.fullmatch(values["signature"]):
        raise SignatureError("Query parameter 'signature' must be 64 lowercase hex digits")
    return int(values["expires"]), values["signature"]
