"""The device's reading of the cloud's provisioning replies: any ``/rejected`` reply becomes an error naming the
operation, and any pair of accepted replies becomes a device or a :class:`ClaimError`."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edgewise.runtime.provisioning import ClaimError, ClaimRejectedError, provisioned_device, rejection

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
)
REPLY_FIELDS = st.sampled_from(
    [
        "certificateId",
        "certificatePem",
        "privateKey",
        "certificateOwnershipToken",
        "thingName",
        "deviceConfiguration",
        "statusCode",
        "errorCode",
        "errorMessage",
    ]
)
ANSWERS = st.dictionaries(REPLY_FIELDS | st.text(max_size=5), JSON_VALUES, max_size=6)


@given(answer=ANSWERS)
def test_rejection_always_names_the_operation(answer: dict[str, Any]) -> None:
    error = rejection("RegisterThing", answer)
    assert isinstance(error, ClaimRejectedError)
    assert str(error).startswith("RegisterThing was rejected: ")


@given(created=ANSWERS, registered=ANSWERS)
def test_provisioned_device_from_any_replies_is_a_device_or_a_claim_error(
    created: dict[str, Any], registered: dict[str, Any]
) -> None:
    try:
        device = provisioned_device(created, registered, "KEY")
    except ClaimError:
        return
    assert device.thing_name == registered["thingName"]
    assert all(isinstance(value, str) for value in device.device_configuration.values())


def test_rejection_keeps_the_aws_error_fields() -> None:
    error = rejection(
        "RegisterThing",
        {"statusCode": 400, "errorCode": "InvalidParameters", "errorMessage": "parameters.X: is required"},
    )
    assert (error.status_code, error.error_code, error.error_message) == (
        400,
        "InvalidParameters",
        "parameters.X: is required",
    )
    assert str(error) == "RegisterThing was rejected: InvalidParameters (400): parameters.X: is required"
