"""A component that exercises the configuration operations with the real awsiotsdk clients (v2 and v1).

Usage: config_operations.py OUT_DIR OTHER_COMPONENT
Writes OUT_DIR/phase1.json once its own calls are done, then OUT_DIR/phase2.json once it has seen the event
for the ``settings/mode`` change that the test makes with a deployment.
"""

import datetime
import json
import queue
import sys
import traceback
from pathlib import Path

from awsiot.greengrasscoreipc import connect
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import (
    FailedUpdateConditionCheckError,
    GetConfigurationRequest,
    InvalidArgumentsError,
    ResourceNotFoundError,
)

out_dir, other = Path(sys.argv[1]), sys.argv[2]
results = {}
events = queue.Queue()


def record(name, call):
    try:
        results[name] = {"ok": call()}
    except (FailedUpdateConditionCheckError, InvalidArgumentsError, ResourceNotFoundError) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}
    except Exception:
        results[name] = {"error": "unexpected", "message": traceback.format_exc()}


def wait_for_event(prefix):
    """The first event whose key path starts with ``prefix``, or None after 60 s."""
    try:
        while True:
            key_path = events.get(timeout=60)
            if key_path[: len(prefix)] == prefix:
                return key_path
    except queue.Empty:
        return None


def write(name):
    (out_dir / f".{name}").write_text(json.dumps(results))
    (out_dir / f".{name}").rename(out_dir / name)


client = GreengrassCoreIPCClientV2()
record("whole", lambda: client.get_configuration(key_path=[]).value)
record("leaf", lambda: client.get_configuration(key_path=["settings", "level"]).value)
record("missing", lambda: client.get_configuration(key_path=["settings", "nope"]).value)
record("other", lambda: client.get_configuration(component_name=other, key_path=["shared"]).value)
client.subscribe_to_configuration_update(
    key_path=["settings"],
    on_stream_event=lambda event: events.put(event.configuration_update_event.key_path),
)
now = datetime.datetime.now(datetime.UTC)
record(
    "update",
    lambda: (
        client.update_configuration(key_path=["settings"], timestamp=now, value_to_merge={"level": 2})
        and "done"
    ),
)
results["update_event"] = {"ok": wait_for_event(["settings", "level"])}
record("after_update", lambda: client.get_configuration(key_path=["settings", "level"]).value)
long_ago = datetime.datetime.fromtimestamp(1000, datetime.UTC)
record(
    "stale",
    lambda: client.update_configuration(
        key_path=["settings"], timestamp=long_ago, value_to_merge={"level": 3}
    ),
)
record(
    "access_control",
    lambda: client.update_configuration(
        key_path=[], timestamp=now, value_to_merge={"accessControl": {"aws.greengrass.Cli": {}}}
    ),
)

# The v1 client, as older components use it.
v1 = connect()
operation = v1.new_get_configuration()
operation.activate(GetConfigurationRequest(key_path=["settings"]))
results["v1_settings"] = {"ok": operation.get_response().result(timeout=10).value}
write("phase1.json")

results["deployment_event"] = {"ok": wait_for_event(["settings", "mode"])}
record("after_deployment", lambda: client.get_configuration(key_path=["settings", "mode"]).value)
write("phase2.json")
client.close()
v1.close()
