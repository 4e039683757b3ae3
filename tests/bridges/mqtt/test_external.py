"""ExternalBroker against a real mosquitto: traffic in, publishes out, restarts, auth, Last Will."""

# The fixtures are imported by name (there is no shared conftest for them), so their
# parameters shadow the imports: that is how pytest finds them, not a mistake.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import paho.mqtt.publish as paho_publish
import pytest

from bridges.mqtt.external import ExternalBroker, ExternalBrokerOptions
from hub.core.events import Event, MqttLinkDown, MqttLinkUp, MqttMessageReceived
from hub.core.intents import PublishMqtt
from tests.support.mosquitto import MosquittoBroker, find_tool
from tests.support.mosquitto_fixture import MosquittoFactory, mosquitto, mosquitto_factory  # noqa: F401

pytestmark = pytest.mark.integration

WAIT = 10.0  # seconds any single expected thing may take


# -- helpers -------------------------------------------------------------------------------------------


class Recorder:
    """The ``emit`` the app would give: non-blocking, into a queue the test drains."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def wait_for(self, predicate: Callable[[Event], bool], what: str, within: float = WAIT) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                event = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                pytest.fail(f"no {what} within {within}s; events seen: {self.seen}")
            self.seen.append(event)
            if predicate(event):
                return event

    async def message(self, topic: str) -> MqttMessageReceived:
        event = await self.wait_for(
            lambda e: isinstance(e, MqttMessageReceived) and e.topic == topic, f"message on {topic}"
        )
        assert isinstance(event, MqttMessageReceived)
        return event

    async def link_up(self) -> None:
        await self.wait_for(lambda e: isinstance(e, MqttLinkUp), "MqttLinkUp")

    async def link_down(self) -> None:
        await self.wait_for(lambda e: isinstance(e, MqttLinkDown), "MqttLinkDown")

    def drain(self) -> list[Event]:
        while not self.queue.empty():
            self.seen.append(self.queue.get_nowait())
        return self.seen


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll a counter the adapter exposes (not an event) until it holds."""
    for _ in range(int(WAIT / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {WAIT}s: {what}")


def options_for(broker: MosquittoBroker, **overrides: object) -> ExternalBrokerOptions:
    base = ExternalBrokerOptions(
        host=broker.host,
        port=broker.port,
        client_id="hub-under-test",
        keepalive=5,
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.5,
        timeout=5.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


class Gate:
    """The hub's queue as the adapter sees it (``hub.core.ports.Room``): open, or full until opened."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.opened.set()

    def room_available(self) -> bool:
        return self.opened.is_set()

    async def wait_for_room(self) -> None:
        await self.opened.wait()


@contextlib.asynccontextmanager
async def running(
    options: ExternalBrokerOptions, room: Gate | None = None
) -> AsyncIterator[tuple[ExternalBroker, Recorder]]:
    """Run the adapter as a task; on exit cancel it and surface any crash."""
    recorder = Recorder()
    hub = ExternalBroker(options, recorder, room)
    task = asyncio.create_task(hub.run(), name="external-broker")
    try:
        yield hub, recorder
    finally:
        assert not task.done(), f"run() ended on its own: {task.exception() if not task.cancelled() else ''}"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        assert task.cancelled()


async def mosquitto_pub(broker: MosquittoBroker, topic: str, payload: str, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-m", payload, *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()


class MosquittoSub:
    """A ``mosquitto_sub`` process; :meth:`open` returns once its SUBACK arrived, so nothing is missed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def open(cls, broker: MosquittoBroker, topic: str) -> MosquittoSub:
        # mosquitto_sub block-buffers its debug lines into a pipe; line-buffer them to see the SUBACK.
        proc = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", "1",
            "-d", "-F", "MSG %t %r %p",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        sub = cls(proc)
        try:
            await sub._line_starting("Subscribed")
        except BaseException:
            await sub.close()
            raise
        return sub

    async def _line_starting(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        pytest.fail(f"mosquitto_sub exited before {prefix!r}: {lines}")
                    line = raw.decode().rstrip("\n")
                    lines.append(line)
                    if line.startswith(prefix):
                        return line
        except TimeoutError:
            pytest.fail(f"mosquitto_sub printed no {prefix!r} within {WAIT}s: {lines}")

    async def message(self) -> tuple[str, bool, str]:
        """(topic, retained, payload) of the next message."""
        _, topic, retained, payload = (await self._line_starting("MSG ")).split(" ", 3)
        return topic, retained == "1", payload

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def subscribed(broker: MosquittoBroker, topic: str) -> AsyncIterator[MosquittoSub]:
    sub = await MosquittoSub.open(broker, topic)
    try:
        yield sub
    finally:
        await sub.close()


@pytest.fixture(autouse=True)
def _need_clients() -> None:
    for tool in ("mosquitto_pub", "mosquitto_sub", "stdbuf"):
        if find_tool(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install mosquitto-clients)")


# -- options -------------------------------------------------------------------------------------------


def test_password_never_in_repr() -> None:
    options = ExternalBrokerOptions(username="hub", password="s3cret-pw")
    assert "s3cret-pw" not in repr(options)


@pytest.mark.parametrize(
    "overrides",
    [{"qos": 3}, {"reconnect_min_delay": 0}, {"reconnect_min_delay": 5, "reconnect_max_delay": 1},
     {"max_pending_publishes": 0}, {"max_waiting_messages": 0}, {"password": "x"}],
)  # fmt: skip
def test_options_reject_nonsense(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ExternalBrokerOptions(**overrides)  # type: ignore[arg-type]


# -- traffic in ----------------------------------------------------------------------------------------


async def test_mosquitto_pub_messages_arrive_as_events(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto)) as (_hub, events):
        await events.link_up()
        await mosquitto_pub(mosquitto, "sensors/kitchen/temp", "21.5")
        got = await events.message("sensors/kitchen/temp")
        assert got == MqttMessageReceived("sensors/kitchen/temp", b"21.5", retain=False, client_id=None)

        # MQTT 3.1.1 §3.3.1.3: live delivery to an existing subscription clears the retain flag.
        await mosquitto_pub(mosquitto, "sensors/kitchen/hum", "40", "-r")
        got = await events.message("sensors/kitchen/hum")
        assert (got.payload, got.retain) == (b"40", False)


async def test_paho_messages_arrive_with_binary_payload(mosquitto: MosquittoBroker) -> None:
    payload = bytes(range(256))
    async with running(options_for(mosquitto)) as (_hub, events):
        await events.link_up()
        await asyncio.to_thread(
            paho_publish.single, "dev/bin", payload, qos=1, hostname=mosquitto.host, port=mosquitto.port
        )
        got = await events.message("dev/bin")
        assert got.payload == payload
        assert got.retain is False


async def test_while_the_hub_is_full_messages_wait_in_order_and_the_overflow_is_counted(
    mosquitto: MosquittoBroker,
) -> None:
    gate = Gate()
    async with running(options_for(mosquitto, max_waiting_messages=5), gate) as (hub, events):
        await events.link_up()
        gate.opened.clear()
        batch = [{"topic": "dev/full", "payload": str(n), "qos": 1} for n in range(1, 9)]
        await asyncio.to_thread(paho_publish.multiple, batch, hostname=mosquitto.host, port=mosquitto.port)
        # One message waits in the adapter's hands for room, max_waiting_messages more behind it.
        await until(lambda: hub.dropped_messages == 2, "the 2 messages beyond those dropped")
        assert not any(isinstance(e, MqttMessageReceived) for e in events.drain())
        gate.opened.set()
        payloads = [(await events.message("dev/full")).payload for _ in range(6)]
        assert payloads == [b"1", b"2", b"3", b"4", b"5", b"6"]
        await mosquitto_pub(mosquitto, "dev/full", "after")  # room again: straight through
        assert (await events.message("dev/full")).payload == b"after"


async def test_retained_before_connect_arrive_with_retain_true(mosquitto: MosquittoBroker) -> None:
    await mosquitto_pub(mosquitto, "plug/1/state", "ON", "-r", "-q", "1")
    await mosquitto_pub(mosquitto, "plug/2/state", "OFF", "-r", "-q", "1")
    async with running(options_for(mosquitto)) as (_hub, events):
        await events.link_up()
        one = await events.message("plug/1/state")
        two = await events.message("plug/2/state")
        assert (one.payload, one.retain) == (b"ON", True)
        assert (two.payload, two.retain) == (b"OFF", True)


async def test_only_requested_filters_are_subscribed(mosquitto: MosquittoBroker) -> None:
    options = options_for(mosquitto, subscriptions=("sensors/+/temp", "switch/#"))
    async with running(options) as (_hub, events):
        await events.link_up()
        await mosquitto_pub(mosquitto, "other/thing", "no")
        await mosquitto_pub(mosquitto, "sensors/a/temp", "1")
        await mosquitto_pub(mosquitto, "switch/b/state", "2")
        await events.message("sensors/a/temp")
        await events.message("switch/b/state")
        topics = [e.topic for e in events.drain() if isinstance(e, MqttMessageReceived)]
        assert "other/thing" not in topics


# -- traffic out ---------------------------------------------------------------------------------------


async def test_publish_reaches_a_subscriber(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto)) as (hub, events), subscribed(mosquitto, "cmd/#") as sub:
        await events.link_up()
        for qos in (0, 1, 2):
            await hub.publish(PublishMqtt(f"cmd/lamp/{qos}", b"toggle", qos=qos))
            assert await sub.message() == (f"cmd/lamp/{qos}", False, "toggle")
        assert hub.dropped_publishes == 0


async def test_publish_retain_is_stored_by_the_broker(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto, subscriptions=())) as (hub, events):
        await events.link_up()
        await hub.publish(PublishMqtt("hub/kept", b"v1", qos=1, retain=True))
    async with subscribed(mosquitto, "hub/kept") as late:
        assert await late.message() == ("hub/kept", True, "v1")


async def test_own_publishes_come_back_when_subscribed_to_everything(mosquitto: MosquittoBroker) -> None:
    """Documented, not a bug: MQTT 3.1.1 has no no-local; the core ignores its own commands."""
    async with running(options_for(mosquitto)) as (hub, events):
        await events.link_up()
        await hub.publish(PublishMqtt("cmd/echo", b"x"))
        assert (await events.message("cmd/echo")).payload == b"x"


async def test_publish_while_never_connected_drops_and_counts() -> None:
    hub = ExternalBroker(ExternalBrokerOptions(), lambda _e: None)
    async with asyncio.timeout(1):
        await hub.publish(PublishMqtt("cmd/x", b"1"))
    assert hub.dropped_publishes == 1
    assert not hub.connected


async def test_publishes_beyond_the_pending_bound_are_dropped(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto, max_pending_publishes=2)) as (hub, events):
        await events.link_up()
        intents = [PublishMqtt(f"cmd/burst/{i}", b"1", qos=1) for i in range(5)]
        await asyncio.gather(*(hub.publish(intent) for intent in intents))
        assert hub.dropped_publishes == 3  # two awaited their PUBACK, the rest found the bound full
        await hub.publish(PublishMqtt("cmd/after", b"1", qos=1))
        assert hub.dropped_publishes == 3


async def test_publish_with_wildcard_topic_is_dropped_not_raised(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto)) as (hub, events):
        await events.link_up()
        await hub.publish(PublishMqtt("cmd/+/bad", b"1"))
        assert hub.dropped_publishes == 1
        assert hub.connected


