"""The built-in ``aws.greengrass.StreamManager``: its configuration in Greengrass's keys, and a stream server that
follows the services tree (deployed, reconfigured, badly configured, removed) with Greengrass's client
authentication, driven by the real ``stream-manager`` SDK client."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_manager import StreamManagerClient
from stream_manager.exceptions import ConnectFailedException
from tests.support.waiting import eventually

from edgewise.runtime.config import ConfigStore
from edgewise.runtime.ipc.auth import TokenTable
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.stream_component import (
    SERVER_PORT,
    STREAM_MANAGER,
    StreamComponent,
    StreamConfigurationError,
    StreamSettings,
    parse_stream_settings,
)
from edgewise.runtime.streams.store import StreamStore

WORK = Path("/var/lib/edgewise/work/aws.greengrass.StreamManager")
COMPONENT = "com.example.Writer"


# -- configuration -------------------------------------------------------------------------------------


def test_an_empty_configuration_is_greengrass_defaults() -> None:
    assert parse_stream_settings(None, WORK) == StreamSettings(
        port=8088, store_root=WORK / ".", authenticate_client=True, log_level=logging.INFO
    )
    assert parse_stream_settings({}, WORK) == parse_stream_settings(None, WORK)


def test_greengrass_recipe_strings_and_plain_values_are_both_accepted() -> None:
    as_strings = {
        "STREAM_MANAGER_SERVER_PORT": "9000",
        "STREAM_MANAGER_STORE_ROOT_DIR": "/data/streams",
        "STREAM_MANAGER_AUTHENTICATE_CLIENT": "False",
        "LOG_LEVEL": "warn",
        "JVM_ARGS": "-Xmx64m",
        "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH": "1000",
        "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE": "3",
    }
    as_values = {
        **as_strings,
        "STREAM_MANAGER_SERVER_PORT": 9000,
        "STREAM_MANAGER_AUTHENTICATE_CLIENT": False,
        "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH": 1000,
        "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE": 3,
    }

    expected = StreamSettings(
        port=9000,
        store_root=Path("/data/streams"),
        authenticate_client=False,
        log_level=logging.WARNING,
        max_bandwidth=1000,
        exporter_threads=3,
    )
    assert parse_stream_settings(as_strings, WORK) == expected
    assert parse_stream_settings(as_values, WORK) == expected


def test_a_relative_store_directory_is_under_the_components_work_directory() -> None:
    assert (
        parse_stream_settings({"STREAM_MANAGER_STORE_ROOT_DIR": "streams"}, WORK).store_root
        == WORK / "streams"
    )


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        (
            {"STREAM_MANAGER_SERVER_PORT": "80x"},
            "STREAM_MANAGER_SERVER_PORT must be a port number from 0 to 65535",
        ),
        ({"STREAM_MANAGER_SERVER_PORT": 65536}, "STREAM_MANAGER_SERVER_PORT must be a port number"),
        ({"STREAM_MANAGER_SERVER_PORT": -1}, "STREAM_MANAGER_SERVER_PORT must be a port number"),
        ({"STREAM_MANAGER_SERVER_PORT": True}, "STREAM_MANAGER_SERVER_PORT must be a port number"),
        (
            {"STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH": "0"},
            "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH must be a whole number from 1",
        ),
        (
            {"STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE": "many"},
            "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE must be a whole number from 1 to 1000",
        ),
        (
            {"STREAM_MANAGER_AUTHENTICATE_CLIENT": "yes"},
            "STREAM_MANAGER_AUTHENTICATE_CLIENT must be true or false",
        ),
        (
            {"STREAM_MANAGER_AUTHENTICATE_CLIENT": 1},
            "STREAM_MANAGER_AUTHENTICATE_CLIENT must be true or false",
        ),
        ({"STREAM_MANAGER_STORE_ROOT_DIR": ""}, "STREAM_MANAGER_STORE_ROOT_DIR must not be empty"),
        ({"STREAM_MANAGER_STORE_ROOT_DIR": 7}, "STREAM_MANAGER_STORE_ROOT_DIR must be a string"),
        ({"STREAM_MANAGER_STORE_ROOT_DIR": "/a\0b"}, "STREAM_MANAGER_STORE_ROOT_DIR must not contain a NUL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR, not 'LOUD'"),
        (["not", "an", "object"], "aws.greengrass.StreamManager configuration must be an object, not list"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(configuration: Any, message: str) -> None:
    with pytest.raises(
        StreamConfigurationError, match=r"^aws\.greengrass\.StreamManager configuration"
    ) as raised:
        parse_stream_settings(configuration, WORK)

    assert message in str(raised.value)


@given(st.integers(min_value=-(2**70), max_value=2**70), st.booleans())
def test_a_port_is_accepted_exactly_when_it_is_a_tcp_port(port: int, as_text: bool) -> None:
    configuration = {"STREAM_MANAGER_SERVER_PORT": str(port) if as_text else port}
    if 0 <= port <= 65535:
        assert parse_stream_settings(configuration, WORK).port == port
    else:
        with pytest.raises(StreamConfigurationError, match="STREAM_MANAGER_SERVER_PORT"):
            parse_stream_settings(configuration, WORK)


# -- following the services tree ----------------------------------------------------------------------


class Services:
    """Deploys, reconfigures and removes the component in a real configuration store."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def deploy(self, **configuration: Any) -> None:
        node = {"version": "2.12.0", "componentType": "NUCLEUS", "configuration": configuration}
        self.store.set(("services", STREAM_MANAGER), node, timestamp=time.time_ns() // 1000)

    def remove(self) -> None:
        self.store.remove(("services", STREAM_MANAGER), timestamp=time.time_ns() // 1000)


@pytest.fixture
def config_store(tmp_path: Path) -> Iterator[ConfigStore]:
    store = ConfigStore.open(tmp_path / "config")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def services(config_store: ConfigStore) -> Services:
    return Services(config_store)


@pytest.fixture
def tokens() -> TokenTable:
    return TokenTable()


@pytest.fixture
async def component(
    config_store: ConfigStore, tmp_path: Path, tokens: TokenTable
) -> AsyncIterator[StreamComponent]:
    streams = StreamComponent(config_store, RootPaths.at(tmp_path / "root"), tokens, expiry_interval=0.05)
    await streams.start()
    try:
        yield streams
    finally:
        await streams.close()


def connects(port: int, token: str | None, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the SDK client (which reads its token from the environment) gets through the handshake."""
    if token is None:
        monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
    try:
        client = StreamManagerClient(host="127.0.0.1", port=port, request_timeout=10)
    except ConnectFailedException as exc:
        # The SDK raises from its constructor without closing what it opened; close the half-built client.
        trace = exc.__traceback__
        while trace is not None:
            half_built = trace.tb_frame.f_locals.get("self")
            if isinstance(half_built, StreamManagerClient):
                half_built.close()
            trace = trace.tb_next
        return False
    try:
        client.list_streams()
    finally:
        client.close()
    return True


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def test_nothing_runs_until_the_component_is_deployed(component: StreamComponent) -> None:
    assert component.port is None
    assert component.environment() == {}


async def test_a_deployed_component_serves_components_with_their_svcuid(
    component: StreamComponent, services: Services, tokens: TokenTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.deploy(STREAM_MANAGER_SERVER_PORT="0")
    port = await eventually(lambda: component.port, what="the stream server")

    assert component.environment() == {SERVER_PORT: str(port)}
    assert await asyncio.to_thread(connects, port, tokens.issue(COMPONENT), monkeypatch)
    assert not await asyncio.to_thread(connects, port, "not-a-token", monkeypatch)
    assert not await asyncio.to_thread(connects, port, None, monkeypatch)


async def test_with_client_authentication_off_any_client_is_served(
    component: StreamComponent, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.deploy(STREAM_MANAGER_SERVER_PORT="0", STREAM_MANAGER_AUTHENTICATE_CLIENT="false")
    port = await eventually(lambda: component.port, what="the stream server")

    assert await asyncio.to_thread(connects, port, "not-a-token", monkeypatch)
    assert await asyncio.to_thread(connects, port, None, monkeypatch)


async def test_a_configuration_change_restarts_the_server_with_it(
    component: StreamComponent, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.deploy(STREAM_MANAGER_SERVER_PORT="0", STREAM_MANAGER_STORE_ROOT_DIR=str(tmp_path / "first"))
    first = await eventually(lambda: component.port, what="the first server")

    services.deploy(
        STREAM_MANAGER_SERVER_PORT="0",
        STREAM_MANAGER_STORE_ROOT_DIR=str(tmp_path / "second"),
        STREAM_MANAGER_AUTHENTICATE_CLIENT="false",
    )
    second = await eventually(
        lambda: component.port not in (None, first) and component.port, what="a restart"
    )

    assert not await listening(first)
    assert await asyncio.to_thread(connects, second, None, monkeypatch)
    assert (tmp_path / "second").is_dir()


async def test_unused_exporter_keys_are_logged_by_name(
    component: StreamComponent, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edgewise.runtime.stream_component")

    key = "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES"
    services.deploy(STREAM_MANAGER_SERVER_PORT="0", **{key: "5242880"})
    await eventually(lambda: component.port, what="the stream server")

    assert f"{key} is accepted but unused" in caplog.text


async def test_a_bad_value_is_logged_by_key_and_the_running_server_keeps_running(
    component: StreamComponent, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    services.deploy(STREAM_MANAGER_SERVER_PORT="0")
    port = await eventually(lambda: component.port, what="the stream server")

    services.deploy(STREAM_MANAGER_SERVER_PORT="eighty")
    await eventually(
        lambda: "STREAM_MANAGER_SERVER_PORT must be a port number" in caplog.text, what="the report"
    )

    assert "the running server keeps its settings" in caplog.text
    assert component.port == port
    assert await listening(port)


async def test_a_bad_first_configuration_starts_nothing(
    component: StreamComponent, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    services.deploy(LOG_LEVEL="LOUD")
    await eventually(lambda: "LOG_LEVEL must be one of" in caplog.text, what="the report")

    assert "no stream server runs" in caplog.text
    assert component.port is None


async def test_a_store_directory_that_cannot_be_opened_is_logged_and_nothing_runs(
    component: StreamComponent, services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")

    services.deploy(STREAM_MANAGER_SERVER_PORT="0", STREAM_MANAGER_STORE_ROOT_DIR=str(not_a_directory))
    await eventually(lambda: "cannot open its stream store" in caplog.text, what="the report")

    assert str(not_a_directory) in caplog.text
    assert component.port is None


async def test_a_port_in_use_is_logged_and_the_previous_settings_come_back(
    component: StreamComponent, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    taken = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    taken_port = taken.sockets[0].getsockname()[1]
    try:
        services.deploy(STREAM_MANAGER_SERVER_PORT="0")
        await eventually(lambda: component.port, what="the stream server")

        services.deploy(STREAM_MANAGER_SERVER_PORT=str(taken_port))
        await eventually(lambda: "goes back to its previous settings" in caplog.text, what="the fallback")
        port = await eventually(lambda: component.port, what="the server on its previous settings")
    finally:
        taken.close()
        await taken.wait_closed()

    assert f"cannot listen on port {taken_port}" in caplog.text
    assert port != taken_port
    assert await listening(port)


async def test_removing_the_component_stops_the_server(
    component: StreamComponent, services: Services
) -> None:
    services.deploy(STREAM_MANAGER_SERVER_PORT="0")
    port = await eventually(lambda: component.port, what="the stream server")

    services.remove()
    await eventually(lambda: component.port is None, what="the server to stop")

    assert not await listening(port)
    assert component.environment() == {}


async def test_the_port_listens_as_soon_as_the_tree_holds_the_component(
    component: StreamComponent,
    services: Services,
    tokens: TokenTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A deployment bringing stream manager and a component that uses it starts the component in the same
    # reconcile, before the event loop runs the server's start: the port must be open by then.
    services.deploy(STREAM_MANAGER_SERVER_PORT="0")
    port = int(component.environment()[SERVER_PORT])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    assert await asyncio.to_thread(connects, port, tokens.issue(COMPONENT), monkeypatch)
    assert component.port == port


async def test_a_configured_port_is_in_the_environment_before_the_server_binds(
    config_store: ConfigStore, services: Services, tmp_path: Path, tokens: TokenTable
) -> None:
    streams = StreamComponent(config_store, RootPaths.at(tmp_path / "root"), tokens)
    services.deploy(STREAM_MANAGER_SERVER_PORT="9123")

    assert streams.environment() == {SERVER_PORT: "9123"}


async def test_expired_segments_are_dropped_periodically_while_it_runs(
    component: StreamComponent, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweeps: list[StreamStore] = []
    original = StreamStore.remove_expired

    async def counted(store: StreamStore) -> None:
        sweeps.append(store)
        await original(store)

    monkeypatch.setattr(StreamStore, "remove_expired", counted)
    services.deploy(STREAM_MANAGER_SERVER_PORT="0")

    await eventually(lambda: len(sweeps) >= 2, what="two sweeps")


def test_the_runtime_loads_no_stream_store_until_stream_manager_is_deployed() -> None:
    probe = (
        "import sys, edgewise.runtime.__main__; "
        "print(sorted(m for m in ('cbor2', 'edgewise.runtime.streams') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
