"""Throw-away Prosody and ejabberd servers for tests.

Each server is a plain child process (no systemd, no daemon mode) with all of
its state in one directory, listening on 127.0.0.1 only, on ports picked at run
time, so two test runs on one machine never collide and nothing touches the
system's own XMPP service. ``restart()`` keeps ports, accounts and rosters:
tests use it for "the XMPP server went away and came back".
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.ports import free_port

TEMPLATES = Path(__file__).with_name("templates")

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"
EJABBERDCTL = shutil.which("ejabberdctl") or "/usr/sbin/ejabberdctl"


class ServerError(RuntimeError):
    """A test server did not start, stop or run a command; the message carries its log tail."""


def prosody_available() -> bool:
    return os.access(PROSODY, os.X_OK) and os.access(PROSODYCTL, os.X_OK)


def ejabberd_available() -> bool:
    return os.access(EJABBERDCTL, os.X_OK) and shutil.which("erl") is not None


def render(template: str, out: Path, **values: object) -> None:
    """Fill ``@NAME@`` placeholders; refuse to leave one unfilled (a silent typo costs hours)."""
    text = (TEMPLATES / template).read_text()
    missing = set(re.findall(r"@([A-Z_]+)@", text)) - values.keys()
    if missing:
        raise ServerError(f"{template}: no value for {sorted(missing)}")
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    out.write_text(text)


def make_certificate(cert_dir: Path, names: list[str]) -> None:
    """A self-signed cert for ``names`` (``localhost.crt``/``.key``, and ``.pem`` = both)."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    crt, key, pem = (cert_dir / f"localhost.{ext}" for ext in ("crt", "key", "pem"))
    if crt.exists() and key.exists() and pem.exists():
        return
    san = ",".join(f"DNS:{name}" for name in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "30", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    key.chmod(0o600)
    pem.chmod(0o600)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int, grace: float) -> None:
    """SIGTERM one PID (never a group, never by name); SIGKILL if it is still there after ``grace``."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


def tail(*paths: Path, lines: int = 25) -> str:
    chunks = []
    for path in paths:
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(chunks) or "(no log output)"


class XmppServer(ABC):
    """One throw-away XMPP server: virtual host ``domain``, one XEP-0114 component domain.

    Start, stop and restart are blocking (they run subprocesses and wait for
    ports); from async tests use :meth:`restart_async` and friends so the event
    loop keeps serving the clients under test meanwhile.
    """

    kind: str
    start_timeout: float = 30.0

    def __init__(
        self,
        state_dir: Path,
        *,
        domain: str = "localhost",
        component_domain: str = "devices.localhost",
        component_secret: str | None = None,
        log_level: str = "info",
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.domain = domain
        self.component_domain = component_domain
        # Letters and digits only: the secret goes into Lua and YAML unquoted-safe.
        self.component_secret = component_secret or secrets.token_hex(12)
        self.log_level = log_level
        self.host = "127.0.0.1"
        self.c2s_port = free_port()
        self.component_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._users = 0

    # -- public API -------------------------------------------------------------------------------

    @property
    def ca_cert(self) -> Path:
        """The self-signed certificate clients should trust (valid for the domain and the component)."""
        return self.state_dir / "certs" / "localhost.crt"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        make_certificate(self.state_dir / "certs", [self.domain, self.component_domain])
        for port in self._ports():
            if port_open(port):
                raise ServerError(f"{self.kind}: port {port} is already taken")
        self._configure()
        self._launch()
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise

    def stop(self) -> None:
        self._kill()

    def pause(self) -> None:
        """SIGSTOP the server's whole process group: its sockets stay open and nothing is read or sent."""
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.killpg(self._proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same ports and state: accounts and rosters survive."""
        self.stop()
        self.start()

    def serving_pid(self) -> int | None:
        """The process holding the server's sockets: to pause it (SIGSTOP) or kill it outright."""
        return self._proc.pid if self.running and self._proc is not None else None

    @abstractmethod
    def add_user(self, name: str, password: str) -> str:
        """Register ``name@domain``; returns the bare JID."""

    def new_user(self, prefix: str = "operator", password: str | None = None) -> tuple[str, str]:
        """Register a user nobody else has used: fresh roster and subscriptions on a shared server."""
        self._users += 1
        password = password or secrets.token_hex(8)
        jid = self.add_user(f"{prefix}{self._users}-{secrets.token_hex(2)}", password)
        return jid, password

    async def start_async(self) -> None:
        await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    async def restart_async(self) -> None:
        await asyncio.to_thread(self.restart)

    async def add_user_async(self, name: str, password: str) -> str:
        return await asyncio.to_thread(self.add_user, name, password)

    async def new_user_async(self, prefix: str = "operator") -> tuple[str, str]:
        return await asyncio.to_thread(self.new_user, prefix)

    def logs(self) -> str:
        """The tail of the server's logs, for failure messages."""
        return tail(*self._log_files())

    def __enter__(self) -> XmppServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.domain} c2s={self.host}:{self.c2s_port} "
            f"component={self.component_domain}@{self.host}:{self.component_port} dir={self.state_dir}>"
        )

    # -- per-server parts -------------------------------------------------------------------------

    def _ports(self) -> list[int]:
        return [self.c2s_port, self.component_port]

    @abstractmethod
    def _configure(self) -> None: ...

    @abstractmethod
    def _command(self) -> list[str]: ...

    @abstractmethod
    def _log_files(self) -> list[Path]: ...

    def _is_ready(self) -> bool:
        return all(port_open(port) for port in self._ports())

    def _kill(self) -> None:
        if self._proc is None:
            return
        stop_pid(self._proc.pid, grace=10)
        self._reap()

    # -- shared mechanics -------------------------------------------------------------------------

    def _launch(self) -> None:
        stdout = (self.state_dir / f"{self.kind}.stdout").open("ab")
        with stdout:
            # Own session: a Ctrl-C in the terminal reaches pytest, whose teardown stops us in order.
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=self._env(),
                start_new_session=True,
            )

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServerError(f"{self.kind} exited while starting:\n{self.logs()}")
            if self._is_ready():
                return
            time.sleep(0.02)
        raise ServerError(f"{self.kind} not ready after {self.start_timeout} s:\n{self.logs()}")

    def _reap(self, timeout: float = 5.0) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _run(self, argv: list[str], what: str) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, env=self._env(), cwd=self.state_dir)
        if result.returncode != 0:
            raise ServerError(f"{self.kind}: {what} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout


class ProsodyServer(XmppServer):
    """Prosody 0.12: starts in ~0.2 s; users are written straight into its file store."""

    kind = "prosody"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "prosody.cfg.lua"

    def add_user(self, name: str, password: str) -> str:
        # prosodyctl writes to the data directory directly; works with the server running.
        self._run([PROSODYCTL, "--config", str(self.config_file), "register", name, self.domain, password],
                  f"register {name}")  # fmt: skip
        return f"{name}@{self.domain}"

    def _configure(self) -> None:
        (self.state_dir / "data").mkdir(exist_ok=True)
        render(
            "prosody.cfg.lua.in",
            self.config_file,
            STATE_DIR=self.state_dir,
            LOG_LEVEL=self.log_level,
            C2S_PORT=self.c2s_port,
            COMPONENT_PORT=self.component_port,
            DOMAIN=self.domain,
            COMPONENT_DOMAIN=self.component_domain,
            COMPONENT_SECRET=self.component_secret,
        )

    def _command(self) -> list[str]:
        return [PROSODY, "-F", "--config", str(self.config_file)]

    def _log_files(self) -> list[Path]:
        return [self.state_dir / f for f in ("prosody.stdout", "prosody.log", "prosody.err")]


class EjabberdServer(XmppServer):
    """ejabberd 23.01 under ``ejabberdctl foreground``: ready 2-4 s after start.

    Its sockets accept TCP before modules are loaded, so readiness is the
    "is started in the node" log line *written by this start* (the log file
    survives restarts). A private node name, cookie and distribution port keep
    ejabberdctl away from epmd and from any other node on the machine.
    """

    kind = "ejabberd"
    start_timeout = 60.0

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        super().__init__(state_dir, **kwargs)
        self.mqtt_port = free_port()
        self.dist_port = free_port()
        # Mnesia keys its tables by node name: it must stay the same across restarts.
        self.node_name = f"hubtest_{secrets.token_hex(4)}@localhost"
        self._cookie = secrets.token_hex(16)
        self._log_offset = 0
        self._ctl = EJABBERDCTL

    def add_user(self, name: str, password: str) -> str:
        self._run(self._ctl_argv("register", name, self.domain, password), f"register {name}")
        return f"{name}@{self.domain}"

    def ctl(self, *args: str) -> str:
        """Run any ejabberdctl command against this node (each call costs ~0.7 s: it boots a VM)."""
        return self._run(self._ctl_argv(*args), " ".join(args[:1]))

    def _ports(self) -> list[int]:
        return [self.c2s_port, self.component_port, self.mqtt_port]

    def _ctl_argv(self, *args: str) -> list[str]:
        d = self.state_dir
        return [
            self._ctl,
            "--config-dir", str(d), "--config", str(d / "ejabberd.yml"),
            "--ctl-config", str(d / "ejabberdctl.cfg"), "--logs", str(d / "logs"),
            "--spool", str(d / "spool"), *args,
        ]  # fmt: skip

    def _configure(self) -> None:
        d = self.state_dir
        (d / "logs").mkdir(exist_ok=True)
        (d / "spool").mkdir(exist_ok=True)
        render(
            "ejabberd.yml.in",
            d / "ejabberd.yml",
            STATE_DIR=d,
            LOG_LEVEL=self.log_level,
            C2S_PORT=self.c2s_port,
            COMPONENT_PORT=self.component_port,
            MQTT_PORT=self.mqtt_port,
            DOMAIN=self.domain,
            COMPONENT_DOMAIN=self.component_domain,
            COMPONENT_SECRET=self.component_secret,
        )
        render(
            "ejabberdctl.cfg.in",
            d / "ejabberdctl.cfg",
            STATE_DIR=d,
            NODE_NAME=self.node_name,
            COOKIE=self._cookie,
            DIST_PORT=self.dist_port,
        )
        (d / "ejabberdctl.cfg").chmod(0o600)
        # The VM's resolver must never ask DNS about localhost.
        (d / "inetrc").write_text('{lookup,["file","native"]}.\n{host,{127,0,0,1},["localhost"]}.\n')
        if os.geteuid() != 0:
            # Debian's ejabberdctl runs only for root or the "ejabberd" user; a copy without that check
            # works for anyone who owns the state dir.
            copy = d / "ejabberdctl"
            text = Path(EJABBERDCTL).read_text()
            copy.write_text("\n".join("INSTALLUSER=" if ln.startswith("INSTALLUSER=") else ln
                                      for ln in text.splitlines()) + "\n")  # fmt: skip
            copy.chmod(0o755)
            self._ctl = str(copy)
        log = d / "logs" / "ejabberd.log"
        self._log_offset = log.stat().st_size if log.exists() else 0
        (d / "ejabberd.pid").unlink(missing_ok=True)

    def _command(self) -> list[str]:
        return self._ctl_argv("foreground")

    def _log_files(self) -> list[Path]:
        d = self.state_dir
        return [d / "ejabberd.stdout", d / "logs" / "ejabberd.log", d / "logs" / "error.log"]

    def _is_ready(self) -> bool:
        log = self.state_dir / "logs" / "ejabberd.log"
        if not log.exists():
            return False
        with log.open("rb") as f:
            f.seek(self._log_offset)
            started = b"is started in the node" in f.read()
        return started and super()._is_ready()

    def serving_pid(self) -> int | None:
        return self._beam_pid()

    def _beam_pid(self) -> int | None:
        """The Erlang VM's PID from ejabberd's pid file, if it still names a VM of this state dir."""
        try:
            pid = int((self.state_dir / "ejabberd.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.state_dir).encode() in cmdline and pid_alive(pid) else None

    def _kill(self) -> None:
        if self._proc is None:
            return
        # TERM the VM itself (the ejabberdctl shell above it exits once the VM is gone).
        beam = self._beam_pid()
        if beam is not None:
            stop_pid(beam, grace=15)
        stop_pid(self._proc.pid, grace=5)
        self._reap()


SERVER_KINDS: dict[str, type[XmppServer]] = {"prosody": ProsodyServer, "ejabberd": EjabberdServer}
