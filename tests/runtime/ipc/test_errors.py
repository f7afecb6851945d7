"""Modeled errors: shape names and payloads as the awsiotsdk client decodes them."""

from __future__ import annotations

import pytest
from awsiot.greengrasscoreipc import model

from edgewise.runtime.ipc import errors
from edgewise.runtime.ipc.errors import ModeledError, ResourceNotFoundError, ServiceError

MODELED = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, ModeledError)]


@pytest.mark.parametrize(
    "cls", [cls for cls in MODELED if cls is not ModeledError], ids=lambda cls: cls.__name__
)
def test_every_modeled_error_is_an_error_shape_the_sdk_knows(cls: type[ModeledError]) -> None:
    error = ResourceNotFoundError("Thing", "x") if cls is ResourceNotFoundError else cls("it went wrong")
    sdk_type = model.SHAPE_INDEX.find_shape_type(error.shape)

    assert sdk_type is not None, error.shape
    assert issubclass(sdk_type, Exception)
    assert sdk_type._from_payload(error.payload()).message == error.message


def test_payload_carries_the_fields_of_every_known_client() -> None:
    assert ServiceError("Disk full").payload() == {
        "message": "Disk full",
        "_message": "Disk full",
        "_errorCode": "ServiceError",
        "_service": "aws.greengrass#GreengrassCoreIPC",
    }


def test_service_error_context_is_sent_when_given() -> None:
    error = ServiceError("Disk full", context={"free": 0})

    decoded = model.ServiceError._from_payload(error.payload())

    assert error.shape == "aws.greengrass#ServiceError"
    assert decoded.context == {"free": 0}


def test_resource_not_found_names_the_resource() -> None:
    error = ResourceNotFoundError("Configuration", "a/b")

    decoded = model.ResourceNotFoundError._from_payload(error.payload())

    assert str(error) == "Configuration 'a/b' not found"
    assert (decoded.resource_type, decoded.resource_name) == ("Configuration", "a/b")
    assert (
        ResourceNotFoundError("Shadow", "s", "No shadow s for thing t").message == "No shadow s for thing t"
    )
