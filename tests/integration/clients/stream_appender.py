"""A component that appends COUNT messages to the ``durable`` stream (``flush_on_write``), creating it when it is
missing, and records each acknowledged sequence number with its payload, one line each, after ``append`` returned.

Usage: stream_appender.py RECORD_FILE COUNT
"""

import os
import sys

from stream_manager import MessageStreamDefinition, Persistence, StrategyOnFull, StreamManagerClient

record_path, count = sys.argv[1], int(sys.argv[2])
client = StreamManagerClient()
if "durable" not in client.list_streams():
    client.create_message_stream(
        MessageStreamDefinition(
            name="durable",
            strategy_on_full=StrategyOnFull.RejectNewData,
            persistence=Persistence.File,
            flush_on_write=True,
        )
    )
run = os.getpid()
with open(record_path, "a") as record:
    for index in range(count):
        payload = f"{run}-{index}"
        sequence_number = client.append_message("durable", payload.encode())
        record.write(f"{sequence_number} {payload}\n")
        record.flush()
client.close()
