"""A component that exports one file through an S3 export task, as the SDK documents it: it creates a status
stream and a stream exported with an ``S3ExportTaskExecutorConfig`` whose ``statusConfig`` names it, appends one
``S3ExportTaskDefinition`` for FILE, reads statuses until the task succeeds or fails, and writes the statuses it
read (parsed with the SDK's own ``StatusMessage``) as JSON to RESULT_FILE.

Usage: stream_s3_task.py FILE BUCKET KEY RESULT_FILE
"""

import json
import pathlib
import sys

from stream_manager import (
    ExportDefinition,
    MessageStreamDefinition,
    ReadMessagesOptions,
    S3ExportTaskDefinition,
    S3ExportTaskExecutorConfig,
    Status,
    StatusConfig,
    StatusLevel,
    StatusMessage,
    StrategyOnFull,
    StreamManagerClient,
)
from stream_manager.util import Util

path, bucket, key, result_path = sys.argv[1:5]
client = StreamManagerClient()
try:
    client.create_message_stream(
        MessageStreamDefinition(name="s3-status", strategy_on_full=StrategyOnFull.RejectNewData)
    )
    client.create_message_stream(
        MessageStreamDefinition(
            name="s3-tasks",
            strategy_on_full=StrategyOnFull.RejectNewData,
            export_definition=ExportDefinition(
                s3_task_executor=[
                    S3ExportTaskExecutorConfig(
                        identifier="files",
                        status_config=StatusConfig(
                            status_level=StatusLevel.INFO, status_stream_name="s3-status"
                        ),
                    )
                ]
            ),
        )
    )
    task = S3ExportTaskDefinition(
        input_url=pathlib.Path(path).as_uri(), bucket=bucket, key=key, user_metadata={"origin": "component"}
    )
    client.append_message("s3-tasks", Util.validate_and_serialize_to_json_bytes(task))
    statuses = []
    start = 0
    while not statuses or statuses[-1].status not in (Status.Success, Status.Failure):
        messages = client.read_messages(
            "s3-status",
            ReadMessagesOptions(
                desired_start_sequence_number=start, min_message_count=1, read_timeout_millis=5000
            ),
        )
        for message in messages:
            statuses.append(Util.deserialize_json_bytes_to_obj(message.payload, StatusMessage))
        start = messages[-1].sequence_number + 1
    result = {"statuses": [[status.status.name, status.message] for status in statuses]}
except Exception as error:
    result = {"error": repr(error)}
pathlib.Path(result_path).write_text(json.dumps(result))
client.close()
