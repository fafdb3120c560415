"""Whatever the input, the importer raises only its own errors and accounts for every line."""

from __future__ import annotations

from contextlib import suppress
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baat.importers.whatsapp import (
    ChatImport,
    UnparsedReason,
    WhatsAppImportError,
    parse_export,
)

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fragments that build header-ish lines in many shapes, valid or not, plus noise.
fragments = st.sampled_from(
    [
        "12/01/2021, 18:44 - ",
        "[1/29/18, 11:47:03 PM] ",
        "3/24/14, 1:59:59 PM: ",
        "29.01.18, 23:47 - ",
        "13/13/21, 25:61 - ",
        "\u06f2\u06f0\u06f2\u06f1/\u06f5/\u06f3\u06f0\u060c \u06f1\u06f8:\u06f4\u06f9 - ",
        "2016-04-29 10:30:00",
        "\u200e",
        "\ufeff",
        "Bob: ",
        "Bob:",
        "<Media omitted>",
        "POLL:",
        "OPTION: x (2 votes)",
        " (file attached)",
        "left",
        "You added Mallory",
        '"',
        ": ",
        "\n",
        "\r\n",
        "\r",
        "\u202f",
    ]
)
# Mostly fragments, so that a good share of inputs parse rather than fail detection.
texts = st.lists(st.one_of(fragments, fragments, fragments, st.text(max_size=6)), max_size=40).map(
    "".join
)


def check_accounting(chat: ChatImport) -> None:
    entries = chat.entries
    assert entries, "a parse that succeeds has at least one record"
    for before, after in pairwise(entries):
        assert after.line_no == before.end_line_no + 1
    assert entries[-1].end_line_no == chat.summary.lines
    reported = {u.line_no for u in chat.summary.unparsed}
    preamble = {
        u.line_no for u in chat.summary.unparsed if u.reason is UnparsedReason.BEFORE_FIRST_MESSAGE
    }
    assert all(n < entries[0].line_no for n in preamble)
    assert all(1 <= n <= chat.summary.lines for n in reported)


@PROFILE
@given(text=texts, order=st.sampled_from([None, "dmy", "mdy", "ymd"]))
def test_any_text(text: str, order: str | None) -> None:
    try:
        chat = parse_export(text.encode("utf-8", "surrogatepass"), date_order=order, tz="UTC")  # type: ignore[arg-type]
    except WhatsAppImportError:
        return
    check_accounting(chat)


@PROFILE
@given(data=st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    with suppress(WhatsAppImportError):
        parse_export(data, tz="UTC", date_order="dmy")
