"""System lines: group events, notices, timers (spec 5), typed by their wording.

Android writes system lines without an author, so any authorless line is a system event
(``OTHER`` when the wording is unknown). iOS attributes them to the chat or to the actor
(spec 4), so an authored iOS line is classified by its body: wordings no one types by
accident (``changed this group's icon``) always count; short generic ones (``X left``,
``X added Y``) count only when the actor named in the text is the author, the author is the
chat itself, or the line carried the iOS system-line LRM. Otherwise ``Bob: I left`` would
become an event.

English wordings, plus German where WhatsR's tables give them; other languages fall back to
``OTHER`` on Android and to text on iOS.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import NamedTuple

from ._records import SystemEventKind as K
from ._text import without_marks


class Event(NamedTuple):
    kind: K
    actor: str | None
    target: str | None
    value: str | None
    old_value: str | None


class _Rule(NamedTuple):
    kind: K
    pattern: re.Pattern[str]
    distinctive: bool  # safe to accept on an authored line whoever the author is


_Q = '["“”«»„]'  # quotes around group names differ by platform and language
_DURATION = re.compile(
    r"\b(\d+ (?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|Tage?n?|Stunden?))\b"
)


def _rule(kind: K, pattern: str, *, distinctive: bool) -> _Rule:
    return _Rule(kind, re.compile(pattern), distinctive)


# Order matters: specific wordings come before the generic ``added``/``removed``/``left``.
_RULES = (
    _rule(
        K.ENCRYPTION_NOTICE,
        r"(?:Messages|Your messages|Calls|Nachrichten)\b[^.]{0,80}?(?:end-to-end|Ende-zu-Ende)",
        distinctive=True,
    ),
    _rule(
        K.SECURITY_CODE_CHANGED,
        r"(?:Your security code with (?P<target>.+?) changed"
        r"|Deine Sicherheitsnummer für (?P<target2>.+?) hat sich geändert)\b",
        distinctive=True,
    ),
    _rule(
        K.DISAPPEARING_TIMER,
        r"(?P<actor>.+?) (?:turned (?P<onoff>on|off) disappearing messages"
        r"|(?:updated|changed) the (?:disappearing )?message timer)",
        distinctive=True,
    ),
    _rule(
        K.SERVICE_NOTICE,
        r"(?:Meta AI is an optional service|This business (?:uses|is working)"
        r"|This chat is with (?:a|an official) business)",
        distinctive=True,
    ),
    _rule(
        K.ADMIN_CHANGED,
        r"(?P<target>You)[\u2019']re (?:now|no longer) an admin\.?$",
        distinctive=True,
    ),
    _rule(
        K.GROUP_CREATED,
        r"(?P<actor>.+?) created (?:the )?group " + _Q + r"(?P<value>.*)" + _Q + r"\.?$",
        distinctive=True,
    ),
    _rule(
        K.GROUP_CREATED,
        r"(?P<actor>.+?) (?:hat|hast) die Gruppe " + _Q + r"(?P<value>.*)" + _Q + r" erstellt\.?$",
        distinctive=True,
    ),
    _rule(K.GROUP_CREATED, r"(?P<actor>.+?) created this group\.?$", distinctive=False),
    _rule(
        K.SUBJECT_CHANGED,
        r"(?P<actor>.+?) changed the (?:subject|group name)"
        r"(?: from " + _Q + r"(?P<old>.*?)" + _Q + r")? to " + _Q + r"(?P<value>.*)" + _Q + r"\.?$",
        distinctive=True,
    ),
    _rule(
        K.SUBJECT_CHANGED,
        r"(?P<actor>.+?) (?:hat|hast) den Betreff (?:von " + _Q + r"(?P<old>.*?)" + _Q + r" )?"
        r"zu " + _Q + r"(?P<value>.*)" + _Q + r" geändert\.?$",
        distinctive=True,
    ),
    _rule(
        K.DESCRIPTION_CHANGED,
        r"(?P<actor>.+?) (?:changed|deleted) the group description\b",
        distinctive=True,
    ),
    _rule(
        K.ICON_CHANGED,
        r"(?P<actor>.+?) (?:changed (?:this|the) group[\u2019']s icon"
        r"|(?:hat|hast) das Gruppenbild geändert)\.?$",
        distinctive=True,
    ),
    _rule(
        K.ICON_DELETED,
        r"(?P<actor>.+?) (?:deleted|removed) (?:this|the) group[\u2019']s icon\.?$",
        distinctive=True,
    ),
    _rule(
        K.SETTINGS_CHANGED,
        r"(?P<actor>.+?) changed "
        r"(?:this group[\u2019']s settings|the group settings|the settings)\b",
        distinctive=True,
    ),
    _rule(
        K.NUMBER_CHANGED,
        r"(?P<actor>.+?) changed their phone number to a new number\b",
        distinctive=True,
    ),
    _rule(
        K.NUMBER_CHANGED,
        r"(?P<actor>.+?) changed to (?P<value>\+[\d ()\-]+)\.?$",
        distinctive=False,
    ),
    _rule(
        K.JOINED,
        r"(?P<actor>.+?) joined using this group[\u2019']s invite link\.?$",
        distinctive=True,
    ),
    _rule(
        K.JOINED,
        r"(?P<actor>.+?) (?:joined(?: from the community| using a group link)?"
        r"|(?:ist|bist) der Gruppe (?:über den Einladungslink )?beigetreten)\.?$",
        distinctive=False,
    ),
    _rule(K.ADDED, r"(?P<target>You) were added\.?$", distinctive=True),
    _rule(K.REMOVED, r"(?P<target>You) were removed\.?$", distinctive=True),
    _rule(
        K.ADDED,
        r"(?P<actor>.+?) (?:added (?P<target>.+?)|(?:hat|hast) (?P<target2>.+?) hinzugefügt)\.?$",
        distinctive=False,
    ),
    _rule(
        K.REMOVED,
        r"(?P<actor>.+?) (?:removed (?P<target>.+?)|(?:hat|hast) (?P<target2>.+?) entfernt)\.?$",
        distinctive=False,
    ),
    _rule(
        K.LEFT,
        r"(?P<actor>.+?) (?:left(?: the group)?|(?:hat|hast) die Gruppe verlassen)\.?$",
        distinctive=False,
    ),
)

# Words every system wording above contains. An authored iOS message without any of them
# skips the rules entirely: the hot path for iOS files, where every line has an author.
# (A loop of ``in`` tests beats one alternation regex here by about two to one.)
_KEYWORDS = (
    "end-to-end",
    "Ende-zu-Ende",
    "security code",
    "Sicherheitsnummer",
    "disappearing",
    "message timer",
    "Meta AI",
    "business",
    "created",
    "added",
    "removed",
    "left",
    "joined",
    "changed",
    "deleted",
    "You were",
    "admin",
    "hinzugefügt",
    "entfernt",
    "verlassen",
    "beigetreten",
    "geändert",
    "erstellt",
)


def might_be_system(text: str) -> bool:
    """Whether ``text`` contains a word some system wording needs (a cheap pre-filter)."""
    for word in _KEYWORDS:  # noqa: SIM110 - any() over a generator is slower here
        if word in text:
            return True
    return False


def classify_system(
    text: str, *, author: str | None, chat_names: Container[str], marked: bool
) -> Event | None:
    """Type a system line, or ``None`` when an authored line is better read as a message.

    ``author`` is the header's name (``None`` for an authorless line); ``marked`` says the
    raw line began with the LRM iOS puts on system lines.
    """
    plain = text if text.isascii() else without_marks(text)
    plain = plain.strip()
    if might_be_system(plain):
        for rule in _RULES:
            m = rule.pattern.match(plain)
            if m is None:
                continue
            groups = m.groupdict()
            actor = groups.get("actor")
            if (
                author is not None
                and not rule.distinctive
                and not marked
                and author not in chat_names
                and (actor is None or actor.strip() != author)
            ):
                return None
            value = groups.get("value")
            if rule.kind is K.DISAPPEARING_TIMER:
                value = _timer_value(plain, groups.get("onoff"))
            return Event(
                kind=rule.kind,
                actor=actor,
                target=groups.get("target") or groups.get("target2"),
                value=value,
                old_value=groups.get("old"),
            )
    if author is None:
        return Event(K.OTHER, None, None, None, None)
    return None


def _timer_value(text: str, onoff: str | None) -> str | None:
    if onoff == "off":
        return "off"
    m = _DURATION.search(text)
    return m[1] if m is not None else onoff
