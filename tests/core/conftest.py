"""Shared fixtures for the core tests: the shipped ``hub`` profile and its binding."""

from __future__ import annotations

import pytest

from device_profiles.loader import builtin_profiles
from hub.core.mapping import Binding
from hub.core.profile import Profile


@pytest.fixture(scope="session")
def hub_profile() -> Profile:
    return builtin_profiles()["hub"]


@pytest.fixture
def hub_binding(hub_profile: Profile) -> Binding:
    return Binding("hub", hub_profile, {"base": "devices"})
