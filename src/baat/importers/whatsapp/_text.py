"""Bytes to lines: decoding, line endings and the invisible characters of spec section 3."""

from __future__ import annotations

import operator
import re
from itertools import compress, repeat

from ._errors import EmptyExport, NotAChatExport

# Spec 3.1: marks WhatsApp (mostly iOS) puts before the header or before a body marker. They
# are stripped only where they stand in the way of matching, never from what people wrote.
LEADING_MARKS = "\ufeff\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# Spec 3.2: spaces that stand for an ordinary space in headers and around "~" push names.
SPACE_LIKE = "\u00a0\u202f\u2009\u2007"
_SPACE_TABLE = str.maketrans(dict.fromkeys(SPACE_LIKE, " "))
_MARK_TABLE = str.maketrans(dict.fromkeys(LEADING_MARKS))

_BINARY_PROBE = 8192
_EOL = re.compile(r"(\r\n|\r|\n)")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode(data: bytes) -> str:
    """Decode a transcript; WhatsApp writes UTF-8, optionally with a BOM.

    Raises:
        NotAChatExport: the bytes contain NULs (binary, or UTF-16 without a BOM) or are not
            valid UTF-8.
        EmptyExport: the text is only whitespace, BOMs and direction marks.
    """
    if data[:2] in _UTF16_BOMS:
        # Not something WhatsApp writes, but what a text editor's "Save as Unicode" does to
        # a transcript; accepting it costs nothing.
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise NotAChatExport(f"not valid UTF-16 text at byte {exc.start}") from exc
    elif b"\x00" in data[:_BINARY_PROBE]:
        raise NotAChatExport("binary data (NUL bytes); a chat export is UTF-8 text")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and exc.end == len(data):
                # A transcript cut off inside a multi-byte character (a copy that stopped
                # early): keep everything before the cut rather than reject the whole file.
                text = data[: exc.start].decode("utf-8")
            else:
                raise NotAChatExport(
                    f"not UTF-8 text (invalid byte at offset {exc.start}); "
                    "a chat export is UTF-8 text"
                ) from exc
    if not text.strip().strip(LEADING_MARKS).strip():
        raise EmptyExport("the transcript is empty")
    return text


def split_lines(text: str) -> tuple[list[str], frozenset[int]]:
    """Split on ``\\r\\n``, ``\\r`` and ``\\n`` (never on U+2028 and friends, unlike
    ``str.splitlines``: those can be part of a message).

    Returns the lines and, when the file mixes ``\\r\\n`` with bare ``\\n``, the indexes of
    the lines that follow a bare ``\\n``. Spec section 1 reports ``\\r\\n`` between messages
    and ``\\n`` inside them, so the parser may use this as a hint.
    """
    if "\r" not in text:
        lines = text.split("\n")
        soft: frozenset[int] = frozenset()
    elif "\r\n" in text and text.count("\n") != text.count("\r\n"):
        if text.count("\r") == text.count("\r\n"):
            # Only "\r\n" and "\n": split on "\n" and look at each line's end, in C.
            lines = text.split("\n")
            hard = list(map(str.endswith, lines, repeat("\r")))
            lines = list(map(str.removesuffix, lines, repeat("\r")))
            soft = frozenset(compress(range(1, len(lines)), map(operator.not_, hard)))
        else:
            parts = _EOL.split(text)
            lines = parts[0::2]
            soft = frozenset(i + 1 for i, sep in enumerate(parts[1::2]) if sep == "\n")
    else:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        soft = frozenset()
    if lines and lines[-1] == "":
        lines.pop()
    return lines, soft


def header_spaces(text: str) -> str:
    """Map the space-like characters of spec 3.2 to a plain space."""
    return text.translate(_SPACE_TABLE)


def without_marks(text: str) -> str:
    """Remove every direction mark and BOM (for matching markers, never for display)."""
    return text.translate(_MARK_TABLE)


def clean_name(name: str) -> str:
    """Normalise an author as the header shows it: marks removed, odd spaces made plain.

    Spec section 4: a ``~`` push name is followed by a space-like character that may be a
    no-break space, and phone numbers are often wrapped in isolates (U+2068/U+2069).
    """
    if name.isascii():
        return name.strip()
    return name.translate(_MARK_TABLE).translate(_SPACE_TABLE).strip()
