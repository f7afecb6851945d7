"""Shadows end to end: a real ``edgewise cloud up``, devices bootstrapped through the API with the default device
policy, and the unmodified awsiotsdk shadow clients over mutual TLS (``IotShadowClient`` over MQTT 3.1.1,
``IotShadowClientV2`` over MQTT 5); a REST update reaches the device as a delta; another thing's shadow is refused
by the broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt import mqtt, mqtt_request_response  # type: ignore[import-untyped]
from awsiot import (  # type: ignore[import-untyped]
    ServiceStreamOptions,
    V2ServiceException,
    iotshadow,
    mqtt5_client_builder,
    mqtt_connection_builder,
)
from typer.testing import CliRunner

from edgewise.cli.main import app
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

QOS = mqtt.QoS.AT_LEAST_ONCE
DEADLINE = 20


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("shadows") / "data") as process:
        yield process.wait_ready()


def bootstrap(cloud: CloudProcess, thing: str, directory: Path) -> Path:
    """Register ``thing`` with a certificate and the default policy; the directory with its files."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None}
    result = CliRunner().invoke(
        app,
        ["device", "bootstrap", "--data", str(cloud.data_dir), "--thing", thing, "--out", str(directory)],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    return directory


class Inbox:
    """What the awsiotsdk callbacks receive, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, list[Any]] = {}

    def callback(self, name: str) -> Any:
        def receive(item: Any) -> None:
            with self._lock:
                self.items.setdefault(name, []).append(item)

        return receive

    def take(self, name: str) -> Any:
        """The oldest item received as ``name``, waiting for one."""

        def first() -> list[Any]:
            with self._lock:
                return self.items.get(name, [])[:1]

        [item] = wait_until(first, timeout=DEADLINE, what=name)
        with self._lock:
            self.items[name].pop(0)
        return item


def test_the_v1_shadow_client_over_mqtt3(cloud: CloudProcess, tmp_path: Path) -> None:
    files = bootstrap(cloud, "shadow-v1", tmp_path)
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(files / "device.pem.crt"),
        pri_key_filepath=str(files / "private.pem.key"),
        ca_filepath=str(files / "root-ca.pem"),
        client_id="shadow-v1",
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(DEADLINE)
    try:
        shadow = iotshadow.IotShadowClient(connection)
        inbox = Inbox()
        thing = "shadow-v1"
        for subscribe, request, name in (
            (shadow.subscribe_to_get_shadow_accepted, iotshadow.GetShadowSubscriptionRequest, "get"),
            (shadow.subscribe_to_get_shadow_rejected, iotshadow.GetShadowSubscriptionRequest, "get-refused"),
            (shadow.subscribe_to_update_shadow_accepted, iotshadow.UpdateShadowSubscriptionRequest, "update"),
            (
                shadow.subscribe_to_update_shadow_rejected,
                iotshadow.UpdateShadowSubscriptionRequest,
                "refused",
            ),
            (
                shadow.subscribe_to_shadow_delta_updated_events,
                iotshadow.ShadowDeltaUpdatedSubscriptionRequest,
                "delta",
            ),
            (shadow.subscribe_to_delete_shadow_accepted, iotshadow.DeleteShadowSubscriptionRequest, "delete"),
        ):
            subscribe(request(thing_name=thing), QOS, inbox.callback(name))[0].result(DEADLINE)

        def answered_get() -> bool:
            # The device's ACL entry may still be on its way to the broker: ask until the service answers.
            if inbox.items.get("get-refused"):
                return True
            request = iotshadow.GetShadowRequest(thing_name=thing, client_token="g0")
            shadow.publish_get_shadow(request, QOS).result(DEADLINE)
            return False

        wait_until(answered_get, timeout=3 * DEADLINE, interval=1.0, what="an answer to GetShadow")
        missing = inbox.take("get-refused")
        assert (missing.code, missing.client_token) == (404, "g0")

        with cloud.api(cloud.admin_token) as api:
            response = api.post("/things/shadow-v1/shadow", json={"state": {"desired": {"color": "blue"}}})
            assert response.status_code == 200, response.text
        delta = inbox.take("delta")
        assert (delta.state, delta.version) == ({"color": "blue"}, 1)
        assert inbox.take("update").state.desired == {
            "color": "blue"
        }  # AWS tells devices of REST updates too

        report = iotshadow.UpdateShadowRequest(
            thing_name=thing,
            state=iotshadow.ShadowState(reported={"color": "red"}),
            client_token="u1",
            version=1,
        )
        shadow.publish_update_shadow(report, QOS).result(DEADLINE)
        accepted = inbox.take("update")
        assert (accepted.version, accepted.client_token, accepted.state.reported) == (
            2,
            "u1",
            {"color": "red"},
        )
        assert inbox.take("delta").state == {"color": "blue"}

        shadow.publish_update_shadow(report, QOS).result(DEADLINE)  # version 1 again: stale
        stale = inbox.take("refused")
        assert (stale.code, stale.client_token) == (409, "u1")

        shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing), QOS).result(DEADLINE)
        document = inbox.take("get")
        assert (document.version, document.state.delta, document.state.reported) == (
            2,
            {"color": "blue"},
            {"color": "red"},
        )
        assert (
            document.metadata.reported["color"]["timestamp"]
            >= document.metadata.desired["color"]["timestamp"]
        )

        # Another thing's shadow: the broker does not let the request through.
        foreign = iotshadow.UpdateShadowRequest(
            thing_name="shadow-v2", state=iotshadow.ShadowState(desired={"hijacked": True})
        )
        shadow.publish_update_shadow(foreign, QOS).result(DEADLINE)
        shadow.publish_delete_shadow(
            iotshadow.DeleteShadowRequest(thing_name=thing, client_token="d1"), QOS
        ).result(DEADLINE)
        deleted = inbox.take("delete")
        assert (deleted.version, deleted.client_token) == (2, "d1")
        with cloud.api(cloud.admin_token) as api:
            assert api.get("/things/shadow-v1/shadow").status_code == 404
            assert api.get("/things/shadow-v2/shadow").status_code == 404
    finally:
        connection.disconnect().result(DEADLINE)


def test_the_v2_shadow_client_over_mqtt5(cloud: CloudProcess, tmp_path: Path) -> None:
    files = bootstrap(cloud, "shadow-v2", tmp_path)
    connected = threading.Event()
    stopped = threading.Event()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(files / "device.pem.crt"),
        pri_key_filepath=str(files / "private.pem.key"),
        ca_filepath=str(files / "root-ca.pem"),
        client_id="shadow-v2",
        on_lifecycle_connection_success=lambda _data: connected.set(),
        on_lifecycle_stopped=lambda _data: stopped.set(),
    )
    client.start()
    try:
        assert connected.wait(DEADLINE)
        shadow = iotshadow.IotShadowClientV2(
            client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=2,
                operation_timeout_in_seconds=5,
            ),
        )
        inbox = Inbox()
        stream = shadow.create_named_shadow_delta_updated_stream(
            iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(
                thing_name="shadow-v2", shadow_name="config"
            ),
            ServiceStreamOptions(incoming_event_listener=inbox.callback("delta")),
        )
        stream.open()

        def updated() -> Any:
            try:
                return shadow.update_named_shadow(
                    iotshadow.UpdateNamedShadowRequest(
                        thing_name="shadow-v2",
                        shadow_name="config",
                        state=iotshadow.ShadowState(desired={"rate": 5}, reported={"rate": 1}),
                    )
                ).result(DEADLINE)
            except V2ServiceException:
                return None  # the device's ACL entry is still on its way to the broker

        accepted = wait_until(updated, timeout=3 * DEADLINE, what="UpdateNamedShadow")
        assert (accepted.version, accepted.state.desired) == (1, {"rate": 5})
        event = inbox.take("delta")
        assert (event.state, event.version) == ({"rate": 5}, 1)

        document = shadow.get_named_shadow(
            iotshadow.GetNamedShadowRequest(thing_name="shadow-v2", shadow_name="config")
        ).result(DEADLINE)
        assert (document.version, document.state.delta) == (1, {"rate": 5})

        with pytest.raises(V2ServiceException) as caught:
            shadow.update_named_shadow(
                iotshadow.UpdateNamedShadowRequest(
                    thing_name="shadow-v2",
                    shadow_name="config",
                    state=iotshadow.ShadowState(reported={"rate": 5}),
                    version=7,
                )
            ).result(DEADLINE)
        assert caught.value.modeled_error.code == 409

        deleted = shadow.delete_named_shadow(
            iotshadow.DeleteNamedShadowRequest(thing_name="shadow-v2", shadow_name="config")
        ).result(DEADLINE)
        assert deleted.version == 1
        with pytest.raises(V2ServiceException) as caught:
            shadow.get_shadow(iotshadow.GetShadowRequest(thing_name="shadow-v2")).result(DEADLINE)
        assert caught.value.modeled_error.code == 404
    finally:
        client.stop()
        stopped.wait(DEADLINE)
