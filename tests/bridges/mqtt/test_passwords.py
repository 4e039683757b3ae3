"""Password hashes for MQTT users."""

from __future__ import annotations

import pytest

from bridges.mqtt.passwords import PasswordVerifier, check_hash, hash_password


async def test_hash_then_verify() -> None:
    phc = hash_password("s3cret")
    assert phc.startswith("$argon2id$") and "s3cret" not in phc
    verifier = PasswordVerifier({"alice": phc})
    assert await verifier.verify("alice", "s3cret")
    assert not await verifier.verify("alice", "S3cret")
    assert not await verifier.verify("alice", None)
    assert not await verifier.verify("bob", "s3cret")


def test_hashes_are_salted() -> None:
    assert hash_password("same") != hash_password("same")


def test_check_hash() -> None:
    check_hash(hash_password("x"))
    with pytest.raises(ValueError, match="argon2"):
        check_hash("$2b$12$bcrypt-is-not-accepted")
