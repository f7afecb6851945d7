"""A component without any aws.greengrass.Cli policy: its call must be refused."""

import json
import sys

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import UnauthorizedError

client = GreengrassCoreIPCClientV2()
try:
    client.list_components()
    outcome = {"error": None}
except UnauthorizedError as exc:
    outcome = {"error": "UnauthorizedError", "message": exc.message}
client.close()
with open(sys.argv[1], "w") as out:
    json.dump(outcome, out)
