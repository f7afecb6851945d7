"""A component that updates and reads a named shadow with the real awsiotsdk client v1 (``connect()``).

Usage: shadow_v1.py OUT_JSON THING_NAME
"""

import json
import os
import sys

import awsiot.greengrasscoreipc
from awsiot.greengrasscoreipc import model

WAIT_S = 10.0
out_path, thing = sys.argv[1], sys.argv[2]
client = awsiot.greengrasscoreipc.connect()
results = {}
try:
    operation = client.new_update_thing_shadow()
    body = {"state": {"reported": {"client": "v1"}}, "clientToken": "v1-token"}
    request = model.UpdateThingShadowRequest(
        thing_name=thing, shadow_name="v1", payload=json.dumps(body).encode()
    )
    operation.activate(request).result(WAIT_S)
    results["update"] = json.loads(operation.get_response().result(WAIT_S).payload)

    operation = client.new_get_thing_shadow()
    operation.activate(model.GetThingShadowRequest(thing_name=thing, shadow_name="v1")).result(WAIT_S)
    results["get"] = json.loads(operation.get_response().result(WAIT_S).payload)
finally:
    client.close().result(WAIT_S)
# Written whole, then renamed: the test never reads a half-written file.
with open(out_path + ".tmp", "w") as out:
    json.dump(results, out)
os.replace(out_path + ".tmp", out_path)
