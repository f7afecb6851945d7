"""Models shared by the inference component's unit tests: exported once per session."""

from __future__ import annotations

import pytest

from tests.components.inference.packages import hot_classifier


@pytest.fixture(scope="session")
def hot_at_30() -> bytes:
    """A classifier that says ``hot`` above 30 degrees."""
    return hot_classifier(30.0)


@pytest.fixture(scope="session")
def hot_at_20() -> bytes:
    """The same classifier with a threshold of 20 degrees: the second model version."""
    return hot_classifier(20.0)
