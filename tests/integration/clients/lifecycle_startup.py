"""A Startup step that reports RUNNING with the real awsiotsdk v1 client, then keeps running."""

import sys
import time
from pathlib import Path

from awsiot.greengrasscoreipc import connect
from awsiot.greengrasscoreipc.model import ReportedLifecycleState, UpdateStateRequest

ipc = connect()
operation = ipc.new_update_state()
operation.activate(UpdateStateRequest(state=ReportedLifecycleState.RUNNING))
operation.get_response().result(timeout=10)
Path(sys.argv[1]).write_text("reported")
while True:
    time.sleep(60)
