"""Encrypted secret values on disk: ``ROOT/secrets/secrets.json`` next to the key ``ROOT/secrets/secret.key``.

The file maps ARN → version id → ``{"kind": "secretString"|"secretBinary", "sealed": <AES-GCM token>}`` and
is rewritten atomically (temporary file, fsync, rename), mode 0600 in a 0700 directory. Only ciphertext is
written and only ciphertext stays in memory; values are decrypted when a component asks for them.
Which versions exist, with which stages, is the SecretManager configuration's business (see ``_config``):
the store only holds the values it references.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgewise.runtime.files import write_atomically
from edgewise.runtime.secrets._config import SecretVersion
from edgewise.runtime.secrets._crypto import SecretCipher, load_or_create_key
from edgewise.runtime.secrets.errors import SecretStoreError

logger = logging.getLogger(__name__)

KEY_FILE = "secret.key"
VALUES_FILE = "secrets.json"
_FORMAT = 1


def _associated(version: SecretVersion) -> bytes:
    return f"{version.arn}\n{version.version_id}\n{version.kind}".encode()


class SecretStore:
    """The encrypted values, keyed by ARN and version id. Methods block (small file I/O)."""

    def __init__(self, directory: Path, cipher: SecretCipher, values: dict[str, dict[str, Any]]) -> None:
        self.directory = directory
        self._cipher = cipher
        self._values = values

    @classmethod
    def open(cls, directory: Path) -> SecretStore:
        """Open the store in ``directory``, creating the directory (0700) and the key (0600) when missing.

        Raises:
            SecretStoreError: the key or the values file cannot be used.
        """
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        cipher = SecretCipher(load_or_create_key(directory / KEY_FILE))
        path = directory / VALUES_FILE
        values: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                document = json.loads(path.read_text("utf-8"))
                values = document["values"]
                if document.get("format") != _FORMAT or not isinstance(values, dict):
                    raise ValueError(f"unknown format {document.get('format')!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise SecretStoreError(f"Secret store {path} cannot be read: {exc}") from exc
        return cls(directory, cipher, values)

    def _slot(self, version: SecretVersion) -> dict[str, Any] | None:
        slot = self._values.get(version.arn, {}).get(version.version_id)
        return slot if isinstance(slot, dict) else None

    def contains(self, version: SecretVersion) -> bool:
        """True when the store holds a value of the right kind for this version."""
        slot = self._slot(version)
        return slot is not None and slot.get("kind") == version.kind

    def get(self, version: SecretVersion) -> bytes:
        """The decrypted value.

        Raises:
            SecretStoreError: no value is stored for this version, or it cannot be decrypted.
        """
        slot = self._slot(version)
        if slot is None or slot.get("kind") != version.kind:
            raise SecretStoreError(f"No value is stored for version {version.version_id!r} of {version.arn}")
        return self._cipher.decrypt(str(slot.get("sealed")), associated=_associated(version))

    def put(self, version: SecretVersion, value: bytes) -> None:
        """Store a version's value; storing the same value again does nothing.

        Raises:
            SecretStoreError: the version already has another value (versions are immutable), or the file
                cannot be written.
        """
        if self.contains(version):
            if self.get(version) == value:
                return
            raise SecretStoreError(
                f"version {version.version_id!r} of {version.arn} already has a different value; "
                "secret versions are immutable, give the new value a new versionId"
            )
        sealed = self._cipher.encrypt(value, associated=_associated(version))
        versions = dict(self._values.get(version.arn, {}))
        versions[version.version_id] = {"kind": version.kind, "sealed": sealed}
        values = {**self._values, version.arn: versions}
        try:
            self._write(values)
        except OSError as exc:
            raise SecretStoreError(f"Cannot write the secret store in {self.directory}: {exc}") from exc
        self._values = values
        logger.info("Stored version %s of secret %s", version.version_id, version.arn)

    def _write(self, values: dict[str, dict[str, Any]]) -> None:
        document = json.dumps({"format": _FORMAT, "values": values})
        write_atomically(self.directory / VALUES_FILE, document.encode("utf-8"), mode=0o600)
