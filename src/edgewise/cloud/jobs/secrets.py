"""Secret values in job documents: sealed at rest, opened only for the device, redacted in every view.

A Greengrass deployment may carry secrets for the device's secret manager (docs/runtime.md, "Secrets")::

    {"components": {"aws.greengrass.SecretManager": {"configurationUpdate": {"merge": {"secrets": [
        {"arn": "arn:aws:secretsmanager:...", "versionId": "v1", "secretString": "..."}]}}}}}

The same components map appears in a job's document and in a deployment as requested. Before either is stored,
:meth:`SecretSealer.seal` replaces every ``secretString`` / ``secretBinary`` by an envelope
``{"sealed": "AES-256-GCM", "nonce": ..., "ciphertext": ...}``: AES-256-GCM under the cloud's key, with the job
id, the secret's ARN, version and the value's kind as associated data, so an envelope opens only in the job it
was sealed for. The jobs worker calls :meth:`SecretSealer.open` on the document it sends a device that has an
execution of that job (over its mutual-TLS connection); the REST API and the CLI only ever show
:func:`redact`'s marker in place of a value.

The key is 32 random bytes, base64, in ``DATA_DIR/job-secrets.key`` (mode 0600), created on first start. Losing it loses
the stored values (deploy them again); anyone who can read it and the database can decrypt them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Depends, Request

from edgewise.cloud.errors import InvalidRequestError
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

SECRET_MANAGER = "aws.greengrass.SecretManager"  # noqa: S105 (a component name, not a password)
KINDS = ("secretString", "secretBinary")
#: What every API and CLI view shows in place of a secret value.
REDACTED = "<redacted>"
KEY_FILE = "job-secrets.key"
ALGORITHM = "AES-256-GCM"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class SecretSealError(EdgewiseError):
    """A sealed value that does not open under this cloud's key for this job (tampered, or another key)."""


def _entries(components: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(field path, entry)`` of each secret entry of a components map; the entries are the map's own."""
    manager = components.get(SECRET_MANAGER)
    update = manager.get("configurationUpdate") if isinstance(manager, dict) else None
    merge = update.get("merge") if isinstance(update, dict) else None
    listed = merge.get("secrets") if isinstance(merge, dict) else None
    if not isinstance(listed, list):
        return
    for index, entry in enumerate(listed):
        if isinstance(entry, dict):
            yield f"components.{SECRET_MANAGER}.configurationUpdate.merge.secrets[{index}]", entry


def _is_envelope(value: object) -> bool:
    return isinstance(value, dict) and value.get("sealed") == ALGORITHM


def _transformed(
    components: Mapping[str, Any], change: Callable[[str, dict[str, Any], str], object]
) -> dict[str, Any]:
    """A deep copy of ``components`` with each secret value replaced by ``change(field, entry, kind)``."""
    result = copy.deepcopy(dict(components))
    for where, entry in _entries(result):
        for kind in KINDS:
            if kind in entry:
                entry[kind] = change(f"{where}.{kind}", entry, kind)
    return result


def redact_components(components: Mapping[str, Any]) -> dict[str, Any]:
    """``components`` with every secret value, sealed or not, replaced by :data:`REDACTED`."""
    return _transformed(components, lambda _where, _entry, _kind: REDACTED)


def redact(document: Mapping[str, Any]) -> dict[str, Any]:
    """A job document with every secret value replaced by :data:`REDACTED` (what the API shows)."""
    components = document.get("components")
    if not isinstance(components, dict):
        return dict(document)
    return {**document, "components": redact_components(components)}


def _associated_data(job_id: str, entry: Mapping[str, Any], kind: str) -> bytes:
    return json.dumps([job_id, entry.get("arn"), entry.get("versionId"), kind]).encode()


class SecretSealer:
    """Seals and opens the secret values of job documents with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"A job secrets key is {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SecretSealer:
        """The sealer of the key in ``data_dir``, created (mode 0600) if there is none. Blocks (file I/O).

        Raises:
            ValueError: the key file does not hold a key.
        """
        path = data_dir / KEY_FILE
        if not path.exists() and create_key_file(
            path, (base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode() + "\n").encode("ascii")
        ):
            logger.info("job-secrets-key-created", extra={"path": str(path)})
        text = path.read_text(encoding="ascii").strip()
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{path} does not hold a base64 job secrets key") from None
        return cls(key)

    def seal_components(self, components: Mapping[str, Any], *, job_id: str) -> dict[str, Any]:
        """A copy of ``components`` with every secret value replaced by an envelope for ``job_id``.

        Raises:
            InvalidRequestError: a value is the redaction marker of an API view, or not a string (an envelope
                included: only this cloud makes them, and it never shows one).
        """

        def seal(where: str, entry: dict[str, Any], kind: str) -> object:
            value = entry[kind]
            if value == REDACTED:
                raise InvalidRequestError(
                    where,
                    f"is the marker {REDACTED!r} an API view shows, not a value; give the secret's value",
                )
            if not isinstance(value, str):
                raise InvalidRequestError(where, f"must be a string, not {type(value).__name__}")
            nonce = secrets.token_bytes(_NONCE_BYTES)
            sealed = self._aead.encrypt(
                nonce, value.encode("utf-8", "surrogatepass"), _associated_data(job_id, entry, kind)
            )
            return {
                "sealed": ALGORITHM,
                "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(sealed).decode(),
            }

        return _transformed(components, seal)

    def seal(self, document: Mapping[str, Any], *, job_id: str) -> dict[str, Any]:
        """A job document with its secret values sealed for ``job_id`` (see :meth:`seal_components`).

        Raises:
            InvalidRequestError: a value is the redaction marker of an API view, or not a string.
        """
        components = document.get("components")
        if not isinstance(components, dict):
            return dict(document)
        return {**document, "components": self.seal_components(components, job_id=job_id)}

    def open(self, document: Mapping[str, Any], *, job_id: str) -> dict[str, Any]:
        """A job document with its envelopes opened: what the device ``job_id`` is for gets. Blocks (CPU).

        Raises:
            SecretSealError: an envelope was not sealed for ``job_id`` under this key.
        """
        components = document.get("components")
        if not isinstance(components, dict):
            return dict(document)

        def unseal(where: str, entry: dict[str, Any], kind: str) -> object:
            value = entry[kind]
            if not _is_envelope(value):
                return value
            try:
                nonce = base64.b64decode(value["nonce"], validate=True)
                sealed = base64.b64decode(value["ciphertext"], validate=True)
                clear = self._aead.decrypt(nonce, sealed, _associated_data(job_id, entry, kind))
            except (InvalidTag, binascii.Error, ValueError, TypeError, KeyError):
                raise SecretSealError(
                    f"The sealed value at {where!r} of job {job_id!r} does not open under this cloud's key"
                ) from None
            return clear.decode("utf-8", "surrogatepass")

        return {**document, "components": _transformed(components, unseal)}


def create_key_file(path: Path, key: bytes) -> bool:
    """Write a new key file (``key``, its whole content) to ``path``, readable by the owner only; a key another
    process wrote first wins. Whether this call wrote it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(key)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return False
        return True
    finally:
        partial.unlink(missing_ok=True)


def secret_sealer(request: Request) -> SecretSealer:
    """The sealer the app was created with."""
    sealer: SecretSealer = request.app.state.services.secret_sealer
    return sealer


SealerDep = Annotated[SecretSealer, Depends(secret_sealer)]