# -- link loss -----------------------------------------------------------------------------------------


async def test_broker_restart_link_down_then_up_and_resubscribed(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto, subscriptions=("dev/#",))) as (hub, events):
        await events.link_up()
        await mosquitto_pub(mosquitto, "dev/a", "before")
        await events.message("dev/a")

        await asyncio.to_thread(mosquitto.stop)
        await events.link_down()
        assert not hub.connected
        async with asyncio.timeout(1):  # never blocks while down
            await hub.publish(PublishMqtt("cmd/x", b"lost"))
        assert hub.dropped_publishes == 1

        await asyncio.to_thread(mosquitto.start)
        await events.link_up()
        assert hub.connected
        # persistence is off, so the broker forgot the session: this only arrives if we re-subscribed
        await mosquitto_pub(mosquitto, "dev/a", "after")
        got = await events.message("dev/a")
        assert got.payload == b"after"

        async with subscribed(mosquitto, "cmd/#") as sub:
            await hub.publish(PublishMqtt("cmd/y", b"works again"))
            assert await sub.message() == ("cmd/y", False, "works again")


async def test_broker_killed_abruptly_is_noticed(mosquitto: MosquittoBroker) -> None:
    async with running(options_for(mosquitto)) as (_hub, events):
        await events.link_up()
        await asyncio.to_thread(mosquitto.kill)
        await events.link_down()
        await asyncio.to_thread(mosquitto.start)
        await events.link_up()


