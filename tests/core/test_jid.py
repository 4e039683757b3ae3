"""XEP-0106 escaping of device ids into JID localparts (hub.core.jid)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hub.core.jid import (
    MAX_LOCALPART_BYTES,
    JidError,
    bare,
    escape_localpart,
    split_bare,
    unescape_localpart,
)

FORBIDDEN = set("\"&'/:<>@ ")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        # The examples of XEP-0106 §5.1.
        ("space cadet", "space\\20cadet"),
        ('call me "ishmael"', "call\\20me\\20\\22ishmael\\22"),
        ("at&t guy", "at\\26t\\20guy"),
        ("d'artagnan", "d\\27artagnan"),
        ("/.fanboy", "\\2f.fanboy"),
        ("::foo::", "\\3a\\3afoo\\3a\\3a"),
        ("<foo>", "\\3cfoo\\3e"),
        ("user@host", "user\\40host"),
        ("c:\\net", "c\\3a\\net"),
        ("c:\\\\net", "c\\3a\\\\net"),
        ("c:\\cool stuff", "c\\3a\\cool\\20stuff"),
        ("c:\\5commas", "c\\3a\\5c5commas"),
        # Device ids from real conventions.
        ("0x00158d0001a2b3c4", "0x00158d0001a2b3c4"),
        ("living room/lamp", "living\\20room\\2flamp"),
        ("aa:bb:cc:dd:ee:ff", "aa\\3abb\\3acc\\3add\\3aee\\3aff"),
        ("küche", "küche"),
    ],
)
def test_escape_examples(raw: str, escaped: str) -> None:
    assert escape_localpart(raw) == escaped
    assert unescape_localpart(escaped) == raw


def test_backslash_is_escaped_only_before_an_escape_sequence() -> None:
    assert escape_localpart("a\\b") == "a\\b"
    assert escape_localpart("a\\20b") == "a\\5c20b"
    assert escape_localpart("a\\2F") == "a\\5c2F"  # escape sequences are case-insensitive
    assert escape_localpart("a\\") == "a\\"
    assert unescape_localpart("a\\5c20b") == "a\\20b"


def test_unescape_is_case_insensitive() -> None:
    assert unescape_localpart("living\\20Room\\2Flamp") == "living Room/lamp"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "cannot be empty"),
        (" lead", "starts or ends with a space"),
        ("trail ", "starts or ends with a space"),
        ("tab\there", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
        ("x" * (MAX_LOCALPART_BYTES + 1), "longer than a JID localpart allows"),
        ("@" * 342, "longer than a JID localpart allows"),  # 342 × '\40' = 1026 bytes once escaped
    ],
)
def test_escape_refuses(raw: str, reason: str) -> None:
    with pytest.raises(JidError, match=reason):
        escape_localpart(raw)


def test_longest_localpart_is_accepted() -> None:
    assert escape_localpart("x" * MAX_LOCALPART_BYTES) == "x" * MAX_LOCALPART_BYTES


def test_bare_and_split() -> None:
    assert bare("Alice@Example.ORG/Phone") == "alice@example.org"
    assert bare("hub.example") == "hub.example"
    assert split_bare("k1@hub.example/res") == ("k1", "hub.example")
    assert split_bare("hub.example") == (None, "hub.example")


# ---------------------------------------------------------------- properties

# Text escape accepts: no control characters (nor lone surrogates), no leading/trailing space.
_device_ids = st.text(
    alphabet=st.characters(exclude_categories=["Cc", "Cs"]),
    min_size=1,
    max_size=60,
).filter(lambda s: s[0] != " " and s[-1] != " ")

# Ids rich in the characters that matter: escapable ones, backslashes and hex digits.
_tricky_ids = st.text(alphabet="\\ \"&'/:<>@2035acfACF_x", min_size=1, max_size=30).filter(
    lambda s: s[0] != " " and s[-1] != " "
)


@given(st.one_of(_device_ids, _tricky_ids))
def test_unescape_inverts_escape(raw: str) -> None:
    assert unescape_localpart(escape_localpart(raw)) == raw


@given(st.one_of(_device_ids, _tricky_ids))
def test_escaped_localpart_has_no_forbidden_characters(raw: str) -> None:
    escaped = escape_localpart(raw)
    assert not FORBIDDEN & set(escaped)
    assert len(escaped.encode("utf-8")) <= MAX_LOCALPART_BYTES


@given(st.one_of(_device_ids, _tricky_ids), st.one_of(_device_ids, _tricky_ids))
def test_escape_is_injective(a: str, b: str) -> None:
    assume(a != b)
    assert escape_localpart(a) != escape_localpart(b)
