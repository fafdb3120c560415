"""Message bodies, system lines and line structure (spec sections 2-5)."""

from __future__ import annotations

import pytest

from baat.importers.whatsapp import (
    AttachmentStatus,
    ChatImport,
    MediaType,
    MessageKind,
    ParsedMessage,
    SystemEvent,
    SystemEventKind,
    UnparsedReason,
    parse_export,
)
from baat.importers.whatsapp._text import split_lines

K = SystemEventKind
LRM = "\u200e"


def android(*lines: str, **kwargs: object) -> ChatImport:
    text = "".join(f"29/01/18, 23:{i:02d} - {line}\n" for i, line in enumerate(lines))
    return parse_export(text.encode(), tz="UTC", **kwargs)  # type: ignore[arg-type]


def ios(*lines: str, **kwargs: object) -> ChatImport:
    # A leading LRM goes before the header, where iOS puts it on system lines.
    text = "".join(
        f"{line[:1] if line[:1] == LRM else ''}[29/01/18, 23:{i:02d}:00] {line.lstrip(LRM)}\n"
        for i, line in enumerate(lines)
    )
    return parse_export(text.encode(), tz="UTC", **kwargs)  # type: ignore[arg-type]


def only_event(parsed: ChatImport) -> SystemEvent:
    (event,) = parsed.entries
    assert isinstance(event, SystemEvent)
    return event


def only_message(parsed: ChatImport) -> ParsedMessage:
    (message,) = parsed.entries
    assert isinstance(message, ParsedMessage)
    return message


@pytest.mark.parametrize(
    ("line", "kind", "actor", "target", "value", "old"),
    [
        ('Bob created group "Book club"', K.GROUP_CREATED, "Bob", None, "Book club", None),
        ("You added Mallory", K.ADDED, "You", "Mallory", None, None),
        ("Bob added Carol, Dave and Erin", K.ADDED, "Bob", "Carol, Dave and Erin", None, None),
        ("You were added", K.ADDED, None, "You", None, None),
        ("Bob removed Mallory", K.REMOVED, "Bob", "Mallory", None, None),
        ("Mallory left", K.LEFT, "Mallory", None, None, None),
        ("Carol joined using this group's invite link", K.JOINED, "Carol", None, None, None),
        ("Bob changed this group's icon", K.ICON_CHANGED, "Bob", None, None, None),
        ("Bob deleted this group's icon", K.ICON_DELETED, "Bob", None, None, None),
        (
            'Bob changed the group name from "a: b" to "Book club"',
            K.SUBJECT_CHANGED,
            "Bob",
            None,
            "Book club",
            "a: b",
        ),
        ('You changed the subject to "Hiking"', K.SUBJECT_CHANGED, "You", None, "Hiking", None),
        ("Bob changed the group description", K.DESCRIPTION_CHANGED, "Bob", None, None, None),
        (
            "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
            "WhatsApp, can read or listen to them. Tap to learn more.",
            K.ENCRYPTION_NOTICE,
            None,
            None,
            None,
            None,
        ),
        (
            "Bob turned on disappearing messages. New messages will disappear from this chat "
            "7 days after they're sent, except when kept. Tap to change.",
            K.DISAPPEARING_TIMER,
            "Bob",
            None,
            "7 days",
            None,
        ),
        ("You turned off disappearing messages.", K.DISAPPEARING_TIMER, "You", None, "off", None),
        (
            "Your security code with Bob changed. Tap to learn more.",
            K.SECURITY_CODE_CHANGED,
            None,
            "Bob",
            None,
            None,
        ),
        (
            "Bob changed their phone number to a new number. Tap to message or add the new "
            "number.",
            K.NUMBER_CHANGED,
            "Bob",
            None,
            None,
            None,
        ),
        ("+44 7123 456789 changed to +44 7999 000111", K.NUMBER_CHANGED, "+44 7123 456789", None,
         "+44 7999 000111", None),
        ("You're now an admin", K.ADMIN_CHANGED, None, "You", None, None),
        ("Alice hat Bob hinzugefügt", K.ADDED, "Alice", "Bob", None, None),
        ("Something new WhatsApp invented", K.OTHER, None, None, None, None),
    ],
)  # fmt: skip
def test_android_system_lines(
    line: str,
    kind: SystemEventKind,
    actor: str | None,
    target: str | None,
    value: str | None,
    old: str | None,
) -> None:
    event = only_event(android(line, date_order="dmy"))
    assert (event.kind, event.actor, event.target, event.value, event.old_value) == (
        kind,
        actor,
        target,
        value,
        old,
    )
    assert event.author is None and event.text == line


