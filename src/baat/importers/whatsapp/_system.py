"""System lines: group events, notices, timers (spec 5), typed by their wording.

Android writes system lines without an author, so any authorless line is a system event
(``OTHER`` when the wording is unknown). iOS attributes them to the chat or to the actor
(spec 4), so an authored iOS line is classified by its body: wordings no one types by
accident (``changed this group's icon``) always count; short generic ones (``X left``,
``X added Y``) count only when the actor named in the text is the author, the author is the
chat itself, or the line carried the iOS system-line LRM. Otherwise ``Bob: I left`` would
become an event.

English and German wordings with optional parts are written out below; every language's
wordings in ``_wordings.TABLE`` (en, de, es, pt, fr, it, nl, ru, tr, hi, id, ar, fa) are
compiled into further rules after them. Unknown wordings fall back to ``OTHER`` on Android
(authorless lines) and to text on iOS.

On Android a line attributed to a name is a system line only when the wording is the
encryption notice or the name is the chat's own (``Pokemon Chat: Messages and calls are
end-to-end encrypted``): Android never attributes notices to people.
"""

from __future__ import annotations

import re
from collections.abc import Container
from itertools import repeat
from typing import NamedTuple

from ._records import SystemEventKind as K
from ._text import clean_name, without_marks
from ._wordings import encryption_fragments, system_keywords, system_templates, template_regex


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
_RULES: tuple[_Rule, ...] = (
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

_RULES += (
    _rule(
        K.ENCRYPTION_NOTICE,
        ".{0,160}?(?:" + "|".join(map(re.escape, encryption_fragments())) + ")",
        distinctive=True,
    ),
    *(_rule(kind, template_regex(t), distinctive=d) for kind, t, d in system_templates()),
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


# The table's languages add more than a hundred words, too many for a loop of ``in`` tests:
# those are looked up as whole words (split and set look-ups run in C).
_PUNCT = '.,:;!?()"“”«»„'
_TABLE_WORDS = frozenset(w.strip(_PUNCT) for k in system_keywords() for w in k.split()) - {""}


def might_be_system(text: str) -> bool:
    """Whether ``text`` contains a word some system wording needs (a cheap pre-filter)."""
    for word in _KEYWORDS:  # a loop of ``in`` tests: any() over a generator is slower
        if word in text:
            return True
    if text.isascii() and len(text) > 200:
        return False  # no wording of the table is this long without the words above
    return not _TABLE_WORDS.isdisjoint(map(str.strip, text.split(), repeat(_PUNCT)))


def classify_system(
    text: str,
    *,
    author: str | None,
    chat_names: Container[str],
    marked: bool,
    android: bool = False,
) -> Event | None:
    """Type a system line, or ``None`` when an authored line is better read as a message.

    ``author`` is the header's name (``None`` for an authorless line); ``marked`` says the
    raw line began with the LRM iOS puts on system lines, or its body did (current iPhones
    write ``Author: <LRM>Will added Ana``). ``android`` applies the stricter Android rule
    for authored lines (module documentation).
    """
    plain = text if text.isascii() else without_marks(text)
    plain = plain.strip()
    if might_be_system(plain):
        for rule in _RULES:
            m = rule.pattern.match(plain)
            if m is None:
                continue
            groups = m.groupdict()
            actor = _name(groups.get("actor"))
            if (
                android
                and author is not None
                and rule.kind is not K.ENCRYPTION_NOTICE
                and author not in chat_names
            ):
                return None
            if (
                author is not None
                and not rule.distinctive
                and not marked
                and author not in chat_names
                and (actor is None or actor != author)
            ):
                return None
            value = groups.get("value")
            if rule.kind is K.DISAPPEARING_TIMER:
                value = _timer_value(plain, groups.get("onoff"))
            return Event(
                kind=rule.kind,
                actor=actor,
                target=_name(groups.get("target") or groups.get("target2")),
                value=value,
                old_value=groups.get("old"),
            )
    if author is None:
        return Event(K.OTHER, None, None, None, None)
    return None


def _name(name: str | None) -> str | None:
    # The actor inside the text keeps iOS's U+202F after "~" while the header's author is
    # normalised (spec 4): normalise both the same way so that they can be compared.
    if name is None:
        return None
    return clean_name(name) if not name.isascii() or name != name.strip() else name


def _timer_value(text: str, onoff: str | None) -> str | None:
    if onoff == "off":
        return "off"
    m = _DURATION.search(text)
    return m[1] if m is not None else onoff
