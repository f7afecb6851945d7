"""A component that reports metrics, and tries to validate a token, with the real awsiotsdk v2 client.

Usage: metric_put.py OUT_JSON
"""

import json
import os
import sys
from pathlib import Path

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import InvalidArgumentsError, Metric, MetricUnitType, UnauthorizedError

results = {}


def record(name, call):
    try:
        call()
        results[name] = {"ok": True}
    except (InvalidArgumentsError, UnauthorizedError) as exc:
        results[name] = {"error": type(exc).__name__, "message": exc.message}


client = GreengrassCoreIPCClientV2()
for value in (5, 1, 9):
    record(
        f"requests_{value}",
        lambda value=value: client.put_component_metric(
            metrics=[Metric(name="requests", unit=MetricUnitType.COUNT, value=value)]
        ),
    )
record(
    "latency",
    lambda: client.put_component_metric(
        metrics=[Metric(name="latency", unit=MetricUnitType.SECONDS, value=0.5)]
    ),
)
record(
    "denied",
    lambda: client.put_component_metric(metrics=[Metric(name="secret", unit=MetricUnitType.COUNT, value=1)]),
)
record(
    "negative",
    lambda: client.put_component_metric(
        metrics=[Metric(name="requests", unit=MetricUnitType.COUNT, value=-1)]
    ),
)
record("validate_token", lambda: client.validate_authorization_token(token=os.environ["SVCUID"]))
client.close()
out = Path(sys.argv[1])
out.with_name(f".{out.name}").write_text(json.dumps(results))
out.with_name(f".{out.name}").rename(out)
