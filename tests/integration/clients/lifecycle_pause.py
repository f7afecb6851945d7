"""A component that pauses and resumes another one with the real awsiotsdk v2 client.

Usage: lifecycle_pause.py OUT_DIR TARGET OUTSIDE_POLICY
Writes OUT_DIR/paused.json after pausing TARGET, waits for OUT_DIR/go, resumes it, writes OUT_DIR/resumed.json.
"""

import json
import sys
import time
from pathlib import Path

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    InvalidArgumentsError,
    ResourceNotFoundError,
    ServiceError,
    UnauthorizedError,
)

out_dir, target, outside = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
results = {}


def record(name, call):
    try:
        call()
        results[name] = {"ok": True}
    except (InvalidArgumentsError, ResourceNotFoundError, ServiceError, UnauthorizedError) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}


def write(name):
    (out_dir / f".{name}").write_text(json.dumps(results))
    (out_dir / f".{name}").rename(out_dir / name)


client = GreengrassCoreIPCClientV2()
record("pause_outside_policy", lambda: client.pause_component(component_name=outside))
record("resume_outside_policy", lambda: client.resume_component(component_name=outside))
record("pause_missing", lambda: client.pause_component(component_name="no.such.Component"))
record("pause", lambda: client.pause_component(component_name=target))
write("paused.json")
deadline = time.monotonic() + 60
while not (out_dir / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
record("resume", lambda: client.resume_component(component_name=target))
write("resumed.json")
client.close()
