"""A component that talks to AWS IoT Core through the awsiotsdk client v2.

Usage: mqttproxy_component.py OUT READY THING

Subscribes to the connection status and to ``cmd/THING/#``, publishes five QoS 1 telemetry messages with
MQTT 5 properties, tries what its policy or IoT Core's topic rules forbid, writes READY, waits for one
command, echoes it to ``telemetry/THING/reply`` and writes everything it saw to OUT.
"""

import base64
import json
import os
import sys
import threading

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import QOS, PayloadFormat, UserProperty

out_path, ready_path, thing = sys.argv[1:4]
commands = []
statuses = []
received = threading.Event()


def on_command(event):
    message = event.message
    commands.append(
        {
            "topic": message.topic_name,
            "payload": message.payload.decode(),
            "userProperties": [[p.key, p.value] for p in message.user_properties or []],
            "correlationData": base64.b64encode(message.correlation_data or b"").decode(),
            "responseTopic": message.response_topic,
            "contentType": message.content_type,
            "payloadFormat": message.payload_format,
        }
    )
    received.set()


def attempt(action):
    try:
        action()
    except Exception as exc:
        return {"error": type(exc).__name__, "message": getattr(exc, "message", str(exc))}
    return {"ok": True}


client = GreengrassCoreIPCClientV2()
client.subscribe_to_iot_core_connection_status(
    on_stream_event=lambda event: statuses.append(event.connection_status_event.status)
)
client.subscribe_to_iot_core(topic_name=f"cmd/{thing}/#", qos=QOS.AT_LEAST_ONCE, on_stream_event=on_command)
for index in range(5):
    client.publish_to_iot_core(
        topic_name=f"telemetry/{thing}/temperature",
        qos=QOS.AT_LEAST_ONCE,
        payload=json.dumps({"index": index}),
        user_properties=[UserProperty(key="seq", value=str(index))],
        content_type="application/json",
        payload_format=PayloadFormat.UTF8,
    )


def publish(topic):
    return lambda: client.publish_to_iot_core(topic_name=topic, qos=QOS.AT_MOST_ONCE, payload=b"x")


results = {
    "publish_denied": attempt(publish("forbidden/x")),
    "subscribe_denied": attempt(
        lambda: client.subscribe_to_iot_core(topic_name="cmd/#", qos=QOS.AT_MOST_ONCE, on_stream_event=print)
    ),
    "publish_wildcard": attempt(publish(f"telemetry/{thing}/+")),
    "publish_eight_slashes": attempt(publish(f"telemetry/{thing}/a/b/c/d/e/f/g")),
    "publish_reserved_deep": attempt(publish(f"$aws/things/{thing}/shadow/name/a/b/c/d/e")),
    "bad_qos": attempt(
        lambda: client.publish_to_iot_core(topic_name=f"telemetry/{thing}/q", qos="2", payload=b"")
    ),
}
with open(ready_path, "w") as ready:
    ready.write("ready")
received.wait(60)
if commands:
    client.publish_to_iot_core(
        topic_name=f"telemetry/{thing}/reply", qos=QOS.AT_LEAST_ONCE, payload=commands[0]["payload"]
    )
results.update(commands=commands, statuses=statuses, root_ca=os.environ.get("GG_ROOT_CA_PATH"))
client.close()
with open(out_path + ".tmp", "w") as out:
    json.dump(results, out)
os.replace(out_path + ".tmp", out_path)
