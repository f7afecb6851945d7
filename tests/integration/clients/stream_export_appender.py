"""A component that appends to the ``durable`` stream (``flush_on_write``, exported with a ``KinesisConfig`` to
KINESIS_STREAM), creating it when it is missing, and records each acknowledged sequence number with its payload,
one line each, after ``append`` returned.

It appends COUNT messages, or with COUNT 0 until the file STOP exists (then exits 0). Appends are paced, so that a
test's outage falls among them rather than after them. An append that fails (the runtime went away) ends the
process with the error: what was not acknowledged is not recorded.

Usage: stream_export_appender.py RECORD_FILE STOP_FILE KINESIS_STREAM COUNT
"""

import os
import sys
import time

from stream_manager import (
    ExportDefinition,
    KinesisConfig,
    MessageStreamDefinition,
    Persistence,
    StrategyOnFull,
    StreamManagerClient,
)

record_path, stop_path, kinesis_stream, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
PACE = 0.05

client = StreamManagerClient()
if "durable" not in client.list_streams():
    client.create_message_stream(
        MessageStreamDefinition(
            name="durable",
            strategy_on_full=StrategyOnFull.RejectNewData,
            persistence=Persistence.File,
            flush_on_write=True,
            export_definition=ExportDefinition(
                kinesis=[
                    KinesisConfig(identifier="to-cloud", kinesis_stream_name=kinesis_stream, batch_size=10)
                ]
            ),
        )
    )
run = os.getpid()
index = 0
with open(record_path, "a") as record:
    while (count == 0 and not os.path.exists(stop_path)) or index < count:
        payload = f"{run}-{index}"
        sequence_number = client.append_message("durable", payload.encode())
        record.write(f"{sequence_number} {payload}\n")
        record.flush()
        index += 1
        time.sleep(PACE)
client.close()
