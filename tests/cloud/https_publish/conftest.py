"""Fixtures of the HTTPS publish tests, all real: a migrated SQLite store with the cloud's own CA, things with
certificates that CA issued, the managed Mosquitto (worker listener only in use), the HTTPS publish worker on a
free port, and a paho observer subscribed to everything on the broker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.app import initialize
from edgewise.cloud.broker import (
    BrokerConnection,
    BrokerSettings,
    DeviceListenerSettings,
    MosquittoBroker,
    WorkerListenerSettings,
)
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.https_publish import HttpsPublishSettings, HttpsPublishWorker
from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME, CertificateAuthority, load_or_create_ca
from edgewise.cloud.identity import service as identity
from edgewise.cloud.registry import service as registry
from tests.cloud.broker.clients import TestClient
from tests.support.pki import Credentials
from tests.support.ports import free_port


@dataclass(frozen=True)
class Device:
    """A thing's certificate and key files (issued by the cloud's CA) and the certificate's id."""

    thing_name: str
    certificate_id: str
    credentials: Credentials


@dataclass(frozen=True)
class Store:
    """The cloud's store and CA, and where its files are."""

    sessions: sessionmaker[Session]
    authority: CertificateAuthority
    data_dir: Path

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca" / "ca.pem"

    def enroll(self, thing_name: str, *, policy: str | None = DEFAULT_DEVICE_POLICY_NAME) -> Device:
        """Create ``thing_name`` with a certificate (a generated key) carrying ``policy``."""
        with self.sessions() as session:
            registry.create_thing(session, thing_name)
            created = identity.create_certificate(session, self.authority, thing_name=thing_name)
            certificate_id = created.certificate.certificate_id
            if policy is not None:
                identity.ensure_default_policy(session)
                identity.attach_policy_to_certificate(session, policy, certificate_id)
            pem = created.certificate.pem
        directory = self.data_dir / "devices" / thing_name
        directory.mkdir(parents=True)
        (directory / "device.pem.crt").write_text(pem)
        assert created.private_key_pem is not None
        (directory / "private.pem.key").write_text(created.private_key_pem)
        credentials = Credentials(
            directory / "device.pem.crt", directory / "private.pem.key", self.ca_file, 0
        )
        return Device(thing_name, certificate_id, credentials)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    settings = initialize(tmp_path / "cloud").settings
    engine = create_database_engine(settings.database_url)
    try:
        yield Store(create_session_factory(engine), load_or_create_ca(settings.data_dir), settings.data_dir)
    finally:
        engine.dispose()


def _write_server_certificate(authority: CertificateAuthority, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    issued, key = authority.server_certificate(["localhost", "127.0.0.1"])
    (directory / "server.pem").write_text(issued.certificate_pem)
    (directory / "server.key").write_text(key)
    return directory / "server.pem", directory / "server.key"


@pytest.fixture
async def broker(store: Store, tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    certificate, key = _write_server_certificate(store.authority, tmp_path / "broker-tls")
    settings = BrokerSettings(
        data_dir=tmp_path / "broker",
        devices=DeviceListenerSettings(
            port=free_port(), host="127.0.0.1", cafile=store.ca_file, certfile=certificate, keyfile=key
        ),
        workers=WorkerListenerSettings.generate(free_port()),
        persistence=False,
        # Started as root, Mosquitto would switch to 'mosquitto', which cannot read the test's files.
        run_as_user="root" if os.geteuid() == 0 else None,
    )
    settings.data_dir.mkdir(parents=True)
    managed = MosquittoBroker(settings)
    async with managed:
        yield managed


@pytest.fixture
def https_settings(store: Store, tmp_path: Path) -> HttpsPublishSettings:
    certificate, key = _write_server_certificate(store.authority, tmp_path / "https-publish")
    return HttpsPublishSettings(
        host="127.0.0.1", port=free_port(), cafile=store.ca_file, certfile=certificate, keyfile=key
    )


@pytest.fixture
async def gateway(
    store: Store, broker: MosquittoBroker, https_settings: HttpsPublishSettings
) -> AsyncIterator[HttpsPublishWorker]:
    """HTTPS publish on ``https_settings.port``, publishing into ``broker``."""
    assert broker.settings.workers is not None
    worker = HttpsPublishWorker(
        https_settings, store.sessions, BrokerConnection.for_listener(broker.settings.workers)
    )
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


@pytest.fixture
def observer(broker: MosquittoBroker) -> Iterator[TestClient]:
    """A paho client on the worker listener subscribed to every topic, ``$aws`` ones included."""
    workers = broker.settings.workers
    assert workers is not None
    with TestClient(workers.port, "observer", credentials=(workers.username, workers.password)) as client:
        assert client.start(), client.connacks
        client.subscribe("#", "$aws/#")
        yield client
