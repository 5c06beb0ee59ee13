"""The calling window batches and campaigns share: local hours, in one or more time zones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def check_timezone(value: str) -> str:
    """`value` if it names an IANA zone, else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York)") from error
    return value


def parse_clock(value: str, *, minutes_only: bool = False) -> time:
    """A time of day written `HH:MM` (or `HH:MM:SS` unless `minutes_only`), else ValueError."""
    try:
        parsed = time.fromisoformat(value)
    except ValueError as error:
        raise ValueError("use HH:MM, e.g. 09:00") from error
    if minutes_only and (len(value) != 5 or parsed.second or parsed.microsecond):
        raise ValueError("use HH:MM, e.g. 09:00")
    return parsed


@dataclass(frozen=True)
class CallingWindow:
    """[earliest, latest) local time in every one of `zones`.

    A window whose `latest` comes before its `earliest` runs across midnight (22:00–06:00); a
    missing bound is the start or the end of the day, and a window with neither is always open.
    """

    zones: tuple[str, ...]
    earliest: time | None = None
    latest: time | None = None

    @classmethod
    def of(cls, zones: Iterable[str], earliest: str | None, latest: str | None) -> CallingWindow:
        """The window of stored `HH:MM` bounds (None or "" for none)."""
        return cls(
            tuple(zones),
            parse_clock(earliest) if earliest else None,
            parse_clock(latest) if latest else None,
        )

    def _inside(self, local: time) -> bool:
        earliest, latest = self.earliest or time.min, self.latest or time.max
        if earliest <= latest:
            return earliest <= local < latest
        return local >= earliest or local < latest  # a window across midnight

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` is inside the window in every zone."""
        if self.earliest is None and self.latest is None:
            return True
        return all(self._inside(moment.astimezone(ZoneInfo(zone)).time()) for zone in self.zones)

    def next_opening(self, moment: datetime) -> datetime | None:
        """The first time at or after `moment` inside the window in every zone (None: never, the
        zones' windows do not overlap).

        Where windows overlap, the overlap opens when one of them opens, so only the zones'
        openings over the next days are tried."""
        if self.contains(moment):
            return moment
        opening_time = self.earliest or time.min
        openings = sorted(
            datetime.combine(
                moment.astimezone(ZoneInfo(zone)).date() + timedelta(days=day), opening_time
            )
            .replace(tzinfo=ZoneInfo(zone))
            .astimezone(UTC)
            for zone in self.zones
            for day in (-1, 0, 1, 2)
        )
        return next(
            (opening for opening in openings if opening >= moment and self.contains(opening)),
            None,
        )
