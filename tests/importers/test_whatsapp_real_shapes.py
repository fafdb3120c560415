# ruff: noqa: RUF001  (Cyrillic letters are the point of these fixtures)
"""Shapes of real exports that were misread, each with a fixture written for this test, and
the per-language wording table (docs/IMPORT.md, "Wordings per language")."""

from __future__ import annotations

import pytest

from baat.importers.whatsapp import (
    AttachmentStatus,
    ImplausibleYear,
    MediaType,
    MessageKind,
    ParsedMessage,
    SystemEvent,
    SystemEventKind,
    parse_export,
)
from baat.importers.whatsapp._body import classify
from baat.importers.whatsapp._system import classify_system
from baat.importers.whatsapp._wordings import SYSTEM_FIELDS, TABLE

LRM, NNBSP, BOM = "\u200e", "\u202f", "\ufeff"
K = SystemEventKind


def parse(text: str, **kw: object) -> list[ParsedMessage | SystemEvent]:
    return list(parse_export(text.encode(), tz="UTC", **kw).entries)  # type: ignore[arg-type]


def test_iphone_lrm_after_the_author_makes_a_system_line() -> None:
    entries = parse(
        f"[13.03.24, 10:00:00] ~{NNBSP}julia: {LRM}Will added ~{NNBSP}julia\n"
        f"[13.03.24, 10:00:05] Ali: {LRM}Leon hat Ali hinzugefügt.\n"
        f"[13.03.24, 10:01:00] ~{NNBSP}julia: I added salt\n"
    )
    added, german, text = entries
    assert isinstance(added, SystemEvent) and added.kind is K.ADDED
    assert (added.author, added.actor, added.target) == ("~ julia", "Will", "~ julia")
    assert isinstance(german, SystemEvent) and german.kind is K.ADDED
    assert (german.actor, german.target) == ("Leon", "Ali")
    # Without the mark, a person's sentence stays a message.
    assert isinstance(text, ParsedMessage) and text.author == "~ julia"


def test_push_name_with_nnbsp_inside_the_text_matches_the_author() -> None:
    (created, msg) = parse(
        f"[28/02/2022, 9:52:58 PM] ~{NNBSP}AK: ~{NNBSP}AK created this group\n"
        f"[28/02/2022, 9:53:10 PM] ~{NNBSP}AK: hello\n"
    )
    assert isinstance(created, SystemEvent) and created.kind is K.GROUP_CREATED
    assert created.actor == "~ AK" == created.author
    assert isinstance(msg, ParsedMessage) and msg.author == "~ AK"


def test_zero_hour_am_keeps_every_author() -> None:
    entries = parse(
        "1/29/18, 11:58 PM - Ana: late\n"
        "1/30/18, 00:04 AM - Bo: very late\n"
        "second line\n"
        "1/30/18, 00:23 AM - Cy: go to sleep\n"
    )
    assert [(e.author, e.text) for e in entries] == [
        ("Ana", "late"),
        ("Bo", "very late\nsecond line"),
        ("Cy", "go to sleep"),
    ]


def test_bom_after_the_bracket() -> None:
    entries = parse(
        f"[{BOM}29.01.18, 12:24:03] Alice: first\n"
        "[29.01.18, 12:25:00] Bob: Messages, and the calls we left\n"
        "[29.01.18, 12:26:00] Carol: third\n"
    )
    assert [(type(e).__name__, e.author, e.text) for e in entries] == [
        ("ParsedMessage", "Alice", "first"),
        ("ParsedMessage", "Bob", "Messages, and the calls we left"),
        ("ParsedMessage", "Carol", "third"),
    ]


