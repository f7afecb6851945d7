"""A component that defers one deployment once with the real awsiotsdk v2 client, then lets it go ahead.

Usage: lifecycle_updates.py OUT_DIR DEFER_MS
Writes OUT_DIR/ready once subscribed, and OUT_DIR/updates.json after the post-update event.
"""

import json
import queue
import sys
import time
from pathlib import Path

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import InvalidArgumentsError

out_dir, defer_ms = Path(sys.argv[1]), int(sys.argv[2])
events = queue.Queue()
seen = []
client = GreengrassCoreIPCClientV2()
try:
    client.defer_component_update(deployment_id="none", recheck_after_ms=10)
    seen.append({"unsubscribed_defer": None})
except InvalidArgumentsError as exc:
    seen.append({"unsubscribed_defer": type(exc).__name__})
client.subscribe_to_component_updates(on_stream_event=events.put)
(out_dir / "ready").write_text("ready")

while True:
    event = events.get()
    if event.pre_update_event is not None:
        deployment_id = event.pre_update_event.deployment_id
        first = not any("pre" in item for item in seen)
        seen.append(
            {"pre": deployment_id, "at": time.time(), "restarting": event.pre_update_event.is_ggc_restarting}
        )
        client.defer_component_update(
            deployment_id=deployment_id, message="busy", recheck_after_ms=defer_ms if first else 0
        )
    elif event.post_update_event is not None:
        seen.append({"post": event.post_update_event.deployment_id, "at": time.time()})
        (out_dir / ".updates.json").write_text(json.dumps(seen))
        (out_dir / ".updates.json").rename(out_dir / "updates.json")
