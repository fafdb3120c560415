"""Wall-clock headers to aware datetimes (spec 1 and 8.8: no offset is written in the file).

Repeated wall times (clocks going back) are resolved in file order with PEP 495 ``fold``:
the export is in time order, so once a time goes backwards inside the repeated hour, that
and every later time in it is the second occurrence. A repeated time that nothing before it
contradicts is read as the first occurrence. Nonexistent wall times (clocks going forward)
are read with ``fold=0``, i.e. with the offset in force before the change: 02:30 on the
night Europe/Berlin moves from 02:00 to 03:00 becomes 01:30 UTC, the instant the clock would
have shown 02:30 had it not jumped. Both cases are listed in the import summary.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LOCALTIME = Path("/etc/localtime")

NORMAL, AMBIGUOUS, NONEXISTENT = 0, 1, 2


def resolve_zone(tz: str | _dt.tzinfo | None) -> tuple[_dt.tzinfo, str]:
    """The zone to attach to wall times, and its name for the record.

    Raises:
        ValueError: ``tz`` names no known time zone.
    """
    if isinstance(tz, _dt.tzinfo):
        return tz, str(tz)
    if tz is not None:
        try:
            return ZoneInfo(tz), tz
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
    return _machine_zone()


def _machine_zone() -> tuple[_dt.tzinfo, str]:
    # There is no portable "local ZoneInfo"; try what the OS offers, most exact first.
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = str(_LOCALTIME.resolve(strict=True))
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        key = target.split("zoneinfo/", 1)[1]
        try:
            return ZoneInfo(key), key
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with _LOCALTIME.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime"), "localtime"
    except (OSError, ValueError):
        pass
    # Last resort (e.g. Windows without tzdata): today's fixed offset. It knows no DST, so
    # times from the other half of the year land an hour off; pass ``tz`` to avoid it.
    fixed = _dt.datetime.now().astimezone().tzinfo or _dt.UTC
    return fixed, str(fixed)


class LocalClock:
    """Attaches one zone to wall times given in file order."""

    def __init__(self, zone: _dt.tzinfo) -> None:
        self._zone = zone
        self._changes_on: dict[tuple[int, int, int], bool] = {}
        # For days with a change: the latest wall time seen so far, and whether the second
        # pass through a repeated hour has begun.
        self._latest: dict[tuple[int, int, int], tuple[int, int, int]] = {}
        self._second_pass: set[tuple[int, int, int]] = set()

    def attach(self, y: int, mo: int, d: int, h: int, mi: int, s: int) -> tuple[_dt.datetime, int]:
        """The aware datetime and ``NORMAL``, ``AMBIGUOUS`` or ``NONEXISTENT``."""
        day = (y, mo, d)
        changes = self._changes_on.get(day)
        if changes is None:
            changes = self._changes_on[day] = self._offset_changes(y, mo, d)
        if not changes:
            return _dt.datetime(y, mo, d, h, mi, s, tzinfo=self._zone), NORMAL
        first = _dt.datetime(y, mo, d, h, mi, s, tzinfo=self._zone)
        second = first.replace(fold=1)
        wall = (h, mi, s)
        latest = self._latest.get(day)
        self._latest[day] = wall if latest is None or wall > latest else latest
        off_first, off_second = first.utcoffset(), second.utcoffset()
        if off_first == off_second:
            return first, NORMAL
        assert off_first is not None and off_second is not None
        if off_first < off_second:
            return first, NONEXISTENT
        if day in self._second_pass or (latest is not None and latest > wall):
            self._second_pass.add(day)
            return second, AMBIGUOUS
        return first, AMBIGUOUS

    def _offset_changes(self, y: int, mo: int, d: int) -> bool:
        start = _dt.datetime(y, mo, d, tzinfo=self._zone)
        end = _dt.datetime(y, mo, d, 23, 59, 59, tzinfo=self._zone)
        offsets = {
            start.utcoffset(),
            start.replace(fold=1).utcoffset(),
            end.utcoffset(),
            end.replace(fold=1).utcoffset(),
        }
        return len(offsets) > 1
