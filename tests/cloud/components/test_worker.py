"""Recipe resolution over MQTT on a real Mosquitto: a device (its own mTLS certificate, the default device
policy) asks on its resolve topic and gets recipes and signed artifact URLs, or a rejection naming the field."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.components import service
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.components.worker import ResolveWorker
from edgewise.cloud.dataplane.signing import UrlSigner
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.protocol.resolve import ResolveRequestError, parse_request, thing_of
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.cloud.components.conftest import recipe, sha256_of
from tests.support.waiting import eventually

NOW = 1_764_100_000
SIGNER = UrlSigner(b"s" * 32, "https://cloud:8443", clock=lambda: NOW)
APP = b"the app"
TOPIC = "$aws/things/A/edgewise/components/resolve"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A registry with com.example.Hello 0.9.0, 1.0.0, 1.1.0 and 2.0.0 (one artifact each)."""
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    factory = create_session_factory(engine)
    store = LocalArtifactStore(tmp_path / "artifacts")
    sha = store.put(io.BytesIO(APP)).sha256
    with factory() as session:
        for version in ("0.9.0", "1.0.0", "1.1.0", "2.0.0"):
            service.publish_component(
                session, store, recipe=recipe(version=version), artifacts={"app.zip": sha}, published_by="t"
            )
    yield factory
    engine.dispose()


@pytest.fixture
async def worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> AsyncIterator[ResolveWorker]:
    assert broker.settings.workers is not None
    running = ResolveWorker(
        sessions, SIGNER, BrokerConnection.for_listener(broker.settings.workers), clock=lambda: NOW
    )
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def thing_a(worker: ResolveWorker, device: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    """Device A over mutual TLS, subscribed to its resolve replies."""
    client = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(client.subscribe, f"{TOPIC}/accepted", f"{TOPIC}/rejected")
    return client


async def ask(client: TestClient, payload: bytes | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    seen = len(client.topics())
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await asyncio.to_thread(client.publish, TOPIC, body)
    replies = await eventually(lambda: client.messages[seen:], what="a resolve reply")
    reply: dict[str, Any] = json.loads(replies[0].payload)
    return replies[0].topic.rsplit("/", 1)[1], reply


async def test_a_device_gets_matching_versions_with_recipes_and_signed_urls(thing_a: TestClient) -> None:
    outcome, reply = await ask(
        thing_a,
        {"clientToken": "c1", "components": {"com.example.Hello": ">=1.0.0 <2.0.0", "com.example.Lib": "*"}},
    )
    assert outcome == "accepted"
    assert (reply["clientToken"], reply["timestamp"]) == ("c1", NOW)
    assert reply["components"]["com.example.Lib"] == []
    candidates = reply["components"]["com.example.Hello"]
    assert [candidate["version"] for candidate in candidates] == ["1.1.0", "1.0.0"]
    newest = candidates[0]
    assert newest["recipe"]["ComponentVersion"] == "1.1.0"
    assert newest["recipe"]["Manifests"][0]["Artifacts"][0]["Algorithm"] == "SHA-256"
    artifact = newest["artifacts"]["s3://bucket/hello/app.zip"]
    assert artifact["size"] == len(APP)
    assert artifact["digest"] == newest["recipe"]["Manifests"][0]["Artifacts"][0]["Digest"]
    assert artifact["url"].startswith(f"https://cloud:8443/artifacts/{sha256_of(APP)}?expires={NOW + 3600}&")
    path, query = artifact["url"].removeprefix("https://cloud:8443").split("?")
    SIGNER.check(path, query)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "The payload is not JSON"),
        (b"[1]", "The payload must be a JSON object"),
        ({"clientToken": "c2"}, "Field 'components' is invalid"),
        (
            {"clientToken": "c2", "components": {"com.example.Hello": ">>1"}},
            "Field 'components.com.example.Hello'",
        ),
        ({"clientToken": "c2", "components": {"bad name": "*"}}, "Field 'components.bad name'"),
        ({"clientToken": "c2", "components": {"com.example.Hello": 1}}, "must be a string"),
        ({"clientToken": "c2", "components": {"a": "*"}, "platform": {}}, "Field 'platform'"),
    ],
)
async def test_malformed_requests_are_rejected_naming_the_field(
    thing_a: TestClient, payload: bytes | dict[str, Any], message: str
) -> None:
    outcome, reply = await ask(thing_a, payload)
    assert outcome == "rejected"
    assert reply["code"] == "InvalidRequest"
    assert reply["timestamp"] == NOW
    assert message in reply["message"]
    if isinstance(payload, dict):
        assert reply["clientToken"] == "c2"
    else:
        assert "clientToken" not in reply


async def test_a_device_cannot_ask_on_another_things_topic(
    thing_a: TestClient,
    device: Callable[..., TestClient],  # noqa: F811
) -> None:
    other = await asyncio.to_thread(device, "B")
    await asyncio.to_thread(other.subscribe, f"{TOPIC}/accepted", f"{TOPIC}/rejected")
    await asyncio.to_thread(
        other.publish, TOPIC, json.dumps({"components": {"com.example.Hello": "*"}}).encode()
    )
    _, reply = await ask(thing_a, {"clientToken": "mine", "components": {"com.example.Hello": "2.0.0"}})
    assert reply["clientToken"] == "mine"
    assert [topic for topic in other.topics() if topic.startswith(TOPIC)] == []
    assert len([topic for topic in thing_a.topics() if topic.startswith(TOPIC)]) == 1


def test_thing_names_come_from_resolve_topics_only() -> None:
    assert thing_of(TOPIC) == "A"
    assert thing_of("$aws/things/A/edgewise/components/resolve/accepted") is None
    assert thing_of("$aws/things//edgewise/components/resolve") is None
    assert thing_of("dt/A/edgewise/components/resolve") is None


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_payload_parses_or_is_rejected_as_invalid(payload: bytes) -> None:
    try:
        request = parse_request(payload)
    except ResolveRequestError as exc:
        assert exc.code == "InvalidRequest"  # noqa: PT017 - hypothesis drives many payloads through one test
        return
    assert 0 < len(request.requirements) <= 100