# Non-English iPhone group exports: the group's name on the notices, then placeholders,
# deleted notices and polls in the phone's language.
FOREIGN = {
    "nl": (
        "Berichten en oproepen worden end-to-end versleuteld. Alleen mensen in deze chat "
        "kunnen ze lezen, beluisteren of delen.",
        "Jan heeft Piet toegevoegd",
        "afbeelding weggelaten",
        "Dit bericht is verwijderd.",
        "PEILING:\nZaterdag of zondag?\nOPTIE: Zaterdag (2 stemmen)\nOPTIE: Zondag (1 stem)",
    ),
    "es": (
        "Los mensajes y las llamadas están cifrados de extremo a extremo. Solo las personas "
        "en este chat pueden leerlos, escucharlos o compartirlos.",
        "Jan añadió a Piet",
        "imagen omitida",
        "Se eliminó este mensaje.",
        "ENCUESTA:\n¿Sábado o domingo?\nOPCIÓN: Sábado (2 votos)\nOPCIÓN: Domingo (1 voto)",
    ),
    "de": (
        "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Nur Personen in diesem Chat "
        "können sie lesen, anhören oder teilen.",
        "Jan hat Piet hinzugefügt.",
        "Bild weggelassen",
        "Diese Nachricht wurde gelöscht.",
        "UMFRAGE:\nSamstag oder Sonntag?\nOPTION: Samstag (2 Stimmen)\nOPTION: Sonntag (1 Stimme)",
    ),
    "ru": (
        "Сообщения и звонки защищены сквозным шифрованием. Только участники этого чата "
        "могут читать их, слушать или делиться ими.",
        "Jan добавил(-а) Piet",
        "изображение отсутствует",
        "Данное сообщение удалено.",
        "ОПРОС:\nСуббота или воскресенье?\n"
        "ВАРИАНТ: Суббота (2 голоса)\nВАРИАНТ: Воскресенье (1 голос)",
    ),
    "hi": (
        "संदेश और कॉल एंड-टू-एंड एन्क्रिप्टेड हैं। इस चैट के लोग ही उन्हें पढ़ या सुन सकते हैं।",
        "Jan ने Piet को जोड़ा",
        "छवि छोड़ी गई",
        "यह संदेश हटा दिया गया था",
        "पोल:\nशनिवार या रविवार?\nविकल्प: शनिवार (2 वोट)\nविकल्प: रविवार (1 वोट)",
    ),
}


@pytest.mark.parametrize("lang", sorted(FOREIGN))
def test_non_english_iphone_group(lang: str) -> None:
    notice, added, omitted, deleted, poll = FOREIGN[lang]
    text = (
        f"[13.02.24, 09:00:00] Fietsclub: {LRM}{notice}\n"
        f"[13.02.24, 09:00:02] Fietsclub: {LRM}{added}\n"
        f"[13.02.24, 09:05:00] Jan: {LRM}{omitted}\n"
        f"[13.02.24, 09:06:00] Piet: {LRM}{deleted}\n"
        f"[13.02.24, 09:07:00] Jan: {poll}\n"
        "[13.02.24, 09:08:00] Piet: ok\n"
    )
    chat = parse_export(text.encode(), tz="UTC", chat_name="Radclub")
    e = chat.entries
    assert [type(x).__name__ for x in e[:2]] == ["SystemEvent", "SystemEvent"]
    assert isinstance(e[0], SystemEvent) and e[0].kind is K.ENCRYPTION_NOTICE
    assert isinstance(e[1], SystemEvent) and e[1].kind is K.ADDED
    assert (e[1].actor, e[1].target) == ("Jan", "Piet")
    # The group's name wrote nothing: it is not an author.
    assert chat.summary.authors == ("Jan", "Piet")
    m = chat.messages
    assert m[0].kind is MessageKind.ATTACHMENT and m[0].attachment is not None
    assert m[0].attachment.status is AttachmentStatus.OMITTED
    assert m[0].attachment.media_type is MediaType.IMAGE
    assert m[1].kind is MessageKind.DELETED
    assert m[2].kind is MessageKind.POLL and m[2].poll is not None
    assert [(o.votes) for o in m[2].poll.options] == [2, 1]
    assert m[3].kind is MessageKind.TEXT


def test_android_lines_attributed_to_the_chat() -> None:
    text = (
        "15.04.2016, 15:04 - Pokemon Chat: Messages and calls are end-to-end encrypted. No "
        "one outside of this chat, not even WhatsApp, can read or listen to them.\n"
        "15.04.2016, 15:04 - Pokemon Chat: Ash added Misty\n"
        "15.04.2016, 15:05 - Ash: <media omitted>\n"
        "15.04.2016, 15:06 - Misty: I left my bike at the centre\n"
        "15.04.2016, 15:07 - Misty: Ash added salt\n"
    )
    chat = parse_export(text.encode(), tz="UTC")
    notice, added, media, bike, salt = chat.entries
    assert isinstance(notice, SystemEvent) and notice.kind is K.ENCRYPTION_NOTICE
    assert isinstance(added, SystemEvent) and added.kind is K.ADDED
    assert chat.summary.authors == ("Ash", "Misty")
    assert isinstance(media, ParsedMessage) and media.attachment is not None
    assert media.attachment.status is AttachmentStatus.OMITTED
    assert isinstance(bike, ParsedMessage) and bike.kind is MessageKind.TEXT
    # A person on Android never writes system lines, whatever the words.
    assert isinstance(salt, ParsedMessage) and salt.text == "Ash added salt"


def test_buddhist_year_is_refused_with_the_fix() -> None:
    text = "15/1/2566, 10:00 - Somchai: สวัสดี\n16/1/2566, 10:00 - Malee: hi\n"
    with pytest.raises(ImplausibleYear) as info:
        parse(text)
    assert "--calendar buddhist" in str(info.value) and "2566" in str(info.value)
    assert info.value.suggest == "buddhist" and info.value.line_no == 1
    entries = parse(text, calendar="buddhist")
    assert entries[0].timestamp.date().isoformat() == "2023-01-15"


