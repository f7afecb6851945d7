"""A component that publishes with the awsiotsdk v2 client once its subscribers are ready.

Usage: pubsub_v2_publisher.py OUT PREFIX READY...

Waits for every READY file, publishes JSON and binary messages under PREFIX, tries what its policy or the
rules forbid, publishes ``PREFIX/done`` last and writes the outcome of each attempt to OUT.
"""

import json
import os
import sys
import time

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    BinaryMessage,
    InvalidArgumentsError,
    JsonMessage,
    PublishMessage,
    UnauthorizedError,
)

out_path, prefix, *ready_paths = sys.argv[1:]
deadline = time.monotonic() + 60
while not all(os.path.exists(path) for path in ready_paths):
    if time.monotonic() > deadline:
        sys.exit("the subscribers never got ready")
    time.sleep(0.05)

client = GreengrassCoreIPCClientV2()
outcomes = {}


def attempt(name, call):
    try:
        call()
        outcomes[name] = "ok"
    except (InvalidArgumentsError, UnauthorizedError) as exc:
        outcomes[name] = [type(exc).__name__, exc.message]


def json_message(value):
    return PublishMessage(json_message=JsonMessage(message=value))


attempt("json", lambda: client.publish_to_topic(topic=f"{prefix}/a", publish_message=json_message({"n": 1})))
attempt(
    "binary",
    lambda: client.publish_to_topic(
        topic=f"{prefix}/kitchen/temp",
        publish_message=PublishMessage(binary_message=BinaryMessage(message=b"\x00\x01\xfe")),
    ),
)
attempt(
    "deep",
    lambda: client.publish_to_topic(topic=f"{prefix}/deep/x/y", publish_message=json_message([1, "two"])),
)
attempt("wildcard", lambda: client.publish_to_topic(topic=f"{prefix}/+", publish_message=json_message(1)))
attempt("denied_publish", lambda: client.publish_to_topic(topic="other/x", publish_message=json_message(1)))
attempt("denied_subscribe", lambda: client.subscribe_to_topic(topic=f"{prefix}/a", on_stream_event=print))
attempt("done", lambda: client.publish_to_topic(topic=f"{prefix}/done", publish_message=json_message("done")))
client.close()
with open(out_path, "w") as out:
    json.dump(outcomes, out)
