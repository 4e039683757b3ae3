"""Profile files → validated core :class:`~hub.core.profile.Profile` values."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from device_profiles.schema import CommandsModel, FieldModel, ProfileModel, PropertyModel
from hub.core.profile import (
    AvailabilityMode,
    AvailabilitySpec,
    CommandSpec,
    DiscoverySpec,
    FieldSpec,
    Profile,
    PropertyKind,
    PropertySpec,
    ReadingSpec,
    ResultSpec,
    Role,
    SwitchSpec,
    TelemetrySpec,
    VerbSpec,
)
from hub.core.topics import TopicTemplate
from hub.validation import ConfigError, Problem, read_yaml, validate

BUILTIN_DIR = Path(__file__).parent


def _command(model: CommandsModel) -> CommandSpec:
    return CommandSpec(
        TopicTemplate.parse(model.topic),
        model.set_payload,
        model.verb_payload,
        model.qos,
        model.retain,
        model.toggle_payload,
    )


def _property(name: str, p: PropertyModel) -> PropertySpec:
    return PropertySpec(
        name,
        PropertyKind(p.kind),
        p.min,
        p.max,
        p.step,
        tuple(p.choices),
        p.unit,
        p.max_length,
        p.echo,
        key=p.key,
        to_device=dict(p.to_device),
        command=_command(p.command) if p.command else None,
        help=p.help,
    )


def _field(name: str, f: FieldModel | str) -> FieldSpec:
    if isinstance(f, str):
        return FieldSpec(name, f)
    return FieldSpec(name, f.path, f.scale, f.offset, dict(f.values))


def to_profile(model: ProfileModel) -> Profile:
    """The core's frozen view of a validated profile."""
    t = TopicTemplate.parse
    return Profile(
        name=model.name,
        description=model.description,
        id_slot=model.id_slot,
        defaults=dict(model.defaults),
        expected_interval=model.expected_interval,
        availability=tuple(
            AvailabilitySpec(
                t(a.topic), tuple(a.online), tuple(a.offline), tuple(a.sleeping), a.path, tuple(a.transitional)
            )
            for a in model.availability_list
        ),
        availability_mode=AvailabilityMode(model.availability_mode),
        telemetry=tuple(
            TelemetrySpec(
                t(m.topic),
                m.codec,
                m.field,
                tuple(_field(name, f) for name, f in m.fields.items()),
                m.keep_unmapped,
                m.template,
            )
            for m in model.telemetry
        ),
        commands=_command(model.commands) if model.commands else None,
        result=(
            ResultSpec(t(model.result.topic), model.result.id_field, model.result.ok_field, model.result.message_field)
            if model.result
            else None
        ),
        readings={
            key: ReadingSpec(key, r.label or key, r.unit, r.show_label, r.precision, r.device_class)
            for key, r in model.readings.items()
        },
        properties={name: _property(name, p) for name, p in model.properties.items()},
        verbs={
            name: VerbSpec(
                name,
                v.help,
                Role(v.role),
                _command(v.command) if v.command else None,
                _property(name, v.param) if v.param else None,
            )
            for name, v in model.verbs.items()
        },
        switch=SwitchSpec(**model.switch.model_dump()) if model.switch else None,
        discovery=tuple(DiscoverySpec(t(d.topic), d.mapper) for d in model.discovery),
        rank=model.rank,
    )


def load_profile(path: Path) -> Profile:
    """One profile file, or a :class:`ConfigError` naming the file, line and field."""
    data, node = read_yaml(path)
    return to_profile(validate(ProfileModel, data, str(path), node))


def load_profiles(directories: Iterable[Path]) -> dict[str, Profile]:
    """Every ``*.yaml`` profile in the directories; later directories override earlier ones.

    All files are checked before anything is refused, so one run lists every problem.
    """
    profiles: dict[str, Profile] = {}
    origin: dict[str, Path] = {}
    problems: list[Problem] = []
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            try:
                profile = load_profile(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if profile.name in origin and origin[profile.name].parent == path.parent:
                problems.append(
                    Problem(str(path), None, "name", f"{profile.name!r} is also defined in {origin[profile.name]}")
                )
                continue
            profiles[profile.name] = profile
            origin[profile.name] = path
    if problems:
        raise ConfigError(problems)
    return profiles


def builtin_profiles() -> dict[str, Profile]:
    return load_profiles([BUILTIN_DIR])
