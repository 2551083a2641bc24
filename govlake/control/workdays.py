"""Working-day arithmetic for statutory reply deadlines (``N个工作日内予以答复``).

A working day is Monday to Friday, minus the State Council's statutory holidays, plus the 调休 weekend days
that are worked instead (both lists in ``catalog/sharing.yaml``; a year not listed there falls back to plain
Monday to Friday). Days are counted on the China calendar (UTC+8, no daylight saving), whatever timezone
the timestamps carry, because a request filed at 01:00 Beijing time on a Monday is a Monday request.

The deadline of "N working days" is the *end* of the N-th working day after the day of filing (the filing
day itself does not count, as 自收到之日起 is usually read), so a reply at any time on that day is on time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from govlake.control.clock import utc as _aware

CHINA = timezone(timedelta(hours=8), "CST")
_MAX_SPAN = 3660  # days searched at most: a calendar with no working day at all must not loop forever


@dataclass(frozen=True)
class WorkCalendar:
    """Weekdays minus ``holidays`` plus ``workdays`` (调休 make-up days)."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, holidays: Iterable[str | date] = (), workdays: Iterable[str | date] = ()) -> "WorkCalendar":
        return cls(frozenset(map(_day, holidays)), frozenset(map(_day, workdays)))

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: datetime, n: int) -> datetime:
        """The end (23:59:59.999999 China time) of the ``n``-th working day after ``start``'s day, as an
        aware datetime in ``start``'s timezone; ``start`` itself when ``n`` is 0."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return start
        tz = start.tzinfo or timezone.utc
        day = _aware(start).astimezone(CHINA).date()
        counted = 0
        for _ in range(_MAX_SPAN):
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
                if counted == n:
                    return datetime.combine(day, time.max, CHINA).astimezone(tz)
        raise ValueError("no working day within ten years: check the calendar's holidays")

    def between(self, start: datetime, end: datetime) -> int:
        """Working days after ``start``'s day up to and including ``end``'s day (how late a reply is)."""
        a = _aware(start).astimezone(CHINA).date()
        b = _aware(end).astimezone(CHINA).date()
        return sum(1 for i in range(1, (b - a).days + 1) if self.is_workday(a + timedelta(days=i)))


def add_workdays(start: datetime, n: int, holidays: Iterable[str | date] = (),
                 workdays: Iterable[str | date] = ()) -> datetime:
    """``start`` + ``n`` working days (see ``WorkCalendar.add``)."""
    return WorkCalendar.of(holidays, workdays).add(start, n)


def _day(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