def test_ios_authored_lines_are_events_only_when_the_wording_fits() -> None:
    parsed = ios(
        "Family: Messages and calls are end-to-end encrypted.",
        "Family: Bob added Carol",  # attributed to the chat (spec 4)
        "Bob: I left",  # a message about leaving, not a departure
        "Bob: Bob left",  # the actor is the author
        "Carol: Bob changed this group's icon",  # wording no one types by accident
        "\u200eDave: Erin removed Frank",  # the LRM iOS puts on system lines
        "Erin: Bob removed the cake from the oven",
    )
    kinds = [e.kind if isinstance(e, SystemEvent) else "message" for e in parsed.entries]
    assert kinds == [
        K.ENCRYPTION_NOTICE,
        K.ADDED,
        "message",
        K.LEFT,
        K.ICON_CHANGED,
        K.REMOVED,
        "message",
    ]
    added = parsed.entries[1]
    assert isinstance(added, SystemEvent)
    assert (added.author, added.actor, added.target) == ("Family", "Bob", "Carol")


def test_in_a_one_to_one_chat_the_contact_is_not_the_chat() -> None:
    # iOS attributes the notice to the contact, who also writes messages.
    parsed = ios(
        "Anna: Messages and calls are end-to-end encrypted.",
        "Anna: we added salt",
        "Anna: hi",
        chat_name="Anna",
        date_order="dmy",
    )
    assert [type(e).__name__ for e in parsed.entries] == [
        "SystemEvent",
        "ParsedMessage",
        "ParsedMessage",
    ]


def test_android_authored_lines_are_never_events() -> None:
    message = only_message(android("Bob: Mallory left", date_order="dmy"))
    assert (message.author, message.text) == ("Bob", "Mallory left")


@pytest.mark.parametrize(
    ("body", "kind", "status", "media", "name"),
    [
        ("<Media omitted>", MessageKind.ATTACHMENT, AttachmentStatus.OMITTED, MediaType.UNKNOWN,
         None),
        ("<Video note omitted>", MessageKind.ATTACHMENT, AttachmentStatus.OMITTED,
         MediaType.VIDEO_NOTE, None),
        ("\u200eContact card omitted", MessageKind.ATTACHMENT, AttachmentStatus.OMITTED,
         MediaType.CONTACT, None),
        ("sticker omitted", MessageKind.ATTACHMENT, AttachmentStatus.OMITTED, MediaType.STICKER,
         None),
        ("Bild weggelassen", MessageKind.ATTACHMENT, AttachmentStatus.OMITTED, MediaType.IMAGE,
         None),
        ("Invoice_2018.pdf • 2 pages document omitted", MessageKind.ATTACHMENT,
         AttachmentStatus.OMITTED, MediaType.DOCUMENT, "Invoice_2018.pdf"),
        ("Peter.vcf (file attached)", MessageKind.ATTACHMENT, AttachmentStatus.NOT_IN_EXPORT,
         MediaType.CONTACT, "Peter.vcf"),
        ("STK-20210101-WA0001.webp (file attached)", MessageKind.ATTACHMENT,
         AttachmentStatus.NOT_IN_EXPORT, MediaType.STICKER, "STK-20210101-WA0001.webp"),
        ("<\u200eattached: 00000002-VIDEO-2022-12-31-11-40-26.mp4>", MessageKind.ATTACHMENT,
         AttachmentStatus.NOT_IN_EXPORT, MediaType.VIDEO, "00000002-VIDEO-2022-12-31-11-40-26.mp4"),
        ("<IMG-1.jpg eklendi>", MessageKind.ATTACHMENT, AttachmentStatus.NOT_IN_EXPORT,
         MediaType.IMAGE, "IMG-1.jpg"),
    ],
)  # fmt: skip
def test_attachment_markers(
    body: str,
    kind: MessageKind,
    status: AttachmentStatus,
    media: MediaType,
    name: str | None,
) -> None:
    message = only_message(ios(f"Bob: {body}", date_order="dmy"))
    assert message.kind is kind and message.attachment is not None
    assert (message.attachment.status, message.attachment.media_type) == (status, media)
    assert message.attachment.name == name


def test_text_that_merely_resembles_markers_stays_text() -> None:
    parsed = android(
        "Bob: see you at 5 (maybe)",
        "Bob: a <b> c>",
        "Bob: Video call later?",
        "Bob: the image omitted from the slide was mine",
        "Bob: POLL: which one",
        date_order="dmy",
    )
    assert all(e.kind is MessageKind.TEXT for e in parsed.messages)


