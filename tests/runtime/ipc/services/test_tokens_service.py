"""ValidateAuthorizationToken against a real runtime: only the stream manager may ask."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.runtime.ipc.services.harness import ComponentClient, connect

from edgewise.runtime.kernel import Kernel

STREAM_MANAGER = "aws.greengrass.StreamManager"


@pytest.fixture
async def stream_manager(kernel: Kernel) -> AsyncIterator[ComponentClient]:
    client = await connect(kernel, STREAM_MANAGER)
    yield client
    await client.close()


async def test_the_stream_manager_learns_that_a_components_token_is_valid(
    kernel: Kernel, stream_manager: ComponentClient
) -> None:
    token = kernel.tokens.issue("test.StreamClient")

    reply = await stream_manager.call("ValidateAuthorizationToken", {"token": token})

    assert reply.error is None
    assert reply.body == {"isValid": True}


async def test_an_unknown_token_is_an_invalid_token_error(stream_manager: ComponentClient) -> None:
    reply = await stream_manager.call("ValidateAuthorizationToken", {"token": "NOTATOKEN0000000"})

    assert reply.error == "InvalidTokenError"


@pytest.mark.parametrize("token", [None, "", 12])
async def test_a_missing_token_is_invalid_arguments(stream_manager: ComponentClient, token: Any) -> None:
    reply = await stream_manager.call("ValidateAuthorizationToken", {"token": token})

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith("token:")


async def test_any_other_component_is_unauthorized(kernel: Kernel) -> None:
    client = await connect(kernel, "test.Curious")

    reply = await client.call("ValidateAuthorizationToken", {"token": kernel.tokens.issue("test.Curious")})

    assert reply.error == "UnauthorizedError"
    assert "test.Curious" in reply.message
    await client.close()
