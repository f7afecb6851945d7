"""Fixtures of the broker tests: a CA with a CRL, broker settings on free ports, a running managed broker
whose ACL grants devices ``A`` and ``B`` the default device policy, and clients for devices and workers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from tests.cloud.broker.clients import TestClient
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.ports import free_port

from edgewise.cloud.broker import (
    BrokerSettings,
    DeviceListenerSettings,
    DevicePermissions,
    MosquittoBroker,
    RestartPolicy,
    WorkerListenerSettings,
    write_acl,
)

DEVICES = ("A", "B")


def default_permissions(thing_name: str, *extra_read: str) -> DevicePermissions:
    """The default device policy: only its own shadow/jobs topics and ``dt/<thing>/...``."""
    own = (f"$aws/things/{thing_name}/#", f"dt/{thing_name}/#")
    return DevicePermissions(thing_name, publish=own, subscribe=own + extra_read, receive=own + extra_read)


@pytest.fixture
def authority(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def settings(tmp_path: Path, authority: CertificateAuthority) -> BrokerSettings:
    server = authority.issue("localhost", server=True)
    return BrokerSettings(
        data_dir=tmp_path / "broker",
        devices=DeviceListenerSettings(
            port=free_port(),
            host="127.0.0.1",
            cafile=authority.certificate,
            certfile=server.certificate,
            keyfile=server.private_key,
            crlfile=authority.crl,
        ),
        workers=WorkerListenerSettings.generate(free_port()),
        persistence=False,
        # Started as root, Mosquitto would switch to 'mosquitto', which cannot read the test's files.
        run_as_user="root" if os.geteuid() == 0 else None,
    )


@pytest.fixture
async def broker(settings: BrokerSettings) -> AsyncIterator[MosquittoBroker]:
    settings.data_dir.mkdir(parents=True)
    write_acl(settings.acl_file, [default_permissions(name) for name in DEVICES])
    managed = MosquittoBroker(settings, restart_policy=RestartPolicy(base_delay=0.05, max_delay=0.2))
    async with managed:
        yield managed


@pytest.fixture
def identities(authority: CertificateAuthority) -> dict[str, Credentials]:
    return {name: authority.issue(name) for name in DEVICES}


@pytest.fixture
def device(
    broker: MosquittoBroker, identities: dict[str, Credentials]
) -> Iterator[Callable[..., TestClient]]:
    """Connects a device by thing name (or with ``identity=``); fails unless the broker accepts it."""
    opened: list[TestClient] = []

    def connect(
        name: str, *, client_id: str | None = None, identity: Credentials | None = None
    ) -> TestClient:
        client = TestClient(
            broker.settings.devices.port, client_id or name, identity=identity or identities[name]
        )
        opened.append(client)
        assert client.start(), f"device {name} was refused: {client.connacks}"
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def observer(broker: MosquittoBroker) -> Iterator[TestClient]:
    """A worker subscribed to every topic, ``$aws`` ones included."""
    workers = broker.settings.workers
    assert workers is not None
    with TestClient(workers.port, "observer", credentials=(workers.username, workers.password)) as client:
        assert client.start(), client.connacks
        client.subscribe("#", "$aws/#")
        yield client
