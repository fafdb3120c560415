"""The XMPP client adapter of ``bench/route_load.py`` (targets ``ejabberd`` and ``prosody``).

The same workload as Baat's (``BaatPair``): pairs, a window of sends outstanding per
sender, 256-byte bodies, both ends in one process and one clock. One exchange is four
stanzas, as Baat's Send -> Deliver -> Ack -> SendResult:

1. the sender sends ``<message>`` with a 256-character body and a XEP-0184 receipt request;
2. the server routes it to the receiver's bound resource (counted here: latency and
   delivery, as a ``Deliver`` is for Baat);
3. the receiver answers with a XEP-0184 ``<received/>``;
4. the server routes the receipt to the sender, whose window slot frees on it.

So a slot frees on the *receiver's* receipt (XEP-0184), the counterpart of Baat's
``SendResult`` "delivered"; XEP-0198's ``<a/>`` acknowledges only that the server took the
stanza, and Prosody 0.12 has no XEP-0198 without a community module. Accounts are
registered in-band (XEP-0077) before the measurement; login is SASL PLAIN over a plain
TCP stream (the bench's configurations have no TLS), then resource binding and an
initial presence, so that messages to the bare JID go to the live session.

One ``asyncio.Protocol`` per connection; stanzas are parsed incrementally by expat
(``xml.etree.ElementTree.XMLPullParser``), one top-level element at a time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import Callable
from time import perf_counter as _clock  # the clock of route_load.py
from typing import Any, cast
from xml.etree.ElementTree import Element, XMLPullParser
from xml.sax.saxutils import escape

STREAM_NS = "http://etherx.jabber.org/streams"
CLIENT_NS = "jabber:client"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
REGISTER_NS = "jabber:iq:register"
RECEIPTS_NS = "urn:xmpp:receipts"
BODY = base64.b64encode(os.urandom(192)).decode()  # 256 characters, 256 bytes
assert len(BODY) == 256


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


MESSAGE = _q(CLIENT_NS, "message")
IQ = _q(CLIENT_NS, "iq")
FEATURES = _q(STREAM_NS, "features")
STREAM_ERROR = _q(STREAM_NS, "error")
RECEIVED = _q(RECEIPTS_NS, "received")
REQUEST = _q(RECEIPTS_NS, "request")


class XmppError(ConnectionError):
    pass


class StanzaParser:
    """Bytes in, top-level stanzas out. The stream's root element stays open; each child
    is handed over once complete and then dropped, so memory stays flat."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new stream (after SASL success the stream restarts: RFC 6120 section 6.4.6)."""
        self._parser = XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: Element | None = None
        self.stream_attrs: dict[str, str] = {}

    def feed(self, data: bytes) -> list[Element]:
        self._parser.feed(data)
        out: list[Element] = []
        for event, elem in self._parser.read_events():
            elem = cast(Element, elem)
            if event == "start":
                if self._depth == 0:
                    self._root = elem
                    self.stream_attrs = dict(elem.attrib)
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 1:
                    out.append(elem)
                    if self._root is not None:
                        self._root.remove(elem)
                elif self._depth == 0:
                    raise XmppError("the server closed the stream")
        return out


def stream_header(domain: str) -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='{CLIENT_NS}' "
        f"xmlns:stream='{STREAM_NS}' version='1.0'>"
    ).encode()


def message(to: str, mid: str, body: str = BODY) -> bytes:
    return (
        f"<message to='{to}' id='{mid}' type='chat'><body>{escape(body)}</body>"
        f"<request xmlns='{RECEIPTS_NS}'/></message>"
    ).encode()


def receipt(to: str, mid: str) -> bytes:
    return (
        f"<message to='{to}' id='r{mid}'><received xmlns='{RECEIPTS_NS}' id='{mid}'/></message>"
    ).encode()


def parse_message(elem: Element) -> tuple[str, str, str] | None:
    """A routed ``<message>``: ("message", id, from) for a body that asks for a receipt,
    ("receipt", acknowledged id, from) for a XEP-0184 receipt, None for anything else."""
    if elem.tag != MESSAGE:
        return None
    got = elem.find(RECEIVED)
    if got is not None:
        return ("receipt", got.get("id", ""), elem.get("from", ""))
    if elem.find(REQUEST) is not None and elem.find(_q(CLIENT_NS, "body")) is not None:
        return ("message", elem.get("id", ""), elem.get("from", ""))
    return None


