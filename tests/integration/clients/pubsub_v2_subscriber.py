"""A component that subscribes with the awsiotsdk v2 client (default executor) and records every event.

Usage: pubsub_v2_subscriber.py OUT READY PREFIX

Subscribes to several filters under PREFIX, checks that one it has no policy for is refused, publishes one
message of its own, then writes READY. It stops when both of its ``PREFIX/#`` subscriptions have seen
``PREFIX/done`` and writes what each subscription received to OUT.
"""

import base64
import json
import sys
import threading

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage, ReceiveMode, UnauthorizedError

out_path, ready_path, prefix = sys.argv[1:4]
SUBSCRIPTIONS = {
    "wild": (f"{prefix}/#", None),  # default for a wildcard filter: messages from others only
    "wild_all": (f"{prefix}/#", ReceiveMode.RECEIVE_ALL_MESSAGES),
    "temp": (f"{prefix}/+/temp", None),
    "exact": (f"{prefix}/a", None),
    "self": (f"{prefix}/self", None),  # default for a plain topic: all messages
    "self_others": (f"{prefix}/self", ReceiveMode.RECEIVE_MESSAGES_FROM_OTHERS),
}
events = {name: [] for name in SUBSCRIPTIONS}
lock = threading.Lock()
done_seen = set()
finished = threading.Event()


def recorder(name):
    def on_event(event):
        if event.json_message is not None:
            item = ["json", event.json_message.context.topic, event.json_message.message]
        else:
            binary = event.binary_message
            item = ["binary", binary.context.topic, base64.b64encode(binary.message).decode()]
        with lock:
            events[name].append(item)
            if item[1] == f"{prefix}/done":
                done_seen.add(name)
                if done_seen >= {"wild", "wild_all"}:
                    finished.set()

    return on_event


client = GreengrassCoreIPCClientV2()
for name, (topic, mode) in SUBSCRIPTIONS.items():
    client.subscribe_to_topic(topic=topic, receive_mode=mode, on_stream_event=recorder(name))
errors = {}
try:
    client.subscribe_to_topic(topic=f"{prefix}/x", on_stream_event=lambda event: None)
    errors["subscribe_unlisted"] = None
except UnauthorizedError as exc:
    errors["subscribe_unlisted"] = ["UnauthorizedError", exc.message]
client.publish_to_topic(
    topic=f"{prefix}/self", publish_message=PublishMessage(json_message=JsonMessage(message={"from": "me"}))
)
with open(ready_path, "w"):
    pass
finished.wait(60)
client.close()  # waits for the executor, so every event received so far has been recorded
with open(out_path, "w") as out:
    json.dump({"events": events, "errors": errors, "finished": finished.is_set()}, out)
