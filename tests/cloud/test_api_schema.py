"""The API fuzzed against its own OpenAPI schema: no server errors, no accepted garbage, answers as documented."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from edgewise.cloud.app import create_app, initialize

# Module level because schemathesis builds its tests at import time, before pytest's tmp_path_factory exists;
# the data dir lives for the session and goes with the process, in every process that imported this module
# (each xdist worker imports it to collect, whether or not it runs these tests).
_TEMPORARY = tempfile.mkdtemp(prefix="edgewise-schemathesis-")
atexit.register(shutil.rmtree, _TEMPORARY, ignore_errors=True)
_DATA_DIR = Path(_TEMPORARY) / "cloud"
_FIRST_START = initialize(_DATA_DIR)
_APP = create_app(_FIRST_START.settings)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", _APP)


# Bodies with rules JSON Schema cannot state (the dynamic-group query grammar, removeThingType together with
# thingTypeName, a CSR's PEM, a policy document's JSON, a deployment's merge document and published versions, a target that names both a thing and a group): schema-valid requests may rightly be refused there,
# every other check still applies.
SEMANTIC_BODIES = {
    "PATCH /api/v1/things/{thingName}",
    "POST /api/v1/thing-groups",
    "PATCH /api/v1/thing-groups/{thingGroupName}",
    "POST /api/v1/certificates",
    "POST /api/v1/policies",
    "PATCH /api/v1/policies/{policyName}",
    "POST /api/v1/provisioning-templates",
    "PATCH /api/v1/provisioning-templates/{templateName}",
    "POST /api/v1/components",
    "PUT /api/v1/artifacts/{sha256}",
    "POST /api/v1/jobs",
    "POST /api/v1/deployments",
    # A model deployment carries a deployment's rollout, abort, timeout and retry rules.
    "POST /api/v1/models/{name}/deploy",
    "GET /api/v1/deployments",
    # A time range must end after it starts; a series holds at most 10,000 buckets of a positive size.
    "GET /api/v1/telemetry/messages",
    "GET /api/v1/telemetry/streams",
    "GET /api/v1/telemetry/series",
    "GET /api/v1/things/{thing}/logs",
    # Rule SQL and substitution templates have a grammar of their own.
    "POST /api/v1/rules",
    "PUT /api/v1/rules/{ruleName}",
    # A dataset needs stored telemetry or a file that parses; a training job needs an existing dataset.
    "POST /api/v1/datasets",
    "PUT /api/v1/datasets/{datasetName}/file",
    "POST /api/v1/training-jobs",
    # A drift monitor's durations must be 1 ms to 9999 years (0s and 999999999999w match the pattern).
    "PUT /api/v1/models/{name}/drift-monitor",
    # A shadow update's depth and size limits; a page token must be one the API gave.
    "POST /api/v1/things/{thingName}/shadow",
    "GET /api/v1/things/shadow/ListNamedShadowsForThing/{thingName}",
    # A connectivity host must be an IP address or a DNS name, and entry ids unique.
    "PUT /api/v1/core-devices/{thingName}/connectivity",
}


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    excluded: list[CheckFunction] = (
        [positive_data_acceptance] if f"{case.method} {case.path}" in SEMANTIC_BODIES else []
    )
    if any(value is None or isinstance(value, list) for value in (case.query or {}).values()):
        # requests drops None and [] and sends a list as the parameter repeated: ``namePrefix=["a"]`` goes out as
        # ``namePrefix=a``, a valid string, so the request that goes out is not the negative one generated.
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_FIRST_START.admin_token}"}, excluded_checks=excluded
    )
