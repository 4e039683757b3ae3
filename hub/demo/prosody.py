"""A private Prosody for the demo: one directory, loopback only, no root service.

It runs as a plain child process (no systemd, no daemon), so the demo works on
a fresh machine where the Debian package's own service may or may not run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
-- Written by 'hub demo'. Everything lives in this directory; loopback only.
run_as_root = true
data_path = "{dir}/data"
pidfile = "{dir}/prosody.pid"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{ }}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
http_ports = {{ }}
https_ports = {{ }}
s2s_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "offline" }}
modules_disabled = {{ "s2s"; "s2s_auth_certs"; "dialback"; "http" }}
ssl = {{ certificate = "{dir}/certs/localhost.crt"; key = "{dir}/certs/localhost.key" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = false

VirtualHost "{domain}"

Component "{component}"
    component_secret = "{secret}"
"""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """``preferred`` if it is free, else any free port (shown to the user anyway)."""
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def make_certificate(directory: Path, names: list[str]) -> Path:
    """A self-signed certificate for the given names (reused when present)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "localhost.crt", directory / "localhost.key"
    if not (cert.exists() and key.exists()):
        san = ",".join(f"DNS:{n}" for n in names)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", f"/CN={names[0]}",
             "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
    return cert


@dataclass
class PrivateProsody:
    directory: Path
    domain: str = "localhost"
    component: str = "devices.localhost"
    secret: str = ""
    c2s_port: int = 15222
    component_port: int = 15347
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    def start(self, timeout: float = 20.0) -> None:
        binary = shutil.which("prosody")
        if binary is None:
            raise RuntimeError("prosody is not installed (apt-get install prosody)")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        make_certificate(self.directory / "certs", [self.domain, self.component])
        self.config_file.write_text(
            CONFIG.format(
                dir=self.directory.resolve(),
                c2s_port=self.c2s_port,
                component_port=self.component_port,
                domain=self.domain,
                component=self.component,
                secret=self.secret,
            )
        )
        self.config_file.chmod(0o600)
        log = open(self.directory / "prosody.stdout", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [binary, "-F", "--config", str(self.config_file)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        for port in (self.c2s_port, self.component_port):
            if not wait_for_port(port, timeout, self.process):
                self.stop()
                tail = (
                    (self.directory / "prosody.log").read_text(errors="replace")[-2000:]
                    if (self.directory / "prosody.log").exists()
                    else ""
                )
                raise RuntimeError(f"prosody did not open port {port}; log:\n{tail}")

    def add_user(self, name: str, password: str) -> None:
        subprocess.run(
            ["prosodyctl", "--config", str(self.config_file), "register", name, self.domain, password],
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self, grace: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
