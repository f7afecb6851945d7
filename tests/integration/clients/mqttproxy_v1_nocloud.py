"""A component using the awsiotsdk client v1 (``connect()``) on a runtime without a cloud connection.

Usage: mqttproxy_v1_nocloud.py OUT

Writes the error each IoT Core operation answers to OUT.
"""

import json
import sys

import awsiot.greengrasscoreipc
from awsiot.greengrasscoreipc import client as ipc_client
from awsiot.greengrasscoreipc import model

WAIT_S = 10.0


def outcome(operation, request):
    try:
        operation.activate(request).result(WAIT_S)
        operation.get_response().result(WAIT_S)
    except Exception as exc:
        return {"error": type(exc).__name__, "message": getattr(exc, "message", str(exc))}
    return {"ok": True}


connection = awsiot.greengrasscoreipc.connect()
results = {
    "publish": outcome(
        connection.new_publish_to_iot_core(),
        model.PublishToIoTCoreRequest(
            topic_name="telemetry/edge-1/x", qos=model.QOS.AT_LEAST_ONCE, payload=b"1"
        ),
    ),
    "subscribe": outcome(
        connection.new_subscribe_to_iot_core(ipc_client.SubscribeToIoTCoreStreamHandler()),
        model.SubscribeToIoTCoreRequest(topic_name="cmd/edge-1/#", qos=model.QOS.AT_MOST_ONCE),
    ),
    "status": outcome(
        connection.new_subscribe_to_iot_core_connection_status(
            ipc_client.SubscribeToIoTCoreConnectionStatusStreamHandler()
        ),
        model.SubscribeToIoTCoreConnectionStatusRequest(),
    ),
}
connection.close()
with open(sys.argv[1], "w") as out:
    json.dump(results, out)
