"""A component that validates its new configuration with the real awsiotsdk v1 client.

Usage: config_validator.py OUT_DIR
Rejects a configuration whose ``mode`` is ``bad``, accepts any other. Writes OUT_DIR/ready once subscribed
and appends one JSON line per validation to OUT_DIR/validations.
"""

import json
import queue
import sys
from pathlib import Path

import awsiot.greengrasscoreipc.client as client
from awsiot.greengrasscoreipc import connect
from awsiot.greengrasscoreipc.model import (
    ConfigurationValidityReport,
    SendConfigurationValidityReportRequest,
    SubscribeToValidateConfigurationUpdatesRequest,
)

out_dir = Path(sys.argv[1])
requests = queue.Queue()


class Handler(client.SubscribeToValidateConfigurationUpdatesStreamHandler):
    def on_stream_event(self, event):
        # Answered from the main thread: a blocking call inside a callback would hold up the client.
        requests.put(event.validate_configuration_update_event)

    def on_stream_error(self, error):
        return False

    def on_stream_closed(self):
        pass


ipc = connect()
subscription = ipc.new_subscribe_to_validate_configuration_updates(Handler())
subscription.activate(SubscribeToValidateConfigurationUpdatesRequest())
subscription.get_response().result(timeout=10)
(out_dir / "ready").write_text("ready")

while True:
    event = requests.get()
    mode = event.configuration.get("mode")
    status, message = ("REJECTED", f"mode {mode} is not supported") if mode == "bad" else ("ACCEPTED", "fine")
    # Logged before answering: once answered, the test may look at the log at any moment.
    with (out_dir / "validations").open("a") as log:
        log.write(json.dumps({"deploymentId": event.deployment_id, "mode": mode, "status": status}) + "\n")
    report = ConfigurationValidityReport(status=status, deployment_id=event.deployment_id, message=message)
    operation = ipc.new_send_configuration_validity_report()
    operation.activate(SendConfigurationValidityReportRequest(configuration_validity_report=report))
    operation.get_response().result(timeout=10)
