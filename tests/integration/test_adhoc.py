"""Ad-hoc commands end to end: Prosody, the hub with its embedded broker, a paho device, slixmpp as the client.

The operator uses slixmpp's own disco, data form and ad-hoc command plugins,
as a client with a command UI (Gajim, Psi) would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slixmpp.exceptions import IqError

from hub.core.adhoc import NS_COMMANDS, NS_DISCO_ITEMS
from hub.demo.devices import SimulatedDevice
from tests.support.hub_runner import DEVICE_PASSWORD, HubRunner
from tests.support.operator import Operator
from tests.support.xmpp_servers import XmppServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


def commanding(server: XmppServer, user: tuple[str, str]) -> Operator:
    """An operator whose client speaks disco, data forms and ad-hoc commands."""
    op = Operator(server, *user)
    for plugin in ("xep_0030", "xep_0004", "xep_0050"):
        op.xmpp.register_plugin(plugin)
    return op


async def execute(
    op: Operator, jid: str, node: str, form: dict[str, str] | None = None, session: str | None = None
) -> Any:
    """One command step; with ``form``, the step submits it (``complete``)."""
    adhoc = op.xmpp["xep_0050"]
    if form is None:
        return await adhoc.send_command(jid, node, timeout=TIMEOUT)
    submitted = op.xmpp["xep_0004"].make_form(ftype="submit")
    for var, value in form.items():
        submitted.add_field(var=var, value=value)
    return await adhoc.send_command(jid, node, action="complete", payload=submitted, sessionid=session, timeout=TIMEOUT)


async def submit_set(op: Operator, jid: str, **values: str) -> Any:
    """Open the ``set`` form, change ``values``, submit it: what a person does in the client's dialog."""
    first = await execute(op, jid, "set")
    assert first["command"]["status"] == "executing"
    fields = first["command"]["form"].get_fields()
    filled = {var: str(field["value"]) for var, field in fields.items()}
    return await execute(op, jid, "set", {**filled, **values}, session=first["command"]["sessionid"])


@pytest.fixture
async def hub_and_thermostat(
    prosody: XmppServer, tmp_path: Path
) -> AsyncIterator[tuple[HubRunner, SimulatedDevice, tuple[str, str]]]:
    operator = await prosody.new_user_async("operator")
    runner = HubRunner(prosody, tmp_path / "hub", operators={operator[0]: "operator"})
    async with runner.running():
        thermostat = SimulatedDevice(
            "thermostat", "thermostat", "127.0.0.1", runner.broker_port, "thermostat", DEVICE_PASSWORD, interval=60
        )
        thermostat.start()
        try:
            yield runner, thermostat, operator
        finally:
            thermostat.stop()


async def online_with_target(op: Operator, jid: str) -> None:
    await op.subscribe(jid)
    await op.wait_presence(jid, lambda p: p.type == "available" and "target 21 °C" in p.status)


def nodes(items: Any) -> list[str]:
    """Command nodes in the order sent (slixmpp's own view of the items is a set)."""
    return [item.get("node") for item in items.xml.iter(f"{{{NS_DISCO_ITEMS}}}item")]


async def test_operator_discovers_commands_and_sets_a_value_through_a_form(
    prosody: XmppServer, hub_and_thermostat: tuple[HubRunner, SimulatedDevice, tuple[str, str]]
) -> None:
    runner, thermostat, operator = hub_and_thermostat
    jid = runner.jid("thermostat")
    async with commanding(prosody, operator) as op:
        await online_with_target(op, jid)
        disco = op.xmpp["xep_0030"]
        info = await disco.get_info(jid=jid, timeout=TIMEOUT)
        assert NS_COMMANDS in info["disco_info"]["features"]
        assert ("client", "bot", None, "thermostat") in info["disco_info"]["identities"]
        items = await disco.get_items(jid=jid, node=NS_COMMANDS, timeout=TIMEOUT)
        assert nodes(items) == ["status", "set", "identify"]  # no reboot: it needs the admin role
        assert nodes(await disco.get_items(jid=runner.domain, node=NS_COMMANDS, timeout=TIMEOUT)) == [
            "status",
            "devices",
        ]

        status = await execute(op, jid, "status")
        values = {var: f["value"] for var, f in status["command"]["form"].get_fields().items()}
        assert values["state"] == "online" and values["reading.target"] == "21 °C"

        form = (await execute(op, jid, "set"))["command"]["form"].get_fields()
        assert form["target"]["type"] == "text-single" and form["target"]["value"] == "21"
        assert form["target"]["desc"] == "5–35 °C, step 0.5"
        assert form["mode"]["type"] == "list-single" and form["mode"]["value"] == "heat"

        done = await submit_set(op, jid, target="22.5")
        assert done["command"]["status"] == "completed"
        assert done["command"]["notes"] == [("info", "→ sent: set target 22.5 °C")]
        confirmed = await op.next_message(jid, body=lambda b: b.startswith("✓ set target 22.5 °C: done in "))
        assert confirmed.to == op.jid  # to the session that ran the command
        # The device answered only after it got the command, so it is in its list by now.
        assert [c["set"] for c in thermostat.commands_seen] == [{"target": 22.5}]


async def test_strangers_and_bad_values_publish_nothing(
    prosody: XmppServer, hub_and_thermostat: tuple[HubRunner, SimulatedDevice, tuple[str, str]]
) -> None:
    runner, thermostat, operator = hub_and_thermostat
    jid = runner.jid("thermostat")
    stranger = await prosody.new_user_async("stranger")
    async with commanding(prosody, operator) as op, commanding(prosody, stranger) as eve:
        await online_with_target(op, jid)
        with pytest.raises(IqError) as refused:
            await execute(eve, jid, "set", {"target": "30"})
        assert refused.value.iq["error"]["condition"] == "forbidden"
        with pytest.raises(IqError) as listing:
            await eve.xmpp["xep_0030"].get_items(jid=jid, node=NS_COMMANDS, timeout=TIMEOUT)
        assert listing.value.iq["error"]["condition"] == "forbidden"

        invalid = await submit_set(op, jid, target="50")
        assert invalid["command"]["status"] == "completed"
        assert invalid["command"]["notes"] == [("error", "50 is out of range: target takes 5–35 °C, step 0.5.")]

        # A valid command after them: had either of the others been published, the device would have seen it
        # first (one publisher, one topic, QoS 1: in order).
        done = await submit_set(op, jid, target="23")
        assert done["command"]["notes"] == [("info", "→ sent: set target 23 °C")]
        await op.next_message(jid, body=lambda b: b.startswith("✓ set target 23 °C: done in "))
        assert [c["set"] for c in thermostat.commands_seen] == [{"target": 23.0}]
