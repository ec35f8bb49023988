"""Five-field cron expressions, and their next fire time in a timezone, across DST changes.

``MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK``, each ``*``, a number, a range ``a-b``, a step
``*/n`` or ``a-b/n``, or a list of those; months and weekdays also by name (``jan``, ``mon``), and
Sunday as 0 or 7. When both day fields are restricted, a day matching either fires (as in cron).

Wall-clock times are in the schedule's timezone. A time that does not exist on a spring-forward
day (02:30 when clocks jump from 02:00 to 03:00) fires when it would have, an hour later by the
clock; a time that happens twice on a fall-back day fires once, the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names): the five fields in order.
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
SEARCH_DAYS = 366 * 8
"""Eight years of days: longer than the wait for Feb 29, the rarest day an expression can name."""


class CronError(ValueError):
    """An expression that is not five valid fields; the message names the field."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday."""
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
            )
        values = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = values
        return cls(
            expression=expression,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=frozenset(day % 7 for day in weekdays),
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_fire(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first fire time strictly after ``after`` (aware), as an aware datetime in ``zone``."""
        start = after.astimezone(zone).date() - timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            day = start + timedelta(days=offset)
            if not self.matches_day(day):
                continue
            fires = [_instant(day, hour, minute, zone) for hour in self.hours for minute in self.minutes]
            later = [fire for fire in fires if fire > after]
            if later:
                return min(later)
        raise CronError(f"{self.expression!r} never fires")

    def previous_fire(self, before: datetime, zone: ZoneInfo) -> datetime:
        """The last fire time strictly before ``before`` (aware), as an aware datetime in ``zone``."""
        start = before.astimezone(zone).date() + timedelta(days=1)
        for offset in range(SEARCH_DAYS):
            day = start - timedelta(days=offset)
            if not self.matches_day(day):
                continue
            fires = [_instant(day, hour, minute, zone) for hour in self.hours for minute in self.minutes]
            earlier = [fire for fire in fires if fire < before]
            if earlier:
                return max(earlier)
        raise CronError(f"{self.expression!r} never fires")


def _instant(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    # fold=0: the first of a repeated time; a skipped time normalises forward through UTC.
    local = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return local.astimezone(ZoneInfo("UTC")).astimezone(zone)


def _parse_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, name, low, high, names)
    return frozenset(values)


def _parse_item(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    body, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) < 1:
            raise CronError(f"{name}: step {step_text!r} must be a whole number of at least 1")
        step = int(step_text)
    if body == "*":
        first, last = low, high
    elif "-" in body:
        first_text, _, last_text = body.partition("-")
        first, last = _value(first_text, name, low, high, names), _value(last_text, name, low, high, names)
        if first > last:
            raise CronError(f"{name}: range {body!r} runs backwards")
    else:
        first = _value(body, name, low, high, names)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + (1 if names is _MONTHS else 0)
    if not text.isdigit():
        raise CronError(
            f"{name}: {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else "")
        )
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value