class XmppClient(asyncio.Protocol):
    """One client-to-server stream. Before ``ready``, stanzas go to the inbox; after,
    to ``on_stanza``."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.parser = StanzaParser()
        self.transport: asyncio.Transport | None = None
        self.inbox: asyncio.Queue[Element | None] = asyncio.Queue()
        self.on_stanza: Callable[[Element], None] = self.inbox.put_nowait
        self.closed = False
        self.jid = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(stream_header(self.domain))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.inbox.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        try:
            stanzas = self.parser.feed(data)
        except Exception:  # a parse error or a closed stream: end this connection
            self.inbox.put_nowait(None)
            if self.transport is not None:
                self.transport.close()
            self.closed = True
            return
        for s in stanzas:
            self.on_stanza(s)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def restart(self) -> None:
        self.parser.reset()
        self.send(stream_header(self.domain))

    async def next(self, timeout: float) -> Element:
        elem = await asyncio.wait_for(self.inbox.get(), timeout)
        if elem is None:
            raise XmppError("connection closed")
        if elem.tag == STREAM_ERROR:
            raise XmppError("stream error: " + ",".join(c.tag for c in elem))
        return elem

    async def expect(self, tag: str, timeout: float) -> Element:
        while True:
            elem = await self.next(timeout)
            if elem.tag == tag:
                return elem

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.send(b"</stream:stream>")
            self.transport.close()


_ids = itertools.count(1)


async def _iq(client: XmppClient, body: str, timeout: float) -> Element:
    iq_id = f"q{next(_ids)}"
    client.send(f"<iq type='set' id='{iq_id}'>{body}</iq>".encode())
    while True:
        elem = await client.next(timeout)
        if elem.tag == IQ and elem.get("id") == iq_id:
            if elem.get("type") != "result":
                raise XmppError(f"iq refused: {[c.tag for c in elem]}")
            return elem


async def open_stream(host: str, port: int, domain: str, timeout: float) -> XmppClient:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: XmppClient(domain), host, port), timeout
    )
    await client.expect(FEATURES, timeout)
    return client


async def register(
    host: str, port: int, domain: str, user: str, password: str, timeout: float
) -> None:
    """In-band registration (XEP-0077) on a fresh stream."""
    client = await open_stream(host, port, domain, timeout)
    try:
        await _iq(
            client,
            f"<query xmlns='{REGISTER_NS}'><username>{user}</username>"
            f"<password>{password}</password></query>",
            timeout,
        )
    finally:
        client.close()


async def login(
    host: str, port: int, domain: str, user: str, password: str, timeout: float
) -> XmppClient:
    """SASL PLAIN, bind a resource, send initial presence: the session then receives."""
    client = await open_stream(host, port, domain, timeout)
    try:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        client.send(f"<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{token}</auth>".encode())
        elem = await client.next(timeout)
        if elem.tag != _q(SASL_NS, "success"):
            raise XmppError(f"authentication failed: {elem.tag}")
        client.restart()
        await client.expect(FEATURES, timeout)
        bound = await _iq(
            client, f"<bind xmlns='{BIND_NS}'><resource>bench</resource></bind>", timeout
        )
        jid = bound.find(f"{_q(BIND_NS, 'bind')}/{_q(BIND_NS, 'jid')}")
        client.jid = jid.text or "" if jid is not None else f"{user}@{domain}/bench"
        client.send(b"<presence/>")
        return client
    except BaseException:
        client.close()
        raise


class XmppPair:
    """A sender and its receiver over XMPP: message -> routed -> receipt -> routed."""

    def __init__(self, st: Any, sender: XmppClient, receiver: XmppClient, to: str) -> None:
        self.st = st
        self.sender = sender
        self.receiver = receiver
        self.to = to  # the receiver's bare JID
        self.delivered = 0
        sender.on_stanza = self.on_sender
        receiver.on_stanza = self.on_receiver

    def send_one(self) -> None:
        st = self.st
        st.seq += 1
        mid = str(st.seq)
        st.sent_at[mid] = _clock()
        st.outstanding += 1
        self.sender.send(message(self.to, mid))

    def on_sender(self, elem: Element) -> None:
        got = parse_message(elem)
        if got is None or got[0] != "receipt":
            return
        st = self.st
        if st.measuring:
            st.statuses["receipt"] += 1
        st.settled()
        if st.running:
            self.send_one()

    def on_receiver(self, elem: Element) -> None:
        got = parse_message(elem)
        if got is None or got[0] != "message":
            return
        now = _clock()
        _, mid, sender = got
        self.receiver.send(receipt(sender, mid))
        st = self.st
        sent = st.sent_at.pop(mid, None)
        if st.measuring and sent is not None:
            st.delivered += 1
            self.delivered += 1
            st.latencies.append(now - sent)
