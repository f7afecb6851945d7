"""Pre-provisioning hooks: an HTTP(S) endpoint that RegisterThing asks before it provisions a device.

AWS IoT calls a Lambda function; Edgewise POSTs the same input as JSON to the template's ``targetUrl``::

    {"claimCertificateId": null, "certificateId": "...", "certificatePem": "...",
     "templateArn": "arn:aws:iot:edgewise:000000000000:provisioningtemplate/<name>",
     "clientId": null, "parameters": {"SerialNumber": "0042"}}

``claimCertificateId`` and ``clientId`` are null: the broker does not tell the provisioning worker who
published a request. The endpoint answers 2xx with ``{"allowProvisioning": true, "parameterOverrides":
{...}}``; as with AWS, anything else (another status, no answer within 5 s, a body that is not that object,
``allowProvisioning`` not true) refuses the registration with ``AccessDenied``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from edgewise.cloud.errors import InvalidRequestError, PermissionDeniedError

#: AWS's limit for the Lambda, kept for the endpoint: it must have answered in full within this many seconds.
HOOK_TIMEOUT: Final = 5.0
PAYLOAD_VERSION: Final = "2020-04-01"
TARGET_URL_PATTERN: Final = r"^https?://\S+$"
TARGET_URL_MAX_LENGTH: Final = 2048
TEMPLATE_ARN_PREFIX: Final = "arn:aws:iot:edgewise:000000000000:provisioningtemplate/"
_MAX_REPLY_BYTES: Final = 65_536


@dataclass(frozen=True)
class PreProvisioningHook:
    """Where a template's pre-provisioning hook is served, and the version of the input it receives."""

    target_url: str
    payload_version: str = PAYLOAD_VERSION


def check_hook(field: str, hook: PreProvisioningHook) -> None:
    """Raise unless ``hook`` names an http(s) URL with a host and the payload version we send."""
    try:
        url = httpx.URL(hook.target_url)
    except httpx.InvalidURL as exc:
        raise InvalidRequestError(f"{field}.targetUrl", f"is not a URL: {exc}") from exc
    if len(hook.target_url) > TARGET_URL_MAX_LENGTH or url.scheme not in ("http", "https") or not url.host:
        raise InvalidRequestError(
            f"{field}.targetUrl",
            f"must be an http:// or https:// URL with a host, at most {TARGET_URL_MAX_LENGTH}",
        )
    if hook.payload_version != PAYLOAD_VERSION:
        raise InvalidRequestError(
            f"{field}.payloadVersion",
            f"{hook.payload_version!r} is not {PAYLOAD_VERSION!r}, the only version",
        )


def ask_hook(
    hook: PreProvisioningHook, payload: Mapping[str, Any], *, timeout: float = HOOK_TIMEOUT
) -> dict[str, Any]:
    """Ask the hook about a registration; returns its ``parameterOverrides``. Blocks for up to ``timeout`` s.

    Raises:
        PermissionDeniedError: the hook refused, failed, or did not answer in time (AWS ``AccessDenied``).
    """
    deadline = time.monotonic() + timeout
    reply = bytearray()
    try:
        # trust_env=False: the hook is reached directly, whatever proxy the cloud's environment names.
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", hook.target_url, json=dict(payload)) as response,
        ):
            if not response.is_success:
                raise _denied(f"answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                reply += chunk
                if len(reply) > _MAX_REPLY_BYTES:
                    raise _denied(f"answered more than {_MAX_REPLY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the reply did not end in time")
    except httpx.TimeoutException as exc:
        raise _denied(f"did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise _denied(f"could not be reached ({type(exc).__name__}: {exc})") from exc
    try:
        decision = json.loads(reply)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _denied("answered something that is not JSON") from exc
    if not isinstance(decision, dict):
        raise _denied("answered JSON that is not an object")
    allowed = decision.get("allowProvisioning")
    if allowed is not True and not (isinstance(allowed, str) and allowed.lower() == "true"):
        raise _denied("did not allow provisioning (allowProvisioning is not true)")
    overrides = decision.get("parameterOverrides") or {}
    if not isinstance(overrides, dict):
        raise _denied("answered parameterOverrides that is not an object")
    return overrides


def _denied(reason: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"The pre-provisioning hook {reason}; the device was not provisioned")
