"""A component that calls every CLI IPC operation with the real awsiotsdk client and records the results.

Usage: cli_operations.py OUT_JSON RECIPE_DIR TARGET_COMPONENT
"""

import json
import sys
import time
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError, ServiceError, UnauthorizedError

out_path, recipe_dir, target = sys.argv[1], sys.argv[2], sys.argv[3]
results = {}


def record(name, call):
    try:
        results[name] = {"ok": call()}
    except (ResourceNotFoundError, ServiceError, UnauthorizedError) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}
    except Exception as exc:
        results[name] = {"error": type(exc).__name__, "message": traceback.format_exc()}


client = GreengrassCoreIPCClientV2()
record(
    "list_components",
    lambda: sorted((c.component_name, c.state) for c in client.list_components().components),
)
record(
    "get_component_details",
    lambda: (lambda d: [d.component_name, d.version, d.state, d.configuration])(
        client.get_component_details(component_name=target).component_details
    ),
)
record("get_missing_component", lambda: client.get_component_details(component_name="no.such.Component"))
record("restart_component", lambda: client.restart_component(component_name=target).restart_status)
deployment_id = client.create_local_deployment(
    recipe_directory_path=recipe_dir, root_component_versions_to_add={"test.Late": "1.0.0"}
).deployment_id
results["create_local_deployment"] = {"ok": deployment_id}
deadline = time.monotonic() + 60
status = None
while time.monotonic() < deadline:
    status = client.get_local_deployment_status(deployment_id=deployment_id).deployment
    if status.status in ("SUCCEEDED", "FAILED"):
        break
    time.sleep(0.2)
results["get_local_deployment_status"] = {
    "ok": [status.deployment_id, status.status, status.deployment_status_details.detailed_deployment_status]
}
record(
    "list_local_deployments",
    lambda: [d.deployment_id for d in client.list_local_deployments().local_deployments],
)
record(
    "cancel_finished_deployment", lambda: client.cancel_local_deployment(deployment_id=deployment_id).message
)
record("stop_component", lambda: client.stop_component(component_name=target).stop_status)
record("unsupported_operation", lambda: client.create_debug_password())
client.close()
with open(out_path, "w") as out:
    json.dump(results, out)
