"""Who may do what: an allow-list of bare JIDs with roles, optionally per device group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.core.jid import bare
from hub.core.profile import Role


@dataclass(frozen=True, slots=True)
class Grant:
    role: Role
    #: Device groups this grant covers; ``None`` means every device.
    groups: frozenset[str] | None = None
    #: Ask this operator to add newly seen devices to the roster.
    notify_new_devices: bool = False


class Authorizer:
    def __init__(self, grants: Mapping[str, Grant]) -> None:
        self._grants = {bare(jid): grant for jid, grant in grants.items()}

    def role_for(self, jid: str, group: str | None) -> Role | None:
        """The role ``jid`` holds for a device in ``group``; ``None`` for strangers."""
        grant = self._grants.get(bare(jid))
        if grant is None:
            return None
        if grant.groups is not None and (group is None or group not in grant.groups):
            return None
        return grant.role

    def hub_role(self, jid: str) -> Role | None:
        """The role for the hub's own contact: any grant at all."""
        grant = self._grants.get(bare(jid))
        return grant.role if grant else None

    def may(self, jid: str, group: str | None, needed: Role) -> bool:
        role = self.role_for(jid, group)
        return role is not None and role.rank >= needed.rank

    def notified_operators(self) -> tuple[str, ...]:
        return tuple(jid for jid, grant in self._grants.items() if grant.notify_new_devices)
