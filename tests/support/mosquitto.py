"""A throw-away mosquitto broker for tests, run as a plain child process.

Each broker gets its own config, log and (optional) password file in a temp
dir and a port from :func:`tests.support.ports.free_port`, so parallel runs
never meet each other or a system mosquitto on 1883. ``restart()`` keeps the
port, because the tests that need it are about clients reconnecting.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


def find_tool(name: str) -> str | None:
    """Path to a mosquitto binary; Debian puts the broker in /usr/sbin, often not on PATH."""
    return shutil.which(name, path=_SEARCH_PATH)


class MosquittoError(RuntimeError):
    """The broker did not start (the message carries the tail of its log)."""


class MosquittoBroker:
    """One mosquitto process with a generated config; use as a context manager or start/stop."""

    def __init__(
        self,
        workdir: Path,
        *,
        allow_anonymous: bool = True,
        users: Mapping[str, str] | None = None,
        persistence: bool = False,
        host: str = "127.0.0.1",
        port: int | None = None,
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        binary = find_tool("mosquitto")
        if binary is None:
            raise FileNotFoundError("mosquitto binary not found (apt-get install mosquitto)")
        self._binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.allow_anonymous = allow_anonymous
        self.users = dict(users or {})
        self.persistence = persistence
        self.start_timeout = start_timeout
        self.config_file = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        self.password_file = self.workdir / "passwd" if self.users else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_password_file()
        self.config_file.write_text(self._config(extra_config))

    # -- configuration -------------------------------------------------------------------------

    def _write_password_file(self) -> None:
        if self.password_file is None:
            return
        tool = find_tool("mosquitto_passwd")
        if tool is None:
            raise FileNotFoundError("mosquitto_passwd not found (apt-get install mosquitto)")
        for index, (user, password) in enumerate(self.users.items()):
            create = ["-c"] if index == 0 else []
            subprocess.run(
                [tool, *create, "-b", str(self.password_file), user, password],
                check=True,
                capture_output=True,
                timeout=30,
            )

    def _config(self, extra: str) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"log_dest file {self.log_file}",
            "log_type all",
            "connection_messages true",
        ]
        if self.persistence:
            lines.append(f"persistence_location {self.workdir}/")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if os.geteuid() == 0:
            # As root mosquitto drops to user "mosquitto", which cannot write our temp dir.
            lines.append(f"user {getpass.getuser()}")
        if extra:
            lines.append(extra)
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        """Start the process and return once the port accepts connections."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self._binary, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                stderr = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise MosquittoError(
                    f"mosquitto exited with {code} on start\nstderr: {stderr}\nlog: {self.log()[-2000:]}"
                )
            if self._accepts():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise MosquittoError(
                    f"mosquitto did not listen on {self.host}:{self.port} "
                    f"within {self.start_timeout}s\nlog: {self.log()[-2000:]}"
                )
            time.sleep(0.02)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr is not None:
            proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without closing anything cleanly."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(5.0)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port (optionally staying down a while)."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<MosquittoBroker {self.host}:{self.port} running={self.running}>"
