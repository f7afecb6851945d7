"""Secrets on the device (``aws.greengrass.SecretManager``): deployed through configuration, kept encrypted.

:class:`SecretsHook` takes the values out of deployments into the AES-GCM :class:`SecretStore`;
:class:`SecretVault` answers GetSecretValue from the configuration (which versions exist) and the store.
"""

from __future__ import annotations

from edgewise.runtime.secrets._config import (
    DEFAULT_STAGE,
    SECRET_MANAGER,
    SecretVersion,
    name_from_arn,
    read_secrets,
    seal_secrets,
)
from edgewise.runtime.secrets._crypto import SecretCipher, load_or_create_key
from edgewise.runtime.secrets._hook import SecretsHook
from edgewise.runtime.secrets._store import KEY_FILE, VALUES_FILE, SecretStore
from edgewise.runtime.secrets._vault import Secret, SecretVault
from edgewise.runtime.secrets.errors import SecretError, SecretNotFoundError, SecretStoreError

__all__ = [
    "DEFAULT_STAGE",
    "KEY_FILE",
    "SECRET_MANAGER",
    "VALUES_FILE",
    "Secret",
    "SecretCipher",
    "SecretError",
    "SecretNotFoundError",
    "SecretStore",
    "SecretStoreError",
    "SecretVault",
    "SecretVersion",
    "SecretsHook",
    "load_or_create_key",
    "name_from_arn",
    "read_secrets",
    "seal_secrets",
]
