"""A component that reads secrets with the real awsiotsdk client v2 and records each outcome.

Usage: secret_reader.py OUT_JSON CALLS_JSON, where CALLS_JSON maps a label to GetSecretValue keyword arguments.
"""

import base64
import json
import os
import sys
import traceback

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError, ServiceError, UnauthorizedError

out_path, calls_path = sys.argv[1], sys.argv[2]
with open(calls_path) as handle:
    calls = json.load(handle)
results = {}
client = GreengrassCoreIPCClientV2()
for label, arguments in calls.items():
    try:
        response = client.get_secret_value(**arguments)
        value = response.secret_value
        results[label] = {
            "ok": {
                "secretId": response.secret_id,
                "versionId": response.version_id,
                "versionStage": response.version_stage,
                "secretString": value.secret_string,
                "secretBinary": base64.b64encode(value.secret_binary).decode()
                if value.secret_binary
                else None,
            }
        }
    except (ResourceNotFoundError, ServiceError, UnauthorizedError) as exc:
        results[label] = {"error": type(exc).__name__, "message": exc.message}
    except Exception as exc:
        results[label] = {"error": type(exc).__name__, "message": traceback.format_exc()}
client.close()
# Written whole, then renamed: the test never reads a half-written file.
with open(out_path + ".tmp", "w") as out:
    json.dump(results, out)
os.replace(out_path + ".tmp", out_path)
