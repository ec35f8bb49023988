"""Cron expressions: parsing errors name the field; next fire times are right across DST changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from common.cron import Cron, CronError

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def _fires(expression: str, after: datetime, zone: ZoneInfo, count: int) -> list[str]:
    cron, fires = Cron.parse(expression), []
    for _ in range(count):
        after = cron.next_fire(after, zone)
        fires.append(after.isoformat())
    return fires


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 2 * *", "expected 5 fields"),
        ("60 2 * * *", "minute: 60 is outside 0-59"),
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        ("0 2 0 * *", "day of month: 0 is outside 1-31"),
        ("0 2 * foo *", "month: 'foo' is not a number or a name (jan, feb"),
        ("0 2 * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 2 * * *", "minute: step '0' must be a whole number of at least 1"),
        ("0 5-3 * * *", "hour: range '5-3' runs backwards"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, expected: str) -> None:
    """Each malformed field is named with what was wrong."""
    with pytest.raises(CronError, match=re.escape(expected)):
        Cron.parse(expression)


def test_an_expression_that_never_fires_is_refused() -> None:
    """February 31st never comes: asking for its next fire time says so rather than loop forever."""
    with pytest.raises(CronError, match="never fires"):
        Cron.parse("0 0 31 2 *").next_fire(datetime(2026, 1, 1, tzinfo=UTC), PARIS)


def test_nightly_in_a_non_utc_zone() -> None:
    """'0 2 * * *' in Paris fires at 02:00 local: 01:00 UTC in winter, 00:00 UTC in summer."""
    winter = _fires("0 2 * * *", datetime(2026, 11, 21, 10, 0, tzinfo=UTC), PARIS, 1)
    assert winter == ["2026-11-22T02:00:00+01:00"]
    summer = _fires("0 2 * * *", datetime(2026, 7, 1, 10, 0, tzinfo=UTC), PARIS, 1)
    assert summer == ["2026-07-02T02:00:00+02:00"]


def test_a_time_skipped_by_spring_forward_fires_once_an_hour_later() -> None:
    """On 2026-03-08 New York skips 02:00-03:00: '30 2 * * *' fires at 03:30 EDT, then 02:30 as usual."""
    fires = _fires("30 2 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK), NEW_YORK, 3)
    assert fires == ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]


def test_a_time_repeated_by_fall_back_fires_once() -> None:
    """On 2026-11-01 New York repeats 01:00-02:00: '30 1 * * *' fires at the first 01:30 only."""
    fires = _fires("30 1 * * *", datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK), NEW_YORK, 2)
    assert fires == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_hourly_across_fall_back_keeps_real_hours_apart() -> None:
    """Hourly on the fall-back night: 00:00 EDT, 01:00 EDT, then 02:00 EST, two real hours later."""
    fires = _fires("0 * * * *", datetime(2026, 11, 1, 3, 59, tzinfo=UTC), NEW_YORK, 3)
    assert fires == ["2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00"]


def test_day_of_month_or_day_of_week_and_names() -> None:
    """Both day fields restricted fire on either; names and 7 for Sunday are understood."""
    fires = _fires("0 9 13 * fri", datetime(2026, 11, 1, tzinfo=UTC), ZoneInfo("UTC"), 4)
    assert [fire[:10] for fire in fires] == ["2026-11-06", "2026-11-13", "2026-11-20", "2026-11-27"]
    assert Cron.parse("0 9 * jan-mar 7").weekdays == {0}
    assert Cron.parse("*/20 8-10/2 * * *").hours == {8, 10}
    assert Cron.parse("*/20 8-10/2 * * *").minutes == {0, 20, 40}


def test_the_previous_fire_across_spring_forward_is_the_one_next_fire_gives() -> None:
    """The fire before a moment on a spring-forward day is the shifted 03:30 that next_fire gives."""
    cron = Cron.parse("30 2 * * *")
    noon = datetime(2026, 3, 8, 12, 0, tzinfo=NEW_YORK)
    previous = cron.previous_fire(noon, NEW_YORK)
    assert previous == cron.next_fire(datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK), NEW_YORK)
    assert (previous.hour, previous.minute, previous.utcoffset()) == (3, 30, noon.utcoffset())


@pytest.mark.parametrize(
    "expression", ["0 2 * * *", "*/15 * * * *", "30 1 * * 0", "0 0 29 2 *", "5 4 1,15 * mon"]
)
def test_no_fire_lies_between_the_previous_fire_and_a_moment(expression: str) -> None:
    """For moments around both DST changes, next_fire(previous_fire(t)) is t or later."""
    cron = Cron.parse(expression)
    for moment in (
        datetime(2026, 3, 8, 1, 59, tzinfo=NEW_YORK),
        datetime(2026, 3, 8, 3, 1, tzinfo=NEW_YORK),
        datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK),
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK),
        datetime(2026, 10, 25, 2, 30, tzinfo=PARIS),
    ):
        previous = cron.previous_fire(moment, NEW_YORK)
        assert previous < moment
        assert cron.next_fire(previous, NEW_YORK) >= moment
