"""A component that uses the awsiotsdk client v1 (``connect()`` and stream handlers) for local pub/sub.

Usage: pubsub_v1_subscriber.py OUT READY PREFIX

Subscribes to ``PREFIX/#`` (messages from others, by default) and ``PREFIX/self`` (all messages), checks
that a filter without a policy is refused, publishes a JSON and a binary message of its own, writes
READY, and writes what each handler received, in arrival order, to OUT once ``PREFIX/done`` arrived.
"""

import base64
import json
import sys
import threading

import awsiot.greengrasscoreipc
from awsiot.greengrasscoreipc import client as ipc_client
from awsiot.greengrasscoreipc import model

WAIT_S = 10.0
out_path, ready_path, prefix = sys.argv[1:4]
finished = threading.Event()


class Recorder(ipc_client.SubscribeToTopicStreamHandler):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_stream_event(self, event):
        if event.json_message is not None:
            item = ["json", event.json_message.context.topic, event.json_message.message]
        else:
            binary = event.binary_message
            item = ["binary", binary.context.topic, base64.b64encode(binary.message).decode()]
        self.events.append(item)
        if item[1] == f"{prefix}/done":
            finished.set()

    def on_stream_error(self, error):
        self.events.append(["error", type(error).__name__, str(error)])
        return True


def subscribe(client, topic, handler):
    operation = client.new_subscribe_to_topic(handler)
    operation.activate(model.SubscribeToTopicRequest(topic=topic)).result(WAIT_S)
    operation.get_response().result(WAIT_S)
    return operation


def publish(client, topic, publish_message):
    operation = client.new_publish_to_topic()
    operation.activate(model.PublishToTopicRequest(topic=topic, publish_message=publish_message)).result(
        WAIT_S
    )
    operation.get_response().result(WAIT_S)


client = awsiot.greengrasscoreipc.connect()
handlers = {"wild": Recorder(), "self": Recorder()}
subscribe(client, f"{prefix}/#", handlers["wild"])
subscribe(client, f"{prefix}/self", handlers["self"])
errors = {}
try:
    subscribe(client, f"{prefix}/x", Recorder())
    errors["subscribe_unlisted"] = None
except model.UnauthorizedError as exc:
    errors["subscribe_unlisted"] = ["UnauthorizedError", exc.message]
publish(client, f"{prefix}/self", model.PublishMessage(json_message=model.JsonMessage(message={"v1": True})))
publish(client, f"{prefix}/self", model.PublishMessage(binary_message=model.BinaryMessage(message=b"\x00v1")))
with open(ready_path, "w"):
    pass
finished.wait(60)
result = {name: handler.events for name, handler in handlers.items()}
client.close().result(WAIT_S)
with open(out_path, "w") as out:
    json.dump({"events": result, "errors": errors, "finished": finished.is_set()}, out)
