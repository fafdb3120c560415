"""The parsing of bench/peers.py's XMPP client adapter (``bench/_xmpp.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_xmpp", BENCH / "_xmpp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_xmpp"] = module
    spec.loader.exec_module(module)
    return module


xmpp = _load()

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"
)
FEATURES = (
    b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
)


def _routed(stanza: bytes, sender: str) -> bytes:
    # What the server forwards: the client's stanza with a from attribute.
    return stanza.replace(b"<message ", f"<message from='{sender}' ".encode(), 1)


def _stream() -> bytes:
    msg = _routed(xmpp.message("bob@localhost", "42", "hi & <bye>"), "alice@localhost/bench")
    rcpt = _routed(xmpp.receipt("alice@localhost/bench", "42"), "bob@localhost/bench")
    other = b"<message from='x@localhost'><body>no receipt asked</body></message>"
    return HEADER + FEATURES + msg + b"<presence/>" + rcpt + other


def _parse(chunks: list[bytes]) -> list[object]:
    parser = xmpp.StanzaParser()
    out = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    assert parser.stream_attrs["id"] == "s1"
    return out


@pytest.mark.parametrize("how", ["whole", "byte at a time", "split mid-tag"])
def test_stanzas_come_out_whole_however_the_bytes_arrive(how: str) -> None:
    data = _stream()
    if how == "whole":
        chunks = [data]
    elif how == "byte at a time":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        cut = data.index(b"<received") + 5
        chunks = [data[:cut], data[cut:]]
    stanzas = _parse(chunks)
    assert [s.tag.split("}")[1] for s in stanzas] == [
        "features",
        "message",
        "presence",
        "message",
        "message",
    ]
    assert xmpp.parse_message(stanzas[1]) == ("message", "42", "alice@localhost/bench")
    assert stanzas[1].find(f"{{{xmpp.CLIENT_NS}}}body").text == "hi & <bye>"
    assert xmpp.parse_message(stanzas[3]) == ("receipt", "42", "bob@localhost/bench")
    assert xmpp.parse_message(stanzas[2]) is None  # presence
    assert xmpp.parse_message(stanzas[4]) is None  # a body without a receipt request


def test_trailing_partial_stanza_waits_for_its_end() -> None:
    parser = xmpp.StanzaParser()
    assert [s.tag for s in parser.feed(HEADER + FEATURES + b"<message from='a'><bo")] == [
        f"{{{xmpp.STREAM_NS}}}features"
    ]
    rest = parser.feed(b"dy>x</body><request xmlns='urn:xmpp:receipts'/></message>")
    assert xmpp.parse_message(rest[0]) == ("message", "", "a")


def test_the_stream_root_keeps_no_stanza_and_a_restart_starts_over() -> None:
    parser = xmpp.StanzaParser()
    parser.feed(HEADER + FEATURES * 50)
    assert parser._root is not None and len(parser._root) == 0
    parser.reset()  # after SASL success: a new stream header follows
    assert len(parser.feed(HEADER + FEATURES)) == 1


def test_a_closed_stream_is_an_error() -> None:
    parser = xmpp.StanzaParser()
    parser.feed(HEADER + FEATURES)
    with pytest.raises(xmpp.XmppError):
        parser.feed(b"</stream:stream>")


def test_the_body_is_256_bytes() -> None:
    assert len(xmpp.BODY.encode()) == 256
