"""Publishes COUNT messages to ``load/x`` with the awsiotsdk v2 client, pipelined, then ``load/done``.

Usage: pubsub_load_publisher.py OUT COUNT READY...
"""

import json
import os
import sys
import time

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

WINDOW = 100
out_path, count, *ready_paths = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
deadline = time.monotonic() + 60
while not all(os.path.exists(path) for path in ready_paths):
    if time.monotonic() > deadline:
        sys.exit("the subscribers never got ready")
    time.sleep(0.05)

client = GreengrassCoreIPCClientV2()
pad = "x" * 150
start = time.monotonic()
pending = []
for n in range(count):
    message = PublishMessage(json_message=JsonMessage(message={"n": n, "pad": pad}))
    pending.append(client.publish_to_topic_async(topic="load/x", publish_message=message))
    if len(pending) >= WINDOW:
        pending.pop(0).result(30)
for future in pending:
    future.result(30)
client.publish_to_topic(
    topic="load/done", publish_message=PublishMessage(json_message=JsonMessage(message=1))
)
seconds = time.monotonic() - start
client.close()
with open(out_path, "w") as out:
    json.dump({"published": count, "seconds": seconds}, out)
