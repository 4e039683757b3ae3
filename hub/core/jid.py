"""Device ids as XMPP localparts: XEP-0106 JID escaping, reversible.

MQTT ids may hold characters a localpart forbids (space, ``@``, ``/``, ``:``,
quotes...). XEP-0106 maps each to ``\\xx``; a backslash is escaped only where
it would otherwise be read as an escape, so every string round-trips.
"""

from __future__ import annotations

# XEP-0106 §4.2: the characters and their escapes.
_ESCAPES = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
MAX_LOCALPART_BYTES = 1023


class JidError(ValueError):
    """A string that cannot be a device JID."""


def escape_localpart(raw: str) -> str:
    """Escape ``raw`` for use as a localpart (XEP-0106 §4.2/§4.3)."""
    if not raw:
        raise JidError("a device id cannot be empty")
    if raw[0] == " " or raw[-1] == " ":
        raise JidError(f"device id {raw!r} starts or ends with a space (XEP-0106 forbids it)")
    out: list[str] = []
    for index, ch in enumerate(raw):
        if ch == "\\":
            # Only a backslash that starts something that looks like an escape
            # must itself be escaped, or unescaping would eat it.
            if raw[index : index + 3].lower() in _UNESCAPES:
                out.append("\\5c")
            else:
                out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise JidError(f"device id {raw!r} contains a control character")
        else:
            out.append(ch)
    escaped = "".join(out)
    if len(escaped.encode("utf-8")) > MAX_LOCALPART_BYTES:
        raise JidError(f"device id {raw[:40]!r}… is longer than a JID localpart allows")
    return escaped


def unescape_localpart(escaped: str) -> str:
    """Undo :func:`escape_localpart`."""
    out: list[str] = []
    index = 0
    while index < len(escaped):
        seq = escaped[index : index + 3].lower()
        if escaped[index] == "\\" and seq in _UNESCAPES:
            out.append(_UNESCAPES[seq])
            index += 3
        else:
            out.append(escaped[index])
            index += 1
    return "".join(out)


def bare(jid: str) -> str:
    """The bare JID (no resource), lower-cased the way servers compare them."""
    without_resource = jid.split("/", 1)[0]
    return without_resource.lower()


def split_bare(jid: str) -> tuple[str | None, str]:
    """``(localpart, domain)`` of a bare JID; localpart is ``None`` for a domain JID."""
    node, sep, domain = bare(jid).rpartition("@")
    return (node if sep else None), domain
