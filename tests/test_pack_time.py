"""The time pack: now, time zone conversion and DST-correct date arithmetic."""

from __future__ import annotations

import time as stdlib_time
from datetime import UTC, datetime, timedelta

import pytest

from packs_fixtures import pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError

registry = pack_registry("time")


def test_the_pack_named_time_does_not_shadow_the_standard_library() -> None:
    import tooldag.packs.time as pack

    assert stdlib_time.monotonic() > 0
    assert pack.__name__ == "tooldag.packs.time"
    assert pack.now.name == "now"


def test_now_is_the_current_time_in_the_zone() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    out = registry.execute("now", timezone="Asia/Tokyo")
    after = datetime.now(UTC)
    moment = datetime.fromisoformat(out["iso"])
    assert before <= moment <= after
    assert out["timezone"] == "Asia/Tokyo" and out["utc_offset"] == "+09:00"
    assert out["date"] == moment.date().isoformat() and out["weekday"] == moment.strftime("%A")
    assert out["unix"] == int(moment.timestamp())


def test_now_accepts_utc_and_fixed_offsets() -> None:
    assert registry.execute("now")["utc_offset"] == "+00:00"
    out = registry.execute("now", timezone="+05:30")
    assert out["utc_offset"] == "+05:30" and out["timezone"] == "UTC+05:30"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "+25:00"])
def test_unknown_time_zones_are_refused_with_examples(zone: str) -> None:
    with pytest.raises(PermanentToolError, match=r"Europe/Paris|offset"):
        registry.execute("now", timezone=zone)


def test_convert_time_between_zones() -> None:
    out = registry.execute(
        "convert_time",
        time="2024-07-01T09:00",
        from_timezone="Europe/Paris",
        to_timezone="America/New_York",
    )
    assert out["iso"] == "2024-07-01T03:00:00-04:00"
    assert out["timezone"] == "America/New_York"


def test_adding_a_day_across_spring_forward_keeps_the_wall_clock() -> None:
    out = registry.execute("date_add", start="2024-03-30T12:00", days=1, timezone="Europe/Paris")
    assert out["result"] == "2024-03-31T12:00:00+02:00"


def test_adding_24_hours_across_spring_forward_is_elapsed_time() -> None:
    out = registry.execute("date_add", start="2024-03-30T12:00", hours=24, timezone="Europe/Paris")
    assert out["result"] == "2024-03-31T13:00:00+02:00"


def test_a_wall_time_skipped_by_dst_moves_to_the_real_one() -> None:
    out = registry.execute("date_add", start="2024-03-30T02:30", days=1, timezone="Europe/Paris")
    assert out["result"] == "2024-03-31T03:30:00+02:00"


@pytest.mark.parametrize(
    ("start", "kwargs", "expected"),
    [
        ("2024-01-31", {"months": 1}, "2024-02-29"),
        ("2023-01-31", {"months": 1}, "2023-02-28"),
        ("2024-02-29", {"years": 1}, "2025-02-28"),
        ("2024-03-15", {"weeks": -2}, "2024-03-01"),
        ("2024-12-31", {"days": 1}, "2025-01-01"),
        ("2024-03-01", {"hours": 36}, "2024-03-02T12:00:00+00:00"),
    ],
)
def test_date_add_calendar_arithmetic(start: str, kwargs: dict[str, int], expected: str) -> None:
    assert registry.execute("date_add", start=start, **kwargs)["result"] == expected


def test_date_add_from_today_uses_the_zone() -> None:
    before = datetime.now(UTC).date()
    out = registry.execute("date_add", start="today", days=1, timezone="UTC")
    after = datetime.now(UTC).date()  # a run across midnight may see either day
    assert out["result"] in {(day + timedelta(days=1)).isoformat() for day in (before, after)}


def test_date_add_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(PermanentToolError, match="years 1 to 9999"):
        registry.execute("date_add", start="9999-12-31", days=1)
    with pytest.raises(PermanentToolError, match="years 1 to 9999"):
        registry.execute("date_add", start="2000-01-01", years=-5000)


def test_unparseable_dates_say_which_format_to_use() -> None:
    with pytest.raises(PermanentToolError, match="ISO 8601"):
        registry.execute("date_add", start="next tuesday", days=1)


def test_date_add_bounds_are_in_the_schema() -> None:
    with pytest.raises(ToolArgumentError, match="years"):
        registry.execute("date_add", start="2024-01-01", years=10**9)


def test_date_diff_gives_totals_and_a_calendar_breakdown() -> None:
    out = registry.execute("date_diff", start="2020-01-31", end="2024-03-01")
    assert (out["years"], out["months"], out["days"]) == (4, 1, 1)
    assert out["total_days"] == 1491.0
    assert out["text"] == "4 years, 1 month, 1 day"


def test_date_diff_is_negative_when_end_is_before_start() -> None:
    out = registry.execute("date_diff", start="2024-03-02T06:00", end="2024-03-01")
    assert (out["days"], out["hours"]) == (-1, -6)
    assert out["total_seconds"] == -30 * 3600
    assert out["text"] == "1 day, 6 hours (end is before start)"


def test_date_diff_across_dst_counts_elapsed_hours_and_calendar_days() -> None:
    out = registry.execute(
        "date_diff", start="2024-03-30T12:00", end="2024-03-31T12:00", timezone="Europe/Paris"
    )
    assert out["total_seconds"] == 23 * 3600  # the night lost an hour
    assert (out["days"], out["hours"]) == (1, 0)  # but on the calendar it is one day


def test_date_diff_compares_different_offsets_as_moments() -> None:
    out = registry.execute(
        "date_diff", start="2024-06-01T12:00:00+02:00", end="2024-06-01T12:00:00+00:00"
    )
    assert out["total_seconds"] == 7200 and out["text"] == "2 hours"


def test_time_tools_are_read_only_and_typed() -> None:
    for t in registry:
        assert t.side_effects is False and t.idempotent is True and t.output_schema is not None
