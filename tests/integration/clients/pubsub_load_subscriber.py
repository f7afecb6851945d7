"""A well-behaved subscriber (awsiotsdk v2 client, callbacks on its network thread, in arrival order).

Usage: pubsub_load_subscriber.py OUT READY

Subscribes to ``load/x`` and ``load/done``, writes READY, and once ``load/done`` arrives writes how many
messages it received and whether they came in publish order to OUT.
"""

import json
import sys
import threading

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

out_path, ready_path = sys.argv[1:3]
received = []
done = threading.Event()

client = GreengrassCoreIPCClientV2(executor=None)
client.subscribe_to_topic(
    topic="load/x", on_stream_event=lambda event: received.append(event.json_message.message["n"])
)
client.subscribe_to_topic(topic="load/done", on_stream_event=lambda event: done.set())
with open(ready_path, "w"):
    pass
finished = done.wait(120)
client.close()
with open(out_path, "w") as out:
    json.dump(
        {"finished": finished, "count": len(received), "in_order": received == list(range(len(received)))},
        out,
    )
