"""A component using the unmodified awsiotsdk client v1 (``awsiot.greengrasscoreipc.connect()``).

Prints one JSON line per step: list_components, then subscribe_to_topic, whose events (sent by the server
in order, then the stream is closed by the server) must arrive in order on the client's network thread.
"""

from __future__ import annotations

import json
import threading

import awsiot.greengrasscoreipc
from awsiot.greengrasscoreipc import client as ipc_client
from awsiot.greengrasscoreipc import model

WAIT_S = 10.0


def report(step: str, **fields: object) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


class TopicHandler(ipc_client.SubscribeToTopicStreamHandler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[object] = []
        self.closed = threading.Event()

    def on_stream_event(self, event: model.SubscriptionResponseMessage) -> None:
        self.messages.append(event.json_message.message["n"])

    def on_stream_closed(self) -> None:
        self.closed.set()


def main() -> None:
    client = awsiot.greengrasscoreipc.connect()
    try:
        operation = client.new_list_components()
        operation.activate(model.ListComponentsRequest()).result(WAIT_S)
        response = operation.get_response().result(WAIT_S)
        report("list", names=[c.component_name for c in response.components])

        handler = TopicHandler()
        subscription = client.new_subscribe_to_topic(handler)
        subscription.activate(model.SubscribeToTopicRequest(topic="sensors/#")).result(WAIT_S)
        subscription.get_response().result(WAIT_S)
        closed = handler.closed.wait(WAIT_S)
        report("topic", closed_by_server=closed, messages=handler.messages)
    finally:
        client.close().result(WAIT_S)


if __name__ == "__main__":
    main()
