"""Who may do what (hub.core.auth): bare JIDs with roles, optionally per device group."""

from __future__ import annotations

import pytest

from hub.core.auth import Authorizer, Grant
from hub.core.profile import Role

AUTH = Authorizer(
    {
        "Admin@Example.org": Grant(Role.ADMIN, notify_new_devices=True),
        "op@example.org": Grant(Role.OPERATOR),
        "viewer@example.org": Grant(Role.VIEWER),
        "cook@example.org": Grant(Role.OPERATOR, groups=frozenset({"kitchen", "pantry"})),
    }
)


@pytest.mark.parametrize(
    ("jid", "group", "role"),
    [
        ("admin@example.org/phone", None, Role.ADMIN),  # full JID, other case
        ("ADMIN@EXAMPLE.ORG", "garage", Role.ADMIN),
        ("op@example.org", "kitchen", Role.OPERATOR),
        ("viewer@example.org", None, Role.VIEWER),
        ("cook@example.org", "kitchen", Role.OPERATOR),
        ("cook@example.org", "pantry", Role.OPERATOR),
        ("cook@example.org", "garage", None),
        ("cook@example.org", None, None),  # a group grant never covers ungrouped devices
        ("eve@elsewhere.example", None, None),
        ("op@example.org.evil", None, None),
        ("example.org", None, None),
    ],
)
def test_role_for(jid: str, group: str | None, role: Role | None) -> None:
    assert AUTH.role_for(jid, group) is role


def test_hub_role_is_any_grant() -> None:
    assert AUTH.hub_role("cook@example.org/x") is Role.OPERATOR
    assert AUTH.hub_role("eve@elsewhere.example") is None


@pytest.mark.parametrize(
    ("jid", "group", "needed", "allowed"),
    [
        ("viewer@example.org", None, Role.VIEWER, True),
        ("viewer@example.org", None, Role.OPERATOR, False),
        ("op@example.org", None, Role.OPERATOR, True),
        ("op@example.org", None, Role.ADMIN, False),
        ("admin@example.org", None, Role.ADMIN, True),
        ("cook@example.org", "kitchen", Role.OPERATOR, True),
        ("cook@example.org", "garage", Role.VIEWER, False),
        ("eve@elsewhere.example", None, Role.VIEWER, False),
    ],
)
def test_may(jid: str, group: str | None, needed: Role, allowed: bool) -> None:
    assert AUTH.may(jid, group, needed) is allowed


def test_role_ranks() -> None:
    assert [r.rank for r in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)] == [0, 1, 2]


def test_notified_operators() -> None:
    assert AUTH.notified_operators() == ("admin@example.org",)
