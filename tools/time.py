"""Time pack: the current time anywhere, time zone conversion and date arithmetic.

Calendar units (years, months, weeks, days) move the wall clock, so "+1 day" across a daylight
saving change lands at the same local time; clock units (hours, minutes, seconds) are elapsed
time, so "+24 hours" lands an hour off. Months clamp to the month's end (Jan 31 + 1 month is
Feb 28 or 29). Time zones are IANA names ("Europe/Paris"), "UTC", or offsets ("+05:30").

The module is named ``time`` to match the pack name (``--tools time``). It lives in the package
``tooldag.packs``, where absolute imports still give the standard library's ``time`` to anyone
who imports it; nothing here needs that module.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError
from tooldag.registry import RetryPolicy, tool

__all__ = ["DateDiff", "DateResult", "TimeInfo", "convert_time", "date_add", "date_diff", "now"]

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_NO_RETRY = RetryPolicy(attempts=1)
# The date arithmetic's metadata: quick, read-only, and nothing private, sent or untrusted.
_date_tool = tool(
    category="computation",
    side_effects=False,
    idempotent=True,
    timeout=5.0,
    retry=_NO_RETRY,
    reads_private=False,
    egress=False,
    untrusted_output=False,
)
_ISO_HINT = "use ISO 8601, e.g. 2024-03-31 or 2024-03-31T14:30:00+02:00 (or 'now', 'today')"

TimeZoneName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description='An IANA time zone ("Europe/Paris", "America/New_York"), "UTC" or "+05:30"',
    ),
]
DateText = Annotated[
    str, Field(min_length=1, max_length=64, description=f"A date or date-time: {_ISO_HINT}")
]


def _zone(name: str) -> tzinfo:
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "ZULU"):
        return UTC
    offset = _OFFSET.match(text)
    if offset:
        sign, hours, minutes = offset.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta >= timedelta(hours=24):
            raise PermanentToolError(f"{name!r} is not a valid UTC offset; use -23:59 to +23:59")
        return fixed_offset(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PermanentToolError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or "
            "'America/New_York', 'UTC', or an offset like '+05:30'"
        ) from None


def _offset(moment: datetime) -> str:
    """``+HH:MM`` (strftime's ``%:z`` only arrived in Python 3.12)."""
    minutes = int((moment.utcoffset() or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone_label(zone: tzinfo, moment: datetime) -> str:
    if isinstance(zone, ZoneInfo):
        return str(zone)
    return "UTC" if zone is UTC else f"UTC{_offset(moment)}"


def _parse(text: str, zone: tzinfo) -> tuple[datetime, bool]:
    """The moment ``text`` names, aware (naive input is read in ``zone``), and whether it was
    a bare date."""
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return datetime.now(zone), False
    if lowered == "today":
        return datetime.combine(datetime.now(zone).date(), datetime.min.time(), zone), True
    try:
        if len(value) <= 10 and ":" not in value:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), zone), True
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PermanentToolError(f"{text!r} is not a date; {_ISO_HINT}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment, False


def _normalise(moment: datetime) -> datetime:
    """A wall time that does not exist (skipped by a DST change) moved to the real one."""
    zone = moment.tzinfo
    return moment.astimezone(UTC).astimezone(zone) if zone is not None else moment


def _add_months(moment: datetime, months: int) -> datetime:
    years, month_index = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    if not 1 <= year <= 9999:
        raise PermanentToolError("the result falls outside the years 1 to 9999")
    day = min(moment.day, calendar.monthrange(year, month_index + 1)[1])
    return moment.replace(year=year, month=month_index + 1, day=day)


class TimeInfo(TypedDict):
    """A moment in one time zone."""

    iso: Annotated[str, Field(description="ISO 8601 with offset, e.g. 2024-03-31T14:30:00+02:00")]
    timezone: str
    utc_offset: Annotated[str, Field(description='e.g. "+02:00"')]
    date: Annotated[str, Field(description="YYYY-MM-DD")]
    time: Annotated[str, Field(description="HH:MM:SS")]
    weekday: Annotated[str, Field(description='e.g. "Sunday"')]
    unix: Annotated[int, Field(description="Seconds since 1970-01-01T00:00:00Z")]


def _info(moment: datetime, zone: tzinfo) -> TimeInfo:
    return TimeInfo(
        iso=moment.isoformat(timespec="seconds"),
        timezone=_zone_label(zone, moment),
        utc_offset=_offset(moment),
        date=moment.date().isoformat(),
        time=moment.strftime("%H:%M:%S"),
        weekday=moment.strftime("%A"),
        unix=int(moment.timestamp()),
    )


@tool(
    category="system",
    side_effects=False,
    idempotent=True,
    timeout=5.0,
    retry=_NO_RETRY,
    reads_private=False,  # the clock is no one's private data
    egress=False,
    untrusted_output=False,
)
def now(timezone: TimeZoneName = "UTC") -> TimeInfo:
    """The current date and time in a time zone.

    Args:
        timezone: Where, e.g. "Asia/Tokyo".
    """
    zone = _zone(timezone)
    return _info(datetime.now(zone).replace(microsecond=0), zone)


@_date_tool
def convert_time(
    time: DateText, to_timezone: TimeZoneName, from_timezone: TimeZoneName = "UTC"
) -> TimeInfo:
    """Convert a date-time to another time zone, e.g. 09:00 in Paris to Tokyo time.

    Args:
        time: The date-time; without an offset it is read in from_timezone.
        to_timezone: The zone to convert to.
        from_timezone: The zone of a time given without an offset.
    """
    moment, _ = _parse(time, _zone(from_timezone))
    zone = _zone(to_timezone)
    try:
        return _info(moment.astimezone(zone), zone)
    except OverflowError:
        raise PermanentToolError("the result falls outside the years 1 to 9999") from None


class DateResult(TypedDict):
    result: Annotated[
        str, Field(description="ISO 8601: a date if a date was given, else with time")
    ]
    date: Annotated[str, Field(description="YYYY-MM-DD")]
    weekday: str
    timezone: str


@_date_tool
def date_add(
    start: DateText,
    years: Annotated[int, Field(ge=-10_000, le=10_000)] = 0,
    months: Annotated[int, Field(ge=-120_000, le=120_000)] = 0,
    weeks: Annotated[int, Field(ge=-530_000, le=530_000)] = 0,
    days: Annotated[int, Field(ge=-3_700_000, le=3_700_000)] = 0,
    hours: Annotated[int, Field(ge=-88_000_000, le=88_000_000)] = 0,
    minutes: Annotated[int, Field(ge=-5_300_000_000, le=5_300_000_000)] = 0,
    seconds: Annotated[int, Field(ge=-316_000_000_000, le=316_000_000_000)] = 0,
    timezone: TimeZoneName = "UTC",
) -> DateResult:
    """Add (or, with negative numbers, subtract) years, months, weeks, days, hours, minutes and
    seconds to a date or date-time. Calendar units keep the local time across DST changes.

    Args:
        start: The date or date-time to start from ("today" and "now" work).
        years: Years to add.
        months: Months to add (the day is clamped to the month's end).
        weeks: Weeks to add.
        days: Days to add.
        hours: Hours of elapsed time to add.
        minutes: Minutes of elapsed time to add.
        seconds: Seconds of elapsed time to add.
        timezone: The zone for "now"/"today" and for a start given without an offset.
    """
    zone = _zone(timezone)
    moment, date_only = _parse(start, zone)
    try:
        shifted = _add_months(moment, years * 12 + months)
        shifted = _normalise(shifted + timedelta(weeks=weeks, days=days))
        elapsed = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        if elapsed:
            target_zone = shifted.tzinfo or zone
            shifted = (shifted.astimezone(UTC) + elapsed).astimezone(target_zone)
    except (OverflowError, ValueError):
        raise PermanentToolError("the result falls outside the years 1 to 9999") from None
    keep_date = date_only and not elapsed
    return DateResult(
        result=shifted.date().isoformat() if keep_date else shifted.isoformat(),
        date=shifted.date().isoformat(),
        weekday=shifted.strftime("%A"),
        timezone=_zone_label(shifted.tzinfo or zone, shifted),
    )


class DateDiff(TypedDict):
    """From start to end; every number is negative when end is before start."""

    total_seconds: float
    total_days: Annotated[float, Field(description="Elapsed days, with fractions")]
    years: Annotated[int, Field(description="Calendar breakdown: whole years ...")]
    months: Annotated[int, Field(description="... then whole months ...")]
    days: Annotated[int, Field(description="... then days ...")]
    hours: int
    minutes: int
    seconds: int
    text: Annotated[str, Field(description='e.g. "1 year, 2 months, 3 days"')]


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if abs(n) == 1 else 's'}"


@_date_tool
def date_diff(start: DateText, end: DateText, timezone: TimeZoneName = "UTC") -> DateDiff:
    """The time between two dates or date-times: elapsed totals and a calendar breakdown
    (years, months, days, hours, minutes, seconds).

    Args:
        start: The earlier date (if it is later, the numbers come out negative).
        end: The later date ("today" and "now" work).
        timezone: The zone for "now"/"today", for dates given without an offset, and for
            counting calendar days.
    """
    zone = _zone(timezone)
    first, _ = _parse(start, zone)
    second, _ = _parse(end, zone)
    # Subtracting two datetimes of the same tzinfo ignores DST (wall-clock arithmetic): go via UTC.
    elapsed = (second.astimezone(UTC) - first.astimezone(UTC)).total_seconds()
    sign = -1 if elapsed < 0 else 1
    low, high = (first, second) if sign > 0 else (second, first)
    # The breakdown counts on the wall clock of one zone, as a calendar on the wall would.
    low_wall = low.astimezone(zone).replace(tzinfo=None)
    high_wall = high.astimezone(zone).replace(tzinfo=None)
    months = (high_wall.year - low_wall.year) * 12 + high_wall.month - low_wall.month
    if months and _add_months(low_wall, months) > high_wall:
        months -= 1
    rest = high_wall - _add_months(low_wall, months)
    parts = {
        "years": sign * (months // 12),
        "months": sign * (months % 12),
        "days": sign * rest.days,
        "hours": sign * (rest.seconds // 3600),
        "minutes": sign * (rest.seconds % 3600 // 60),
        "seconds": sign * (rest.seconds % 60),
    }
    text = ", ".join(_plural(abs(n), unit[:-1]) for unit, n in parts.items() if n) or "0 seconds"
    if sign < 0:
        text += " (end is before start)"
    return DateDiff(
        total_seconds=elapsed,
        total_days=elapsed / 86_400,
        years=parts["years"],
        months=parts["months"],
        days=parts["days"],
        hours=parts["hours"],
        minutes=parts["minutes"],
        seconds=parts["seconds"],
        text=text,
    )


TOOLS = [now, convert_time, date_add, date_diff]
