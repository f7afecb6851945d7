"""A component that uses a message stream through the stream manager SDK, found only through the environment the
runtime gives it (``StreamManagerClient()`` with no arguments), and records what it got back and which copy of the
SDK it imported.

Usage: stream_operations.py OUT_JSON
"""

import json
import os
import sys
import traceback

import stream_manager
from stream_manager import (
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)

out_path = sys.argv[1]
result = {"sdk": stream_manager.__file__}
try:
    client = StreamManagerClient()
    try:
        client.create_message_stream(
            MessageStreamDefinition(
                name="telemetry",
                strategy_on_full=StrategyOnFull.OverwriteOldestData,
                persistence=Persistence.File,
            )
        )
        result["sequence_numbers"] = [
            client.append_message("telemetry", f"reading {i}".encode()) for i in range(3)
        ]
        messages = client.read_messages(
            "telemetry",
            ReadMessagesOptions(
                desired_start_sequence_number=0,
                min_message_count=3,
                max_message_count=3,
                read_timeout_millis=5000,
            ),
        )
        result["read"] = [[message.sequence_number, message.payload.decode()] for message in messages]
        info = client.describe_message_stream("telemetry")
        result["described"] = [
            info.definition.name,
            info.storage_status.oldest_sequence_number,
            info.storage_status.newest_sequence_number,
        ]
        result["streams"] = client.list_streams()
    finally:
        client.close()
except Exception:
    result["error"] = traceback.format_exc()

# Written whole and renamed, so that the test never reads half a result.
with open(out_path + ".tmp", "w") as handle:
    json.dump(result, handle)
os.replace(out_path + ".tmp", out_path)