def test_calls_locations_and_live_locations() -> None:
    parsed = ios(
        "Bob: Missed voice call. Tap to call back",
        "Bob: Video call. 12 min",
        "Bob: Location: https://maps.google.com/?q=-33.8688,151.2093",
        "Bob: live location shared",
        date_order="dmy",
    )
    missed, video, location, live = parsed.messages
    assert missed.call is not None and (missed.call.missed, missed.call.video) == (True, False)
    assert missed.call.detail == "Tap to call back"
    assert video.call is not None and video.call.video and video.call.detail == "12 min"
    assert location.location is not None
    assert (location.location.latitude, location.location.longitude) == (-33.8688, 151.2093)
    assert live.location is not None and live.location.live and live.location.url is None


def test_deleted_edited_and_empty() -> None:
    parsed = android(
        "Carol: You deleted this message",
        "Carol: fixed typo <This message was edited>",
        "Carol:",
        date_order="dmy",
    )
    deleted, edited, empty = parsed.messages
    assert deleted.deleted and deleted.text == ""
    assert edited.edited and edited.text == "fixed typo" and edited.kind is MessageKind.TEXT
    assert (empty.kind, empty.author, empty.text) == (MessageKind.EMPTY, "Carol", "")
    assert parsed.summary.edited == 1


def test_multiline_with_date_like_and_foreign_header_lines() -> None:
    text = (
        "1/18/20, 14:53 - Jahn Doe: Lorem ipsum dolor sit amet,\n"
        "2016-04-29 10:30:00\n"
        "[1/18/20, 14:53:00] Eve: a header from an iPhone, pasted\n"
        "\n"
        "1/18/20, 14:54 - Jahn Doe: next\n"
        "\n"
    )
    parsed = parse_export(text.encode(), tz="UTC", date_order="mdy")
    first, second = parsed.messages
    assert first.text == (
        "Lorem ipsum dolor sit amet,\n2016-04-29 10:30:00\n"
        "[1/18/20, 14:53:00] Eve: a header from an iPhone, pasted"
    )
    assert (first.line_no, first.end_line_no, second.line_no) == (1, 4, 5)
    assert second.text == "next"


def test_mixed_line_endings_keep_header_shaped_lines_inside_messages() -> None:
    # Spec 1: "\r\n" between messages, "\n" inside them.
    text = (
        "1/18/20, 14:53 - Bob: quoting an old chat:\n"
        "1/17/20, 09:00 - Ann: hello\r\n"
        "1/18/20, 14:54 - Ann: ha\r\n"
        "1/18/20, 14:55 - Bob: ok\r\n"
    )
    parsed = parse_export(text.encode(), tz="UTC", date_order="mdy")
    assert [m.text for m in parsed.messages] == [
        "quoting an old chat:\n1/17/20, 09:00 - Ann: hello",
        "ha",
        "ok",
    ]


@pytest.mark.parametrize(
    ("text", "lines", "soft"),
    [
        ("a\nb\n", ["a", "b"], set()),
        ("a\r\nb\rc\r\n", ["a", "b", "c"], set()),
        ("a\r\nb\nc\r\nd", ["a", "b", "c", "d"], {2}),
        ("a\r\nb\nc\rd\r\n", ["a", "b", "c", "d"], {2}),
        ("a\u2028b\x85c\n", ["a\u2028b\x85c"], set()),  # not line breaks in a chat
    ],
)
def test_line_splitting(text: str, lines: list[str], soft: set[int]) -> None:
    assert split_lines(text) == (lines, frozenset(soft))


def test_boms_and_marks_between_lines() -> None:
    text = (
        "\ufeff1/18/20, 14:53 - Bob: one\n\ufeffcontinued\n\ufeff\u200e1/18/20, 14:54 - Bob: two\n"
    )
    parsed = parse_export(text.encode(), tz="UTC", date_order="mdy")
    assert [m.text for m in parsed.messages] == ["one\ncontinued", "two"]


def test_lines_before_the_first_header_are_reported() -> None:
    text = "Exported from a backup\n\n1/18/20, 14:53 - Bob: one\n"
    parsed = parse_export(text.encode(), tz="UTC", date_order="mdy")
    (line,) = parsed.summary.unparsed
    assert (line.line_no, line.text, line.reason) == (
        1,
        "Exported from a backup",
        UnparsedReason.BEFORE_FIRST_MESSAGE,
    )


def test_push_names_and_isolated_numbers_are_normalised() -> None:
    parsed = ios("~\u00a0AK: hi", "\u2068+44 7123 456789\u2069: yo", date_order="dmy")
    assert [m.author for m in parsed.messages] == ["~ AK", "+44 7123 456789"]


def test_polls_with_multi_line_question() -> None:
    message = only_message(
        ios(
            "Ann: POLL:\nWhere\nshall we go?\nOPTION: Park (0 votes)\nOPTION: Beach",
            date_order="dmy",
        )
    )
    assert message.poll is not None
    assert message.poll.question == "Where\nshall we go?" == message.text
    assert [(o.text, o.votes) for o in message.poll.options] == [("Park", 0), ("Beach", 0)]