async def test_broker_absent_at_start_keeps_retrying(mosquitto: MosquittoBroker) -> None:
    await asyncio.to_thread(mosquitto.stop)
    async with running(options_for(mosquitto)) as (hub, events):
        await until(lambda: hub.connect_attempts >= 3, "three connection attempts")
        assert hub.last_error
        assert not any(isinstance(e, MqttLinkDown | MqttLinkUp) for e in events.drain())
        await asyncio.to_thread(mosquitto.start)
        await events.link_up()


# -- authentication ------------------------------------------------------------------------------------


async def test_username_password_auth(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory(allow_anonymous=False, users={"hub": "right-pw"})
    async with running(options_for(broker, username="hub", password="right-pw")) as (_hub, events):
        await events.link_up()
        await mosquitto_pub(broker, "dev/x", "1", "-u", "hub", "-P", "right-pw")
        assert (await events.message("dev/x")).payload == b"1"


async def test_wrong_password_fails_clearly_and_keeps_retrying(
    mosquitto_factory: MosquittoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(allow_anonymous=False, users={"hub": "right-pw"})
    async with running(options_for(broker, username="hub", password="wrong-pw")) as (hub, events):
        await until(lambda: hub.connect_attempts >= 3, "three connection attempts")
        assert hub.last_error is not None
        assert "refused" in hub.last_error and "username/password" in hub.last_error, hub.last_error
        assert not hub.connected
        assert not any(isinstance(e, MqttLinkUp) for e in events.drain())

        # The broker's config is fixed without restarting the hub: it gets in on its own.
        await asyncio.to_thread(broker.stop)
        fixed = mosquitto_factory(allow_anonymous=False, users={"hub": "wrong-pw"}, port=broker.port)
        assert fixed.port == broker.port
        await events.link_up()
    assert "wrong-pw" not in caplog.text
    assert "username/password" in caplog.text


# -- the hub's own availability ------------------------------------------------------------------------


async def test_status_online_then_offline_on_clean_stop(mosquitto: MosquittoBroker) -> None:
    options = options_for(mosquitto, status_topic="hub/status", subscriptions=("dev/#",))
    async with subscribed(mosquitto, "hub/status") as sub:
        async with running(options) as (_hub, events):
            await events.link_up()
            assert await sub.message() == ("hub/status", False, "online")
        assert await sub.message() == ("hub/status", False, "offline")
        assert not any(isinstance(e, MqttLinkDown) for e in events.drain())
    assert "Received DISCONNECT from hub-under-test" in mosquitto.log()
    async with subscribed(mosquitto, "hub/status") as late:
        assert await late.message() == ("hub/status", True, "offline")


_HUB_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from bridges.mqtt.external import ExternalBroker, ExternalBrokerOptions
    from hub.core.events import MqttLinkUp

    def emit(event):
        if isinstance(event, MqttLinkUp):
            print("UP", flush=True)

    options = ExternalBrokerOptions(
        host=sys.argv[1], port=int(sys.argv[2]), client_id="hub-doomed", status_topic="hub/status", keepalive=5
    )
    asyncio.run(ExternalBroker(options, emit).run())
    """
)


async def test_last_will_offline_when_the_hub_dies(mosquitto: MosquittoBroker) -> None:
    """A SIGKILLed hub sends no DISCONNECT: the broker publishes the Last Will for it."""
    async with subscribed(mosquitto, "hub/status") as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _HUB_SCRIPT, mosquitto.host, str(mosquitto.port),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
            assert line.strip() == b"UP"
            assert await sub.message() == ("hub/status", False, "online")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert await sub.message() == ("hub/status", False, "offline")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert "Received DISCONNECT from hub-doomed" not in mosquitto.log()
