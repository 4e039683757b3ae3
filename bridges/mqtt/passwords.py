"""Argon2id password hashes for MQTT users: made by ``hub passwd``, checked by the embedded broker.

The cost is OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane) rather than
argon2-cffi's default (64 MiB, 4 lanes): a Pi Zero 2 W has ~290 MiB free, and
after a hub restart every device reconnects at once. Checks run in threads,
at most :data:`MAX_CONCURRENT_CHECKS` at a time, so the event loop never
stalls and memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

#: Verified when the user is unknown, so a refusal takes as long whether or not the name exists.
_DUMMY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$wq6Gchc77cMe87Eq+FC1Yw$gfNyPAmyQXjYb7OlEiWp7yPrzrLPB7BLM16d9vXCpCE"

MAX_CONCURRENT_CHECKS = 2


def hash_password(plain: str) -> str:
    """A PHC string (``$argon2id$…``) to store in the config; the plain password is not kept."""
    return _HASHER.hash(plain)


def check_hash(phc: str) -> None:
    """Raise ``ValueError`` unless ``phc`` is an argon2 PHC string, so a bad config fails at start-up."""
    try:
        extract_parameters(phc)
    except (InvalidHashError, ValueError) as exc:
        raise ValueError("not an argon2 PHC string ($argon2id$v=19$m=…)") from exc


def _matches(phc: str, plain: str) -> bool:
    try:
        return _HASHER.verify(phc, plain)
    except (VerificationError, InvalidHashError):
        return False


class PasswordVerifier:
    """Checks a username/password against the configured hashes without blocking the event loop."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    async def verify(self, username: str, password: str | None) -> bool:
        phc = self._users.get(username)
        if password is None:
            return False
        async with self._slots:
            ok = await asyncio.to_thread(_matches, phc or _DUMMY_HASH, password)
        return ok and phc is not None
