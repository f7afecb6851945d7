"""A component that drives every shadow operation with the real awsiotsdk client v2, listens to the shadow
topics on local pub/sub, and records what it saw.

Usage: shadow_operations.py OUT_JSON THING_NAME
"""

import json
import os
import sys
import threading
import time
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    ConflictError,
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)

out_path, thing = sys.argv[1], sys.argv[2]
results = {}
events = []
lock = threading.Lock()


def record(name, call):
    try:
        results[name] = {"ok": call()}
    except (
        ConflictError,
        InvalidArgumentsError,
        ResourceNotFoundError,
        ServiceError,
        UnauthorizedError,
    ) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}
    except Exception as exc:
        results[name] = {"error": type(exc).__name__, "message": traceback.format_exc()}


def on_event(event):
    message = event.binary_message
    with lock:
        events.append({"topic": message.context.topic, "document": json.loads(message.message)})


def document(response):
    return json.loads(response.payload)


def update(shadow, body):
    return document(
        client.update_thing_shadow(thing_name=thing, shadow_name=shadow, payload=json.dumps(body))
    )


# No executor: events are handled on the connection thread, in the order the runtime sent them (the
# default thread pool may run two callbacks out of order).
client = GreengrassCoreIPCClientV2(executor=None)
client.subscribe_to_topic(topic=f"$aws/things/{thing}/shadow/#", on_stream_event=on_event)
record("update_desired", lambda: update("", {"state": {"desired": {"color": "red"}}, "clientToken": "tok-1"}))
record("update_reported", lambda: update("", {"state": {"reported": {"color": "blue"}}}))
record("get_classic", lambda: document(client.get_thing_shadow(thing_name=thing)))
record("update_wrong_version", lambda: update("", {"state": {"reported": {"color": "red"}}, "version": 99}))
record("update_named", lambda: update("config", {"state": {"reported": {"mode": "eco"}}}))
record("update_named_2", lambda: update("network", {"state": {"reported": {"ssid": "x"}}}))
record(
    "list_named",
    lambda: (lambda r: [r.results, r.next_token, r.timestamp.timestamp()])(
        client.list_named_shadows_for_thing(thing_name=thing, page_size=1)
    ),
)
record("delete_named", lambda: document(client.delete_thing_shadow(thing_name=thing, shadow_name="config")))
record("get_deleted", lambda: client.get_thing_shadow(thing_name=thing, shadow_name="config"))
record(
    "update_invalid_json",
    lambda: client.update_thing_shadow(thing_name=thing, shadow_name="", payload=b"{not json"),
)
record("get_invalid_thing", lambda: client.get_thing_shadow(thing_name="bad/thing"))
# 2 updates x (accepted, delta, documents), get, rejected conflict, 2 named x (accepted, documents), delete,
# get rejected, rejected invalid JSON
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with lock:
        if len(events) >= 15:
            break
    time.sleep(0.05)
with lock:
    results["events"] = list(events)
client.close()
# Written whole, then renamed: the test never reads a half-written file.
with open(out_path + ".tmp", "w") as out:
    json.dump(results, out)
os.replace(out_path + ".tmp", out_path)
