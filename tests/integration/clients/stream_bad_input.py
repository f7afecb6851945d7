"""A component that sends the stream manager bad input through the real SDK and records how each was answered:
stream names the SDK refuses itself, names it lets through that the server must refuse (and, with the SDK's own
checks turned off as a client in another language might not have them, the names it would have refused), and a
full stream under each strategy. It records what the streams hold afterwards, so that the test sees nothing was
stored half.

Usage: stream_bad_input.py OUT_JSON
"""

import json
import os
import sys
import traceback

from stream_manager import (
    MessageStreamDefinition,
    Persistence,
    ReadMessagesOptions,
    StrategyOnFull,
    StreamManagerClient,
)
from stream_manager.utilinternal import UtilInternal

out_path = sys.argv[1]
#: Names the SDK's own pattern refuses before sending anything.
REFUSED_BY_THE_SDK = ["", "a/b", "../escape", "x" * 256, "nul\x00"]
#: Names the SDK's pattern (Python's Unicode \w) lets through but Greengrass's (ASCII) does not.
PASSED_BY_THE_SDK = ["température", "名前"]
PAYLOAD = b"p" * 300
result = {}


def outcome(call, *args):
    """[exception class, message] of ``call(*args)``, or ["ok", its value]."""
    try:
        return ["ok", call(*args)]
    except Exception as error:
        return [type(error).__name__, str(error)]


def definition(name, strategy=StrategyOnFull.OverwriteOldestData):
    return MessageStreamDefinition(
        name=name,
        max_size=1024,
        stream_segment_size=1024,
        strategy_on_full=strategy,
        persistence=Persistence.File,
        flush_on_write=True,
    )


def read_all(client, name):
    messages = client.read_messages(
        name,
        ReadMessagesOptions(desired_start_sequence_number=0, min_message_count=1, max_message_count=1000),
    )
    return [[message.sequence_number, message.payload.decode()] for message in messages]


try:
    client = StreamManagerClient()

    def create(name):
        client.create_message_stream(definition(name))

    try:
        result["sdk_refused"] = [outcome(create, n) for n in REFUSED_BY_THE_SDK]
        result["server_refused"] = [outcome(create, n) for n in PASSED_BY_THE_SDK]
        result["append_refused"] = [outcome(client.append_message, n, b"x") for n in PASSED_BY_THE_SDK]
        checks = UtilInternal.is_invalid
        UtilInternal.is_invalid = staticmethod(lambda _: False)
        try:
            result["unchecked_refused"] = [outcome(create, n) for n in REFUSED_BY_THE_SDK]
            result["unchecked_append_refused"] = [
                outcome(client.append_message, n, b"x") for n in REFUSED_BY_THE_SDK
            ]
        finally:
            UtilInternal.is_invalid = checks

        client.create_message_stream(definition("full-reject", StrategyOnFull.RejectNewData))
        accepted = []
        for index in range(20):
            answer = outcome(client.append_message, "full-reject", f"{index:03d}".encode() + PAYLOAD)
            if answer[0] != "ok":
                result["reject_full"] = answer
                break
            accepted.append([answer[1], f"{index:03d}" + PAYLOAD.decode()])
        result["reject_accepted"] = accepted
        result["reject_again"] = outcome(client.append_message, "full-reject", b"999" + PAYLOAD)
        result["reject_stored"] = read_all(client, "full-reject")

        client.create_message_stream(definition("full-overwrite"))
        result["overwrite_appended"] = [
            [client.append_message("full-overwrite", f"{index:03d}".encode() + PAYLOAD), f"{index:03d}"]
            for index in range(20)
        ]
        result["overwrite_stored"] = [
            [number, text[:3]] for number, text in read_all(client, "full-overwrite")
        ]
        info = client.describe_message_stream("full-overwrite").storage_status
        result["overwrite_status"] = [
            info.oldest_sequence_number,
            info.newest_sequence_number,
            info.total_bytes,
        ]
        result["streams"] = sorted(client.list_streams())
    finally:
        client.close()
except Exception:
    result["error"] = traceback.format_exc()

# Written whole and renamed, so that the test never reads half a result.
with open(out_path + ".tmp", "w") as handle:
    json.dump(result, handle, ensure_ascii=False)
os.replace(out_path + ".tmp", out_path)
