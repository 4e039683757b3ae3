"""Shared fixtures: real XMPP servers on ports picked at run time (see tests/support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.xmpp_servers import (
    EjabberdServer,
    ProsodyServer,
    XmppServer,
    ejabberd_available,
    prosody_available,
)


@pytest.fixture
def prosody(tmp_path: Path) -> Iterator[XmppServer]:
    """A fresh Prosody per test (it starts in well under a second): fresh accounts and rosters."""
    if not prosody_available():
        pytest.skip("prosody is not installed (Debian package 'prosody')")
    with ProsodyServer(tmp_path / "prosody") as server:
        yield server


@pytest.fixture(scope="session")
def _ejabberd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XmppServer]:
    if not ejabberd_available():
        pytest.skip("ejabberd is not installed (Debian package 'ejabberd')")
    with EjabberdServer(tmp_path_factory.mktemp("ejabberd")) as server:
        yield server


@pytest.fixture
def ejabberd(_ejabberd_session: XmppServer) -> XmppServer:
    """One ejabberd per session (it needs 2-4 s to start); give each test its own users (``new_user``)."""
    _ejabberd_session.start()  # no-op unless an earlier test left it stopped
    return _ejabberd_session


@pytest.fixture(params=["prosody", pytest.param("ejabberd", marks=pytest.mark.ejabberd)])
def xmpp_server(request: pytest.FixtureRequest) -> XmppServer:
    """Each test that uses this runs once against Prosody and once against ejabberd."""
    server: XmppServer = request.getfixturevalue(request.param)
    return server
