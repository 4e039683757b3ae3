"""Topic ⇄ device ⇄ JID: the one place that turns addresses into each other.

A :class:`Binding` is a profile applied to a broker (its slots filled, e.g.
``base=devices``). The :class:`Router` checks the bindings once at start-up:
rules that could claim the same topic are refused, because a topic that two
rules match would be routed by accident of order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from hub.core.jid import JidError, escape_localpart, split_bare, unescape_localpart
from hub.core.profile import Profile
from hub.core.topics import TopicError, TopicTemplate, filter_matches, validate_topic_name


class MappingError(ValueError):
    """Bindings that cannot be routed unambiguously."""


#: Entries each of :class:`Router`'s memos keeps before it starts afresh (a flood of made-up topics
#: must not grow it without bound).
MEMO_LIMIT = 16384


class TopicRole(Enum):
    AVAILABILITY = "availability"
    TELEMETRY = "telemetry"
    RESULT = "result"
    COMMAND = "command"  # our own outgoing topic, seen again on an external broker
    DISCOVERY = "discovery"  # a message that describes devices, read by the binding's mapper


@dataclass(frozen=True, slots=True)
class Binding:
    """One profile on one broker: ``hub`` with ``base=devices``."""

    name: str
    profile: Profile
    slots: Mapping[str, str] = field(default_factory=dict)
    jid_prefix: str = ""

    def template(self, template: TopicTemplate) -> TopicTemplate:
        values = {**self.profile.defaults, **self.slots}
        return template.substitute({k: v for k, v in values.items() if k in template.slots})


@dataclass(frozen=True, slots=True)
class Route:
    binding: Binding
    role: TopicRole
    device_id: str
    index: int = 0  # which telemetry, availability or discovery spec


@dataclass(frozen=True, slots=True)
class _Rule:
    binding: Binding
    role: TopicRole
    template: TopicTemplate
    index: int


class Router:
    """Routes topics to devices and names each device's JID and command topic."""

    def __init__(self, bindings: Iterable[Binding], domain: str) -> None:
        self.domain = domain.lower()
        self.bindings: dict[str, Binding] = {}
        rules: list[_Rule] = []
        for binding in bindings:
            if binding.name in self.bindings:
                raise MappingError(f"binding {binding.name!r} is defined twice")
            self.bindings[binding.name] = binding
            rules.extend(self._rules_of(binding))
        self._check_overlaps(rules)
        self._rules = tuple(rules)
        #: Topics that discovered devices named, each routed to the device(s) that read it.
        self._exact: dict[str, list[Route]] = {}
        self._exact_of: dict[tuple[str, str], list[str]] = {}
        self._by_first_level: dict[str | None, list[_Rule]] = {}
        # Every message asks for the same few topics and JIDs again: remembered, so routing one
        # costs a dict lookup instead of a topic check, a template match and a JID escape.
        self._routes: dict[str, Route | None] = {}
        self._jids: dict[tuple[str, str], str] = {}
        for rule in rules:
            first = rule.template.levels[0]
            key = getattr(first, "text", None)
            self._by_first_level.setdefault(key, []).append(rule)

    @staticmethod
    def _rules_of(binding: Binding) -> list[_Rule]:
        profile = binding.profile
        id_slot = profile.id_slot
        found: list[_Rule] = []

        def add(role: TopicRole, template: TopicTemplate, index: int = 0) -> None:
            filled = binding.template(template)
            if role is TopicRole.DISCOVERY:  # describes devices, so it names none: its slots match anything
                found.append(_Rule(binding, role, filled, index))
                return
            free = {id_slot, "property", "verb"} if role is TopicRole.COMMAND else {id_slot}
            missing = [s for s in filled.slots if s not in free]
            if missing:
                raise MappingError(
                    f"binding {binding.name!r}: {role.value} topic {template.source!r} "
                    f"needs a value for {', '.join('{' + m + '}' for m in missing)}"
                )
            if id_slot not in filled.slots:
                raise MappingError(
                    f"binding {binding.name!r}: {role.value} topic {template.source!r} has no {{{id_slot}}} slot"
                )
            found.append(_Rule(binding, role, filled, index))

        for index, availability in enumerate(profile.availability):
            add(TopicRole.AVAILABILITY, availability.topic, index)
        for index, discovery in enumerate(profile.discovery):
            add(TopicRole.DISCOVERY, discovery.topic, index)
        for index, telemetry in enumerate(profile.telemetry):
            add(TopicRole.TELEMETRY, telemetry.topic, index)
        if profile.result:
            add(TopicRole.RESULT, profile.result.topic)
        if profile.commands:
            add(TopicRole.COMMAND, profile.commands.topic)
        return found

    @staticmethod
    def _check_overlaps(rules: list[_Rule]) -> None:
        for i, first in enumerate(rules):
            for second in rules[i + 1 :]:
                if first.template.overlaps(second.template):
                    raise MappingError(
                        f"ambiguous rules: {first.role.value} topic {first.template.source!r} of binding "
                        f"{first.binding.name!r} and {second.role.value} topic {second.template.source!r} of "
                        f"binding {second.binding.name!r} can match the same topic"
                    )

    def subscription_filters(self) -> tuple[str, ...]:
        """Filters that cover every topic the hub reads (not its own command topics)."""
        filters = {r.template.as_filter() for r in self._rules if r.role is not TopicRole.COMMAND}
        exact = {t for t in self._exact if not any(filter_matches(f, t) for f in filters)}
        return tuple(sorted(filters)) + tuple(sorted(exact))

    def device_namespaces(self, placeholder: str) -> tuple[str, ...]:
        """One filter per topic prefix that names a device, e.g. ``devices/<placeholder>/#``.

        Every topic a device reads or writes (availability, telemetry, result and
        command topics) lies under one of them, with its id in place of
        ``placeholder``: the embedded broker's default per-device ACL.
        """
        found: list[str] = []
        for rule in self._rules:
            if rule.role is TopicRole.DISCOVERY:
                continue
            parts: list[str] = []
            for level in rule.template.levels:
                text = getattr(level, "text", None)  # a literal level; the only slot left is the id
                if text is not None:
                    parts.append(text)
                    continue
                parts += [placeholder, "#"]
                break
            namespace = "/".join(parts)
            if namespace not in found:
                found.append(namespace)
        return tuple(found)

    def route(self, topic: str) -> Route | None:
        """The rule a topic belongs to: a device's role (with its id), a discovery topic (no id), or ``None``.

        A topic no one may publish to (wildcards, NUL) is claimed by no rule: an
        external broker that passed ``devices/+/telemetry`` on would otherwise make
        ``+`` a device whose command topic cannot be built. The rules are fixed at
        start-up and never overlap, so the answer per topic is remembered (bounded);
        discovered devices' own topics are looked up first by :meth:`routes`.
        """
        try:
            return self._routes[topic]
        except KeyError:
            pass
        found = self._route(topic)
        if len(self._routes) >= MEMO_LIMIT:
            self._routes.clear()
        self._routes[topic] = found
        return found

    def _route(self, topic: str) -> Route | None:
        try:
            validate_topic_name(topic)
        except TopicError:
            return None
        first = topic.split("/", 1)[0]
        candidates = self._by_first_level.get(first, []) + self._by_first_level.get(None, [])
        for rule in candidates:
            values = rule.template.match(topic)
            if values is None:
                continue
            device_id = "" if rule.role is TopicRole.DISCOVERY else values[rule.binding.profile.id_slot]
            return Route(rule.binding, rule.role, device_id, rule.index)
        return None

    def routes(self, topic: str) -> list[Route]:
        """Every device route of a topic: several discovered devices or specs may read one topic."""
        exact = self._exact.get(topic)
        if exact:
            return list(exact)
        found = self.route(topic)
        return [found] if found is not None and found.role is not TopicRole.DISCOVERY else []

    def set_device_topics(self, binding: Binding, device_id: str, profile: Profile) -> list[str]:
        """Route a discovered device's literal topics to it; returns the topics that are new to the router.

        A topic with slots left (``{id}``) is filled with the device id; one that
        is still not a valid topic name is skipped (the mapper validated it).
        """
        known = set(self._exact)
        self.clear_device_topics(binding, device_id)
        routes: list[tuple[str, Route]] = []

        def add(template: TopicTemplate, role: TopicRole, index: int = 0) -> None:
            try:
                topic = binding.template(template).format({profile.id_slot: device_id, "id": device_id})
                validate_topic_name(topic)
            except (TopicError, KeyError):
                return
            routes.append((topic, Route(binding, role, device_id, index)))

        for index, availability in enumerate(profile.availability):
            add(availability.topic, TopicRole.AVAILABILITY, index)
        for index, telemetry in enumerate(profile.telemetry):
            add(telemetry.topic, TopicRole.TELEMETRY, index)
        if profile.result:
            add(profile.result.topic, TopicRole.RESULT)
        new: list[str] = []
        for topic, route in routes:
            if topic not in self._exact:
                self._exact[topic] = []
                if topic not in known:
                    new.append(topic)
            if route not in self._exact[topic]:
                self._exact[topic].append(route)
        self._exact_of[(binding.name, device_id)] = [topic for topic, _ in routes]
        return new

    def has_device_topic(self, topic: str) -> bool:
        """Whether a discovered device named this topic as one of its own."""
        return topic in self._exact

    def clear_device_topics(self, binding: Binding, device_id: str) -> None:
        for topic in self._exact_of.pop((binding.name, device_id), []):
            kept = [r for r in self._exact.get(topic, []) if (r.binding.name, r.device_id) != (binding.name, device_id)]
            if kept:
                self._exact[topic] = kept
            else:
                self._exact.pop(topic, None)

    def discovery_rule(self, topic: str) -> Route | None:
        """The binding and discovery spec a topic is for, if it is a discovery topic."""
        found = self.route(topic)
        return found if found is not None and found.role is TopicRole.DISCOVERY else None

    def topic_for(
        self, binding: Binding, template: TopicTemplate, device_id: str, extra: Mapping[str, str] | None = None
    ) -> str:
        values = {binding.profile.id_slot: device_id, "id": device_id, **(extra or {})}
        filled = binding.template(template)
        return filled.format({name: values[name] for name in filled.slots})

    def jid_for(self, binding: Binding, device_id: str) -> str:
        """``<prefix><escaped id>@<domain>``, lower-cased as servers compare JIDs."""
        key = (binding.name + "\0" + binding.jid_prefix, device_id)
        jid = self._jids.get(key)
        if jid is not None:
            return jid
        try:
            localpart = escape_localpart(binding.jid_prefix + device_id)
        except JidError as exc:
            raise MappingError(str(exc)) from None
        jid = f"{localpart}@{self.domain}".lower()
        if len(self._jids) >= MEMO_LIMIT:
            self._jids.clear()
        self._jids[key] = jid
        return jid

    def device_id_for(self, binding: Binding, jid: str) -> str | None:
        """The inverse of :meth:`jid_for` for ids without upper-case letters."""
        localpart, domain = split_bare(jid)
        if localpart is None or domain != self.domain:
            return None
        raw = unescape_localpart(localpart)
        if not raw.startswith(binding.jid_prefix.lower()):
            return None
        return raw[len(binding.jid_prefix) :]


def check_template(source: str) -> TopicTemplate:
    """Parse a template, turning its error into a :class:`MappingError`."""
    try:
        return TopicTemplate.parse(source)
    except TopicError as exc:
        raise MappingError(str(exc)) from None
