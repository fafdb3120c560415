"""Every example of the format reference parses to its expected date, time, author and kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baat.importers.whatsapp import (
    AmbiguousDateOrder,
    AttachmentStatus,
    Entry,
    MessageKind,
    ParsedMessage,
    SystemEvent,
    SystemEventKind,
    parse_export,
)

HERE = Path(__file__).parent
EXAMPLES_COPY = HERE / "data" / "whatsapp-examples.json"
# The design folder sits beside the repository (read-only on CI); the tests use the copy and
# only check here that the copy has not drifted from it.
EXAMPLES_SHARED = Path(__file__).parents[2].parent / "shared/design/whatsapp-examples.json"

EXAMPLES: list[dict[str, Any]] = json.loads(EXAMPLES_COPY.read_text(encoding="utf-8"))
SYSTEM_KINDS = {
    "e2e": SystemEventKind.ENCRYPTION_NOTICE,
    "group-created": SystemEventKind.GROUP_CREATED,
    "added": SystemEventKind.ADDED,
    "left": SystemEventKind.LEFT,
    "ephemeral": SystemEventKind.DISAPPEARING_TIMER,
    "icon": SystemEventKind.ICON_CHANGED,
}


def by_id(example: dict[str, Any]) -> str:
    return str(example["id"])


def parse_one(raw: str, order: str | None, **kwargs: Any) -> Entry:
    chat = parse_export(raw.encode("utf-8"), date_order=order, tz="UTC", **kwargs)  # type: ignore[arg-type]
    assert chat.summary.unparsed == ()
    assert len(chat.entries) == 1
    return chat.entries[0]


def assert_kind(entry: Entry, kind: str, raw: str) -> None:
    if kind.startswith("system:"):
        assert isinstance(entry, SystemEvent)
        assert entry.kind is SYSTEM_KINDS[kind.removeprefix("system:").split("(")[0]]
        return
    assert isinstance(entry, ParsedMessage)
    body_lines = raw.split("\n")[1:]
    if kind == "text":
        assert entry.kind is MessageKind.TEXT
        assert not entry.edited and "\n" not in entry.text
    elif kind == "multiline":
        assert entry.kind is MessageKind.TEXT
        assert entry.text.split("\n")[1:] == body_lines
    elif kind == "media-omitted":
        assert entry.kind is MessageKind.ATTACHMENT and entry.attachment is not None
        assert entry.attachment.status is AttachmentStatus.OMITTED
    elif kind in ("attachment", "attachment+caption"):
        # A bare transcript holds no media, so a named file is "not in export".
        assert entry.kind is MessageKind.ATTACHMENT and entry.attachment is not None
        assert entry.attachment.status is AttachmentStatus.NOT_IN_EXPORT
        assert entry.attachment.name and entry.attachment.name in raw
        assert entry.text == "\n".join(body_lines)
    elif kind == "deleted":
        assert entry.kind is MessageKind.DELETED and entry.deleted and entry.text == ""
    elif kind == "edited":
        assert entry.kind is MessageKind.TEXT and entry.edited
        assert entry.text == "sample message"
    elif kind == "location":
        assert entry.kind is MessageKind.LOCATION and entry.location is not None
        assert (entry.location.latitude, entry.location.longitude) == (50.9425526, 6.9523387)
    elif kind == "poll":
        assert entry.kind is MessageKind.POLL and entry.poll is not None
        assert [(o.text, o.votes) for o in entry.poll.options] == [
            ("Venerdì 23 Sera", 1),
            ("Sabato 24 Sera", 3),
        ]
    else:  # pragma: no cover - a kind the reference added later
        pytest.fail(f"unknown reference kind {kind!r}")


def test_copy_matches_the_design_reference() -> None:
    if not EXAMPLES_SHARED.exists():
        pytest.skip("design folder not beside the repository")
    assert json.loads(EXAMPLES_SHARED.read_text(encoding="utf-8")) == EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=by_id)
def test_example_parses_as_expected(example: dict[str, Any]) -> None:
    entry = parse_one(example["raw"], example["order"].lower())
    ts = entry.timestamp
    assert [ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second] == example["expected"]
    assert ts.utcoffset() is not None
    assert entry.author == example["author"]
    assert_kind(entry, example["kind"], example["raw"])


@pytest.mark.parametrize("example", EXAMPLES, ids=by_id)
@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_example_with_other_line_endings_and_a_bom(example: dict[str, Any], newline: str) -> None:
    raw = "\ufeff" + example["raw"].replace("\n", newline) + newline
    entry = parse_one(raw, example["order"].lower())
    assert entry.author == example["author"]
    assert_kind(entry, example["kind"], example["raw"])


@pytest.mark.parametrize("example", EXAMPLES, ids=by_id)
def test_example_without_a_date_order(example: dict[str, Any]) -> None:
    # A single line settles the order only if a field cannot be a month (or the year comes
    # first); otherwise the importer must refuse to guess.
    year, month, day = example["expected"][:3]
    raw_date = example["raw"].lstrip("\u200e[")
    settled = day > 12 or example["order"] == "YMD" or month > 12
    # An attachment name with its date (iPhone "…-PHOTO-2014-06-08-…") settles it too.
    named = f"-{year:04d}-{month:02d}-{day:02d}-" in example["raw"]
    if settled or named:
        entry = parse_one(example["raw"], None)
        assert [entry.timestamp.year, entry.timestamp.month, entry.timestamp.day] == [
            year,
            month,
            day,
        ]
    elif day == month:
        # Both readings agree, so nothing is being guessed.
        entry = parse_one(example["raw"], None)
        assert (entry.timestamp.month, entry.timestamp.day) == (month, day)
    else:
        with pytest.raises(AmbiguousDateOrder) as info:
            parse_one(example["raw"], None)
        (sample,) = info.value.samples
        assert sample.line_no == 1 and raw_date.startswith(sample.raw.lstrip("["))
        assert sample.dmy is not None and sample.mdy is not None and sample.dmy != sample.mdy
        assert str(year) in str(info.value)
