"""A hostile component: over a raw socket it asks for thousands of subscriptions, then never reads again.

Usage: pubsub_hostile.py READY COUNT EVERY

Every EVERY-th filter is ``load/#`` (so it matches what the load publisher sends); the others are unrelated.
Once every request has been answered it writes how many were accepted and refused to READY, and from
then on keeps the connection open without reading a byte.
"""

import json
import os
import socket
import sys
import threading

from edgewise.runtime.ipc.eventstream import Message, MessageDecoder, MessageType, encode_message

ready_path, count, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
OP = "aws.greengrass#SubscribeToTopic"

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"])
connect = {":version": "0.1.0", ":message-type": MessageType.CONNECT, ":message-flags": 0, ":stream-id": 0}
sock.sendall(encode_message(Message(connect, json.dumps({"authToken": os.environ["SVCUID"]}).encode())))

requests = bytearray()
for stream_id in range(1, count + 1):
    topic = "load/#" if stream_id % every == 0 else f"hostile/{stream_id}/+"
    headers = {
        ":content-type": "application/json",
        "service-model-type": OP + "Request",
        ":message-type": MessageType.APPLICATION_MESSAGE,
        ":message-flags": 0,
        ":stream-id": stream_id,
        "operation": OP,
    }
    requests += encode_message(Message(headers, json.dumps({"topic": topic}).encode()))
# Sent from another thread, so that the replies are read while the requests are still going out.
sender = threading.Thread(target=sock.sendall, args=(bytes(requests),))
sender.start()

decoder = MessageDecoder()
replies = {}
while len(replies) < count:
    data = sock.recv(1 << 16)
    if not data:
        sys.exit("the runtime closed the connection")
    for message in decoder.feed(data):
        if message.headers[":stream-id"]:
            replies[message.headers[":stream-id"]] = (
                str(message.headers["service-model-type"]),
                message.payload,
            )
sender.join()
accepted = sum(shape.endswith("Response") for shape, _ in replies.values())
refusals = sorted(
    {json.loads(body)["message"] for shape, body in replies.values() if shape.endswith("Error")}
)
matching = sum(
    1 for stream_id, (shape, _) in replies.items() if shape.endswith("Response") and stream_id % every == 0
)
with open(ready_path + ".tmp", "w") as ready:
    json.dump(
        {"accepted": accepted, "matching": matching, "refused": count - accepted, "refusals": refusals}, ready
    )
os.replace(ready_path + ".tmp", ready_path)
threading.Event().wait()  # hold the connection and its subscriptions, never reading again
