"""A sensor that publishes numbered readings with the awsiotsdk v2 client and records the inference results.

Usage: inference_sensor.py OUT_DIR

Publishes ``{"seq": n, "sensors": {"temp": t}, "hum": 50}`` on ``sensors/s1/reading`` every 20 ms, ``t`` 45 for
odd ``n``, 25 for ``n`` 2 more than a multiple of 4 and 5 for the others, and appends every message of ``ml/hot/results`` to ``OUT_DIR/results.jsonl``.
Once the first result arrives it publishes two messages the model cannot use (one not JSON, one without the
temperature) and writes the sequence number it had reached to ``OUT_DIR/misfits.json``. When ``OUT_DIR/stop``
exists it stops publishing, writes its last sequence number to ``OUT_DIR/published.json`` and keeps recording.
"""

import json
import os
import sys
import threading
import time

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import BinaryMessage, JsonMessage, PublishMessage

out_dir = sys.argv[1]
lock = threading.Lock()
first_result = threading.Event()
results = open(os.path.join(out_dir, "results.jsonl"), "a")  # noqa: SIM115 - open for the process's life


def on_result(event):
    message = event.json_message.message if event.json_message is not None else None
    with lock:
        results.write(json.dumps(message) + "\n")
        results.flush()
    first_result.set()


def write(name, value):
    path = os.path.join(out_dir, name)
    with open(path + ".tmp", "w") as handle:
        json.dump(value, handle)
    os.replace(path + ".tmp", path)


def temperature(seq):
    return 45 if seq % 2 else 25 if seq % 4 == 2 else 5


client = GreengrassCoreIPCClientV2()
client.subscribe_to_topic(topic="ml/hot/results", on_stream_event=on_result)
seq = 0
misfits_sent = False
while not os.path.exists(os.path.join(out_dir, "stop")):
    reading = {"seq": seq, "sensors": {"temp": temperature(seq)}, "hum": 50}
    client.publish_to_topic(
        topic="sensors/s1/reading", publish_message=PublishMessage(json_message=JsonMessage(message=reading))
    )
    if first_result.is_set() and not misfits_sent:
        client.publish_to_topic(
            topic="sensors/s1/reading",
            publish_message=PublishMessage(binary_message=BinaryMessage(message=b"\xffnot json")),
        )
        client.publish_to_topic(
            topic="sensors/s1/reading",
            publish_message=PublishMessage(json_message=JsonMessage(message={"seq": -1, "hum": 50})),
        )
        misfits_sent = True
        write("misfits.json", {"after": seq})
    seq += 1
    time.sleep(0.02)
write("published.json", {"last": seq - 1})
threading.Event().wait()
