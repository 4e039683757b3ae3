"""Devices that describe themselves: discovery messages in, device descriptions out.

Conventions such as Home Assistant discovery, zigbee2mqtt's ``bridge/devices``,
Homie's ``$description`` and Tasmota's ``tasmota/discovery`` publish what a
device is, how it is named, where its readings are and which commands it takes.
A *mapper* is a pure function that reads such a message, together with the
other discovery messages of the same binding seen so far (for conventions
that spread a description over many topics), and says which devices the
message's *source* describes now. The hub keeps one contribution per source
and device, merges them (Home Assistant sends one config per entity) and
creates, updates or removes devices accordingly.

A new convention is one function registered in :data:`MAPPERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from hub.core.mapping import Binding
from hub.core.profile import Profile


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device as one source describes it: its own profile holds literal topics."""

    device_id: str
    name: str
    profile: Profile
    #: The id of a device (same binding) whose being offline makes this one unreachable
    #: (a zigbee2mqtt bridge, a Homie root device).
    parent: str | None = None
    #: Other ids the same physical device is known by (an IEEE address, a MAC), lower-case.
    aliases: tuple[str, ...] = ()
    #: Maker and model, for ``status`` and ``help``.
    model: str = ""


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one source describes now; no devices means it describes none any more (removal)."""

    source: str
    devices: tuple[DiscoveredDevice, ...] = ()
    #: Parts of the message left out, each saying why (an entry without an id, a name no topic can hold).
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DiscoveryInput:
    topic: str
    payload: bytes
    binding: Binding
    #: Every discovery message of this binding the hub holds, this one included, by topic.
    seen: Mapping[str, bytes]


Mapper = Callable[[DiscoveryInput], Discovery]


class DiscoveryError(ValueError):
    """A discovery message that describes nothing usable; the message says why."""


MAPPERS: dict[str, Mapper] = {}


def register(name: str) -> Callable[[Mapper], Mapper]:
    def add(mapper: Mapper) -> Mapper:
        MAPPERS[name] = mapper
        return mapper

    return add


def merge(parts: Iterable[DiscoveredDevice]) -> DiscoveredDevice:
    """One device from the contributions of several sources (first one's name and ids, everything's topics)."""
    items = list(parts)
    first = items[0]
    profile = first.profile
    for part in items[1:]:
        other = part.profile
        profile = replace(
            profile,
            availability=profile.availability + tuple(a for a in other.availability if a not in profile.availability),
            telemetry=profile.telemetry + tuple(t for t in other.telemetry if t not in profile.telemetry),
            readings={**profile.readings, **{k: v for k, v in other.readings.items() if k not in profile.readings}},
            properties={**profile.properties, **other.properties},
            verbs={**profile.verbs, **other.verbs},
            switch=profile.switch or other.switch,
            commands=profile.commands or other.commands,
            result=profile.result or other.result,
        )
    aliases = tuple(dict.fromkeys(a for part in items for a in part.aliases))
    model = next((p.model for p in items if p.model), "")
    parent = next((p.parent for p in items if p.parent), None)
    return replace(first, profile=profile, aliases=aliases, model=model, parent=parent)


def _load_builtin_mappers() -> None:
    """Import the mapper modules so they register themselves."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_builtin_mappers()
