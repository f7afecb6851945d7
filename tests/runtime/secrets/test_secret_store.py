"""The secret store: key file, AES-GCM round trip, atomic encrypted file, immutable versions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgewise.runtime.secrets import (
    KEY_FILE,
    VALUES_FILE,
    SecretCipher,
    SecretStore,
    SecretStoreError,
    SecretVersion,
    load_or_create_key,
)

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
PLAINTEXT = "correct horse battery staple"


def _version(version_id: str = "v1", kind: str = "secretString") -> SecretVersion:
    return SecretVersion(ARN, "db-password", version_id, ("AWSCURRENT",), kind)  # type: ignore[arg-type]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_created_once_with_256_bits_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE

    key = load_or_create_key(path)

    assert len(key) == 32
    assert _mode(path) == 0o600
    assert load_or_create_key(path) == key


def test_a_key_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    load_or_create_key(path)
    path.chmod(0o644)

    load_or_create_key(path)

    assert _mode(path) == 0o600


def test_a_damaged_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"short")
    path.chmod(0o600)

    with pytest.raises(SecretStoreError, match="5 bytes instead of 32"):
        load_or_create_key(path)


def test_cipher_round_trips_and_binds_the_ciphertext_to_its_slot() -> None:
    cipher = SecretCipher(os.urandom(32))

    token = cipher.encrypt(b"value", associated=b"slot-a")

    assert cipher.decrypt(token, associated=b"slot-a") == b"value"
    assert b"value" not in token.encode()
    assert cipher.encrypt(b"value", associated=b"slot-a") != token  # a fresh nonce every time
    with pytest.raises(SecretStoreError):
        cipher.decrypt(token, associated=b"slot-b")
    with pytest.raises(SecretStoreError):
        SecretCipher(os.urandom(32)).decrypt(token, associated=b"slot-a")


def test_store_keeps_only_ciphertext_on_disk_with_private_modes(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    store = SecretStore.open(directory)

    store.put(_version(), PLAINTEXT.encode())

    assert _mode(directory) == 0o700
    assert _mode(directory / VALUES_FILE) == 0o600
    assert _mode(directory / KEY_FILE) == 0o600
    assert PLAINTEXT.encode() not in (directory / VALUES_FILE).read_bytes()
    assert not list(directory.glob(".*tmp"))


def test_values_survive_reopening_and_decrypt_only_for_their_kind(tmp_path: Path) -> None:
    SecretStore.open(tmp_path).put(_version(), PLAINTEXT.encode())

    store = SecretStore.open(tmp_path)

    assert store.get(_version()) == PLAINTEXT.encode()
    assert store.contains(_version())
    assert not store.contains(_version(kind="secretBinary"))
    assert not store.contains(_version("v2"))
    with pytest.raises(SecretStoreError, match="No value is stored for version 'v2'"):
        store.get(_version("v2"))


def test_a_version_keeps_its_first_value(tmp_path: Path) -> None:
    store = SecretStore.open(tmp_path)
    store.put(_version(), b"first")
    store.put(_version(), b"first")

    with pytest.raises(SecretStoreError, match="immutable") as caught:
        store.put(_version(), b"second")

    assert "second" not in str(caught.value)
    assert store.get(_version()) == b"first"


def test_values_encrypted_with_a_lost_key_cannot_be_read(tmp_path: Path) -> None:
    SecretStore.open(tmp_path).put(_version(), b"value")
    (tmp_path / KEY_FILE).unlink()

    store = SecretStore.open(tmp_path)

    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        store.get(_version())


def test_an_unreadable_values_file_is_reported(tmp_path: Path) -> None:
    SecretStore.open(tmp_path)
    (tmp_path / VALUES_FILE).write_text("{not json")

    with pytest.raises(SecretStoreError, match=VALUES_FILE):
        SecretStore.open(tmp_path)
