"""A component using the unmodified awsiotsdk client v2; prints one JSON line per step for the test to check.

Steps: list_components, get_component_details (expects ResourceNotFoundError), publish_to_iot_core
(expects ServiceError, not implemented), update_state (handler crashes: generic ServiceError),
subscribe_to_component_updates (one event queued by the handler, two pushed later; then the client closes
the stream), subscribe_to_topic (the server sends two events and closes the stream itself).
"""

from __future__ import annotations

import json
import sys
import threading

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError, ServiceError

WAIT_S = 10.0


def report(step: str, **fields: object) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


def error_fields(error: Exception) -> dict[str, object]:
    return {"error": type(error).__name__, "message": getattr(error, "message", None)}


def main() -> None:
    client = GreengrassCoreIPCClientV2()
    try:
        components = client.list_components().components
        report(
            "list",
            components=[
                {
                    "name": c.component_name,
                    "version": c.version,
                    "state": c.state,
                    "configuration": c.configuration,
                }
                for c in components
            ],
        )

        try:
            client.get_component_details(component_name="com.example.Missing")
        except ResourceNotFoundError as error:
            report(
                "details",
                **error_fields(error),
                resource_type=error.resource_type,
                resource_name=error.resource_name,
            )

        try:
            client.publish_to_iot_core(topic_name="a/b", qos="0", payload=b"x")
        except ServiceError as error:
            report("iotcore", **error_fields(error))

        try:
            client.update_state(state="RUNNING")
        except ServiceError as error:
            report("update_state", **error_fields(error))

        updates: list[object] = []
        three = threading.Event()
        updates_closed = threading.Event()

        def on_update(event: object) -> None:
            updates.append(event.pre_update_event.deployment_id)  # type: ignore[attr-defined]
            if len(updates) == 3:
                three.set()

        response, operation = client.subscribe_to_component_updates(
            on_stream_event=on_update, on_stream_closed=updates_closed.set
        )
        report("updates_subscribed", response=type(response).__name__)
        # Asks the server (through the test's handler) to push two more events on the open stream.
        client.defer_component_update(deployment_id="push", message="push", recheck_after_ms=0)
        report("updates_events", received=three.wait(WAIT_S), deployments=sorted(map(str, updates)))
        operation.close().result(WAIT_S)
        report("updates_closed", closed=updates_closed.wait(WAIT_S))

        messages: list[str] = []
        topic_closed = threading.Event()
        client.subscribe_to_topic(
            topic="sensors/#",
            on_stream_event=lambda event: messages.append(event.json_message.message["n"]),
            on_stream_closed=topic_closed.set,
        )
        report("topic", closed_by_server=topic_closed.wait(WAIT_S), messages=sorted(messages))
    finally:
        client.close()


if __name__ == "__main__":
    main()
    sys.exit(0)
