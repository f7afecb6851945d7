"""A component whose policy allows only GetThingShadow on one thing's classic shadow; records each outcome.

Usage: shadow_denied.py OUT_JSON
"""

import json
import os
import sys
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError, UnauthorizedError

out_path = sys.argv[1]
results = {}


def record(name, call):
    try:
        call()
        results[name] = {"ok": True}
    except (ResourceNotFoundError, UnauthorizedError) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}
    except Exception as exc:
        results[name] = {"error": type(exc).__name__, "message": traceback.format_exc()}


client = GreengrassCoreIPCClientV2()
record("get_allowed", lambda: client.get_thing_shadow(thing_name="allowed-thing"))
record("get_named_of_allowed", lambda: client.get_thing_shadow(thing_name="allowed-thing", shadow_name="n"))
record("get_other_thing", lambda: client.get_thing_shadow(thing_name="other-thing"))
record(
    "update_allowed",
    lambda: client.update_thing_shadow(thing_name="allowed-thing", shadow_name="", payload=b'{"state":{}}'),
)
record("delete_allowed", lambda: client.delete_thing_shadow(thing_name="allowed-thing"))
record("list_allowed", lambda: client.list_named_shadows_for_thing(thing_name="allowed-thing"))
client.close()
# Written whole, then renamed: the test never reads a half-written file.
with open(out_path + ".tmp", "w") as out:
    json.dump(results, out)
os.replace(out_path + ".tmp", out_path)