def test_far_future_year_without_a_calendar_to_suggest() -> None:
    with pytest.raises(ImplausibleYear) as info:
        parse("15/1/9999, 10:00 - A: x\n")
    assert info.value.suggest is None and "date settings" in str(info.value)


def test_attachment_names_settle_the_date_order() -> None:
    chat = parse_export(
        (
            "[3/4/22, 10:00:00] Ana: hi\n"
            f"[3/4/22, 10:01:00] Ana: {LRM}<attached: 00000003-PHOTO-2022-03-04-10-01-00.jpg>\n"
        ).encode(),
        tz="UTC",
    )
    assert chat.dialect.date_order == "mdy"
    assert chat.dialect.date_order_evidence is not None
    assert chat.dialect.date_order_evidence.startswith("attachment names: line 2")


def test_a_later_date_settles_the_order_and_says_where() -> None:
    lines = [f"0{d}/05/23, 10:00 - A: x" for d in range(1, 10)] + ["21/05/23, 10:00 - A: y"]
    chat = parse_export("\n".join(lines).encode(), tz="UTC")
    assert chat.dialect.date_order == "dmy"
    assert (
        chat.dialect.date_order_evidence
        == "valid dates: line 10 '21/05/23, 10:00' is a date only read dmy"
    )


# -- the table -------------------------------------------------------------------------


def _actor(template: str) -> str:
    # "{actor} {target}" with nothing between (tr, fa) cannot tell where a name of two
    # words ends: the actor is taken to be the first word.
    return "Ana" if "{actor} {target}" in template else "Ana Lima"


def _render(template: str) -> str:
    return (
        template.replace("{actor}", _actor(template))
        .replace("{target}", "Bo")
        .replace('"{value}"', "“Trip”")
    )


CASES = [
    (lang, field, kind, template)
    for lang, words in TABLE.items()
    for field, kind, _ in SYSTEM_FIELDS
    for template in getattr(words, field)
]


@pytest.mark.parametrize(("lang", "field", "kind", "template"), CASES)
def test_every_system_wording_is_typed(lang: str, field: str, kind: K, template: str) -> None:
    line = _render(template)
    event = classify_system(line, author=None, chat_names=(), marked=False)
    assert event is not None and event.kind is kind, (lang, line, event)
    assert event.actor == _actor(template)
    if "{target}" in template:
        assert event.target == "Bo"
    if "{value}" in template:
        assert event.value == "Trip"
    # On iOS the same line attributed to its actor is an event too.
    event = classify_system(line, author=_actor(template), chat_names=(), marked=False)
    assert event is not None and event.kind is kind


@pytest.mark.parametrize("lang", sorted(TABLE))
def test_every_notice_and_placeholder_is_typed(lang: str) -> None:
    words = TABLE[lang]
    for fragment in words.encryption:
        event = classify_system(f"… {fragment} …", author="Grp", chat_names=(), marked=False)
        assert event is not None and event.kind is K.ENCRYPTION_NOTICE, fragment
    for deleted in words.deleted:
        for body in (deleted, deleted + ".", LRM + deleted):
            got = classify(body)
            assert got is not None and got.kind is MessageKind.DELETED, body
    for placeholder, media in words.omitted.items():
        got = classify(placeholder)
        assert got is not None and got.kind is MessageKind.ATTACHMENT, placeholder
        assert got.file is not None and got.file.omitted and got.file.media_type is media
    for view_once in words.view_once:
        got = classify(view_once)
        assert got is not None and got.kind is MessageKind.EMPTY, view_once
    for missed in words.missed_call:
        got = classify(missed)
        assert got is not None and got.kind is MessageKind.CALL, missed
        assert got.extra is not None and getattr(got.extra, "missed", False)
    got = classify(f"{words.poll}\nQ?\n{words.option} A (3 x)\n{words.option} B")
    assert got is not None and got.kind is MessageKind.POLL, words.poll
    assert got.extra is not None and [o.votes for o in got.extra.options] == [3, 0]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    ["I left", "we added salt", "Jan heeft het", "Se eliminó todo?", "salió bien", "keluar dulu"],
)
def test_ordinary_sentences_by_a_person_stay_messages(text: str) -> None:
    assert classify_system(text, author="Bob", chat_names=(), marked=False) is None


def test_docs_list_every_wording() -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "IMPORT.md").read_text(encoding="utf-8")
    for lang, words in TABLE.items():
        assert f"(`{lang}`)" in docs
        listed = [*words.encryption, *words.deleted, *words.omitted, *words.view_once]
        listed += [w for field, _, _ in SYSTEM_FIELDS for w in getattr(words, field)]
        for wording in [*listed, *words.missed_call, words.poll, words.option]:
            assert f"`{wording}`" in docs, (lang, wording)
