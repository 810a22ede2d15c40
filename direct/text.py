"""The one definition of text that may go into a mail header, an SMTP reply, a log line or a warning.

Why one module: header injection is refused for addresses (:mod:`direct.address`), user header text
(:mod:`direct.message`) and notification fields (:mod:`direct.mdn`), and text learned from peers (DNS
records, LDAP DNs, URLs) is shown in warnings. They all need the same answer to "is this character a line
break or a control?" — including the characters ``str.splitlines()`` and the ``email`` package treat as line
breaks (VT, FF, FS/GS/RS, NEL, U+2028/U+2029), not only CR and LF (RFC 5322 §2.2: header fields are
printable characters; RFC 5321 §4.1.1 for commands and replies).
"""

from __future__ import annotations

import re

#: C0 controls (TAB included), DEL, C1 controls, and the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_RUNS = re.compile(CONTROL.pattern + "+")


def has_control(text: str) -> bool:
    """True when ``text`` holds any character that may break a header line or a log line."""
    return CONTROL.search(text) is not None


def one_line(text: str) -> str:
    """``text`` with every run of control characters replaced by one space, trimmed (for values we must
    carry but did not choose, e.g. a failure reason or an address taken from a received message)."""
    return _CONTROL_RUNS.sub(" ", text).strip()


def shown(text: str, limit: int = 200) -> str:
    """Peer-supplied text (a URL from a DNS record, an LDAP DN) made safe to print: controls escaped the way
    ``repr`` does, cut to ``limit`` characters."""
    escaped = CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."
