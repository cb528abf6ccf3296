"""Schedule timing: cron in a zone across daylight saving, intervals, one-shots, bounds, misfires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniq.errors import ConfigError
from omniq.models import MisfirePolicy, Schedule, ScheduleKind
from omniq.schedules import due_ticks, next_fire_after, next_fires, to_epoch, validate_schedule

HOUR = 3600.0


def cron(expr: str, tz: str = "UTC", **kw: Any) -> Schedule:
    return Schedule(
        id="s", func="m:f", payload=b"", kind=ScheduleKind.CRON, cron=expr, timezone=tz, **kw
    )


def every(seconds: float, **kw: Any) -> Schedule:
    return Schedule(
        id="s", func="m:f", payload=b"", kind=ScheduleKind.INTERVAL, interval=seconds, **kw
    )


def once(at: float | None, **kw: Any) -> Schedule:
    return Schedule(id="s", func="m:f", payload=b"", kind=ScheduleKind.ONCE, at=at, **kw)


def ts(iso: str) -> float:
    """Epoch seconds of an ISO time with an explicit offset."""
    value = datetime.fromisoformat(iso)
    assert value.tzinfo is not None
    return value.timestamp()


def local_midnight(tz: str, y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=ZoneInfo(tz)).timestamp()


def fires_between(schedule: Schedule, start: float, end: float) -> list[float]:
    """Fire times in [start, end)."""
    out: list[float] = []
    t = next_fire_after(schedule, start - 1e-3)
    while t is not None and t < end:
        out.append(t)
        t = next_fire_after(schedule, t)
    return out


# --------------------------------------------------------------------------- daylight saving

# zone, day of the spring-forward gap, a wall time inside the gap, the instant the gap ends
GAPS = [
    ("Europe/Berlin", (2024, 3, 31), "30 2 * * *", "2024-03-31T03:00:00+02:00"),
    ("America/New_York", (2024, 3, 10), "30 2 * * *", "2024-03-10T03:00:00-04:00"),
    ("Australia/Sydney", (2024, 10, 6), "30 2 * * *", "2024-10-06T03:00:00+11:00"),
    ("Australia/Lord_Howe", (2024, 10, 6), "15 2 * * *", "2024-10-06T02:30:00+11:00"),
]

# zone, day of the fall-back overlap, a wall time inside it, its first occurrence
OVERLAPS = [
    ("Europe/Berlin", (2024, 10, 27), "30 2 * * *", "2024-10-27T02:30:00+02:00"),
    ("America/New_York", (2024, 11, 3), "30 1 * * *", "2024-11-03T01:30:00-04:00"),
    ("Australia/Sydney", (2024, 4, 7), "30 2 * * *", "2024-04-07T02:30:00+11:00"),
    ("Australia/Lord_Howe", (2024, 4, 7), "45 1 * * *", "2024-04-07T01:45:00+11:00"),
]


def _day_fires(tz: str, day: tuple[int, int, int], schedule: Schedule) -> list[float]:
    start = local_midnight(tz, *day)
    nxt = datetime(*day) + timedelta(days=1)
    return fires_between(schedule, start, local_midnight(tz, nxt.year, nxt.month, nxt.day))


@pytest.mark.parametrize(("tz", "day", "expr", "expected"), GAPS)
def test_wall_time_in_the_gap_fires_once_right_after_it(
    tz: str, day: tuple[int, int, int], expr: str, expected: str
) -> None:
    fires = _day_fires(tz, day, cron(expr, tz))
    assert fires == [ts(expected)]


@pytest.mark.parametrize(("tz", "day", "expr", "expected"), GAPS)
def test_many_wall_times_in_the_gap_fire_once(
    tz: str, day: tuple[int, int, int], expr: str, expected: str
) -> None:
    # Every minute of the gap hour names a time that does not exist: one fire at the gap's end,
    # then the minutes that do exist.
    hour = expr.split()[1]
    fires = _day_fires(tz, day, cron(f"* {hour} * * *", tz))
    assert fires[0] == ts(expected)
    assert len(fires) == len(set(fires))
    assert all(b - a == 60.0 for a, b in pairwise(fires[1:]))


@pytest.mark.parametrize(("tz", "day", "expr", "expected"), OVERLAPS)
def test_repeated_wall_time_fires_once_at_first_occurrence(
    tz: str, day: tuple[int, int, int], expr: str, expected: str
) -> None:
    assert _day_fires(tz, day, cron(expr, tz)) == [ts(expected)]


@pytest.mark.parametrize(("tz", "day", "expr", "expected"), OVERLAPS)
def test_after_inside_the_repeat_does_not_fire_the_wall_time_again(
    tz: str, day: tuple[int, int, int], expr: str, expected: str
) -> None:
    first = ts(expected)
    # An hour after the first occurrence is the second occurrence (30 min on Lord Howe).
    shift = 1800.0 if tz == "Australia/Lord_Howe" else HOUR
    nxt = next_fire_after(cron(expr, tz), first + shift - 1.0)
    assert nxt is not None
    assert nxt - first > 20 * HOUR


@pytest.mark.parametrize("spec", ["cron", "interval"])
@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("Europe/Berlin", (2024, 3, 31), 23),
        ("Europe/Berlin", (2024, 10, 27), 25),
        ("America/New_York", (2024, 3, 10), 23),
        ("America/New_York", (2024, 11, 3), 25),
        ("Australia/Sydney", (2024, 10, 6), 23),
        ("Australia/Sydney", (2024, 4, 7), 25),
        ("Asia/Kolkata", (2024, 3, 31), 24),
        ("Asia/Kolkata", (2024, 10, 27), 24),
        ("Europe/Berlin", (2024, 7, 1), 24),
    ],
)
def test_hourly_fires_once_per_elapsed_hour(
    spec: str, tz: str, day: tuple[int, int, int], hours: int
) -> None:
    start = local_midnight(tz, *day)
    schedule = cron("0 * * * *", tz) if spec == "cron" else every(HOUR, start_at=start)
    fires = _day_fires(tz, day, schedule)
    assert len(fires) == hours
    assert fires[0] == start
    assert all(b - a == HOUR for a, b in pairwise(fires))


@pytest.mark.parametrize(
    ("day", "expected_len"),
    [((2024, 10, 6), 23), ((2024, 4, 7), 24)],  # a 23.5-hour and a 24.5-hour day
)
def test_hourly_cron_on_a_half_hour_shift(day: tuple[int, int, int], expected_len: int) -> None:
    # Lord Howe moves 30 min: 02:00-02:29 do not exist in October (so 02:00 is skipped: an hour
    # field of '*' runs on the real local clock), 01:30-01:59 repeat in April (no :00 in there).
    tz = "Australia/Lord_Howe"
    fires = _day_fires(tz, day, cron("0 * * * *", tz))
    assert len(fires) == expected_len
    zone = ZoneInfo(tz)
    walls = [datetime.fromtimestamp(t, zone).strftime("%H:%M") for t in fires]
    assert len(set(walls)) == len(walls)
    assert all(w.endswith(":00") for w in walls)
    assert sorted(set(fires)) == fires
    if day == (2024, 10, 6):
        assert "02:00" not in walls
        assert ts("2024-10-06T03:00:00+11:00") - ts("2024-10-06T01:00:00+10:30") == 1.5 * HOUR
        assert ts("2024-10-06T03:00:00+11:00") in fires


def test_hourly_cron_over_a_dst_year_is_every_real_hour() -> None:
    tz = "Europe/Berlin"
    fires = fires_between(
        cron("0 * * * *", tz), local_midnight(tz, 2024, 1, 1), local_midnight(tz, 2025, 1, 1)
    )
    assert len(fires) == 366 * 24
    assert all(b - a == HOUR for a, b in pairwise(fires))


@pytest.mark.parametrize(
    "tz",
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ],
)
def test_daily_fixed_time_over_a_dst_year_fires_once_a_day(tz: str) -> None:
    zone = ZoneInfo(tz)
    fires = fires_between(
        cron("30 2 * * *", tz), local_midnight(tz, 2024, 1, 1), local_midnight(tz, 2025, 1, 1)
    )
    dates = [datetime.fromtimestamp(t, zone).date() for t in fires]
    assert len(fires) == 366
    assert len(set(dates)) == 366
    assert sorted(set(fires)) == fires


@pytest.mark.parametrize(
    "tz",
    [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ],
)
@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ((2023, 12, 30, 12), [(2023, 12, 31), (2024, 1, 1), (2024, 1, 2)]),
        ((2024, 2, 27, 12), [(2024, 2, 28), (2024, 2, 29), (2024, 3, 1)]),
        ((2023, 2, 27, 12), [(2023, 2, 28), (2023, 3, 1), (2023, 3, 2)]),
    ],
)
def test_daily_midnight_keeps_the_zone_across_month_and_year_ends(
    tz: str, after: tuple[int, int, int, int], expected: list[tuple[int, int, int]]
) -> None:
    zone = ZoneInfo(tz)
    start = datetime(*after, tzinfo=zone).timestamp()
    fires = next_fires(cron("0 0 * * *", tz), start, 3)
    assert fires == [datetime(*d, tzinfo=zone).timestamp() for d in expected]


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Australia/Sydney", "Asia/Kolkata"])
def test_monthly_across_the_year_end(tz: str) -> None:
    zone = ZoneInfo(tz)
    fires = next_fires(cron("0 9 1 * *", tz), datetime(2024, 11, 15, tzinfo=zone).timestamp(), 3)
    assert fires == [
        datetime(2024, 12, 1, 9, tzinfo=zone).timestamp(),
        datetime(2025, 1, 1, 9, tzinfo=zone).timestamp(),
        datetime(2025, 2, 1, 9, tzinfo=zone).timestamp(),
    ]


def test_cron_is_read_in_the_schedule_zone() -> None:
    after = ts("2024-06-01T00:00:00+00:00")
    assert next_fire_after(cron("0 9 * * *", "Asia/Kolkata"), after) == ts(
        "2024-06-01T09:00:00+05:30"
    )
    assert next_fire_after(cron("0 9 * * *", "America/New_York"), after) == ts(
        "2024-06-01T09:00:00-04:00"
    )


# --------------------------------------------------------------------------- cron details


def test_six_field_cron_has_seconds_last() -> None:
    after = ts("2024-06-01T08:59:00+00:00")
    assert next_fires(cron("0 9 * * * 30"), after, 2) == [
        ts("2024-06-01T09:00:30+00:00"),
        ts("2024-06-02T09:00:30+00:00"),
    ]
    assert next_fires(cron("* * * * * */10"), ts("2024-06-01T00:00:05+00:00"), 3) == [
        ts("2024-06-01T00:00:10+00:00"),
        ts("2024-06-01T00:00:20+00:00"),
        ts("2024-06-01T00:00:30+00:00"),
    ]


def test_six_field_cron_in_the_gap() -> None:
    fires = _day_fires("Europe/Berlin", (2024, 3, 31), cron("*/30 2 * * * 15", "Europe/Berlin"))
    assert fires == [ts("2024-03-31T03:00:00+02:00")]


def test_next_fire_is_strictly_after() -> None:
    t = ts("2024-06-01T09:00:00+00:00")
    assert next_fire_after(cron("0 9 * * *"), t) == t + 24 * HOUR
    assert next_fire_after(cron("0 9 * * *"), t - 0.5) == t
    assert next_fire_after(cron("0 9 * * *"), t - 1e-6) == t


# --------------------------------------------------------------------------- interval, once, bounds


def test_interval_grid_is_anchored_at_start_at() -> None:
    s = every(90.0, start_at=1000.0)
    assert next_fire_after(s, 0.0) == 1000.0
    assert next_fire_after(s, 1000.0) == 1090.0
    assert next_fires(s, 1100.0, 3) == [1180.0, 1270.0, 1360.0]


def test_interval_without_start_is_anchored_at_the_epoch() -> None:
    assert next_fire_after(every(HOUR), ts("2024-06-01T10:20:00+00:00")) == ts(
        "2024-06-01T11:00:00+00:00"
    )


def test_interval_is_real_seconds_whatever_the_zone() -> None:
    start = local_midnight("Europe/Berlin", 2024, 10, 27)
    s = every(6 * HOUR, start_at=start, timezone="Europe/Berlin")
    assert next_fires(s, start, 4) == [start + k * 6 * HOUR for k in (1, 2, 3, 4)]


def test_fractional_interval() -> None:
    assert next_fires(every(0.25), 10.0, 3) == [10.25, 10.5, 10.75]


def test_once_fires_once() -> None:
    s = once(5000.0)
    assert next_fire_after(s, 0.0) == 5000.0
    assert next_fire_after(s, 5000.0) is None
    assert next_fires(s, 0.0, 5) == [5000.0]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [({"start_at": 6000.0}, None), ({"end_at": 4000.0}, None), ({"end_at": 5000.0}, 5000.0)],
)
def test_once_honours_bounds(kw: dict[str, float], expected: float | None) -> None:
    assert next_fire_after(once(5000.0, **kw), 0.0) == expected


def test_start_and_end_bounds_are_inclusive() -> None:
    day = 86400.0
    nine = ts("2024-06-01T09:00:00+00:00")
    s = cron("0 9 * * *", start_at=nine, end_at=nine + 2 * day)
    assert next_fires(s, 0.0, 10) == [nine, nine + day, nine + 2 * day]
    assert next_fire_after(s, nine + 2 * day) is None
    late = cron("0 9 * * *", start_at=nine + 1.5)
    assert next_fire_after(late, 0.0) == nine + day
    assert next_fires(every(10.0, start_at=5.0, end_at=25.0), 0.0, 10) == [5.0, 15.0, 25.0]


def test_start_in_the_middle_of_the_day() -> None:
    start = ts("2024-06-01T09:30:00+00:00")
    s = cron("0 * * * *", start_at=start)
    assert next_fire_after(s, 0.0) == ts("2024-06-01T10:00:00+00:00")


# --------------------------------------------------------------------------- misfires


def _hourly(policy: MisfirePolicy, **kw: Any) -> Schedule:
    return every(HOUR, misfire=policy, **kw)


def test_run_once_runs_the_latest_missed_tick() -> None:
    ticks, nxt = due_ticks(_hourly(MisfirePolicy.RUN_ONCE), 10 * HOUR, 15.5 * HOUR)
    assert ticks == [15 * HOUR]
    assert nxt == 16 * HOUR


def test_run_once_after_a_long_outage_of_a_cron() -> None:
    s = cron("* * * * * *", misfire=MisfirePolicy.RUN_ONCE)
    tick = ts("2024-01-01T00:00:00+00:00")
    now = tick + 30 * 86400.0 + 0.5
    assert due_ticks(s, tick, now) == ([now - 0.5], now + 0.5)


def test_on_time_tick_runs_under_every_policy() -> None:
    for policy in MisfirePolicy:
        assert due_ticks(_hourly(policy), 10 * HOUR, 10 * HOUR + 1) == ([10 * HOUR], 11 * HOUR)


@pytest.mark.parametrize(
    ("late", "runs"),
    [(0.0, True), (59.0, True), (60.0, True), (61.0, False), (1800.0, False)],
)
def test_skip_runs_only_within_the_grace(late: float, runs: bool) -> None:
    tick = 10 * HOUR
    ticks, nxt = due_ticks(_hourly(MisfirePolicy.SKIP), tick, tick + late)
    assert ticks == ([tick] if runs else [])
    assert nxt == 11 * HOUR


def test_skip_grace_is_at_most_half_the_period() -> None:
    s = every(20.0, misfire=MisfirePolicy.SKIP)
    assert due_ticks(s, 100.0, 109.0) == ([100.0], 120.0)
    assert due_ticks(s, 100.0, 111.0) == ([], 120.0)
    # several periods missed: the latest missed tick counts
    assert due_ticks(s, 100.0, 165.0) == ([160.0], 180.0)


def test_skip_for_a_one_shot_uses_the_full_grace() -> None:
    s = once(100.0, misfire=MisfirePolicy.SKIP)
    assert due_ticks(s, 100.0, 150.0) == ([100.0], None)
    assert due_ticks(s, 100.0, 170.0) == ([], None)


def test_run_all_runs_every_missed_tick_oldest_first() -> None:
    ticks, nxt = due_ticks(_hourly(MisfirePolicy.RUN_ALL), 10 * HOUR, 13.5 * HOUR)
    assert ticks == [10 * HOUR, 11 * HOUR, 12 * HOUR, 13 * HOUR]
    assert nxt == 14 * HOUR


def test_run_all_stops_at_the_limit() -> None:
    s = _hourly(MisfirePolicy.RUN_ALL, misfire_limit=3)
    ticks, nxt = due_ticks(s, 10 * HOUR, 20.5 * HOUR)
    assert ticks == [10 * HOUR, 11 * HOUR, 12 * HOUR]
    assert nxt == 21 * HOUR


def test_due_ticks_respects_end_at() -> None:
    s = _hourly(MisfirePolicy.RUN_ALL, end_at=12 * HOUR)
    assert due_ticks(s, 10 * HOUR, 20 * HOUR) == ([10 * HOUR, 11 * HOUR, 12 * HOUR], None)
    s = _hourly(MisfirePolicy.RUN_ONCE, end_at=12 * HOUR)
    assert due_ticks(s, 10 * HOUR, 20 * HOUR) == ([12 * HOUR], None)


def test_due_ticks_before_the_tick_runs_nothing() -> None:
    assert due_ticks(_hourly(MisfirePolicy.RUN_ONCE), 10 * HOUR, 9 * HOUR) == ([], 10 * HOUR)


def test_run_all_over_the_gap_and_overlap() -> None:
    tz = "Europe/Berlin"
    s = cron("30 2 * * *", tz, misfire=MisfirePolicy.RUN_ALL)
    tick = ts("2024-03-30T02:30:00+01:00")
    ticks, nxt = due_ticks(s, tick, ts("2024-04-01T12:00:00+02:00"))
    assert ticks == [tick, ts("2024-03-31T03:00:00+02:00"), ts("2024-04-01T02:30:00+02:00")]
    assert nxt == ts("2024-04-02T02:30:00+02:00")


# --------------------------------------------------------------------------- inputs


def test_to_epoch() -> None:
    aware = datetime(2024, 1, 1, tzinfo=UTC)
    assert to_epoch(aware, "at") == aware.timestamp()
    assert to_epoch(datetime(2024, 7, 1, 2, tzinfo=ZoneInfo("Europe/Berlin")), "at") == ts(
        "2024-07-01T00:00:00+00:00"
    )
    assert to_epoch(12.5, "at") == 12.5
    assert to_epoch(12, "at") == 12.0


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"start_at: naive datetime"):
        to_epoch(datetime(2024, 1, 1), "start_at")


@pytest.mark.parametrize("value", [True, "2024-01-01", float("nan"), float("inf")])
def test_to_epoch_rejects_other_values(value: Any) -> None:
    with pytest.raises(ConfigError, match="end_at"):
        to_epoch(value, "end_at")


@pytest.mark.parametrize(
    ("schedule", "field", "words"),
    [
        (cron("0 * * * *", "Mars/Olympus"), "timezone", "IANA"),
        (cron("0 * * * *", "../../etc/passwd"), "timezone", "IANA"),
        (cron("0 * * *"), "cron", "5 fields"),
        (cron("0 * * * * * 2030"), "cron", "got 7"),
        (cron("61 * * * *"), "cron", "not a valid"),
        (cron("* * * * * 61"), "cron", "not a valid"),
        (cron("0 0 30 2 *"), "cron", "never matches"),
        (cron("@reboot"), "cron", "reboot"),
        (cron(""), "cron", "needs a cron"),
        (Schedule(id="s", func="m:f", payload=b"", kind=ScheduleKind.CRON), "cron", "needs"),
        (every(0.0), "interval", "> 0"),
        (every(-5.0), "interval", "> 0"),
        (every(float("inf")), "interval", "> 0"),
        (
            Schedule(id="s", func="m:f", payload=b"", kind=ScheduleKind.INTERVAL),
            "interval",
            "> 0",
        ),
        (once(None), "at", "needs 'at'"),
        (every(10.0, start_at=100.0, end_at=50.0), "end_at", "before start_at"),
        (every(10.0, jitter=-1.0), "jitter", ">= 0"),
        (every(10.0, misfire_limit=0), "misfire_limit", ">= 1"),
        (every(10.0, start_at=float("nan")), "start_at", "finite"),
    ],
)
def test_bad_schedules_raise_clear_config_errors(
    schedule: Schedule, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_schedule(schedule)
    message = str(info.value)
    assert f"schedule 's': {field}" in message
    assert words in message
    with pytest.raises(ConfigError):
        next_fire_after(schedule, 0.0)


@pytest.mark.parametrize(
    "schedule",
    [
        cron("0 9 * * 1-5", "Europe/Berlin"),
        cron("*/15 * * * * 30"),
        cron("@daily", "America/New_York"),
        every(1.5),
        once(10.0, start_at=0.0, end_at=20.0),
    ],
)
def test_good_schedules_validate(schedule: Schedule) -> None:
    validate_schedule(schedule)


# --------------------------------------------------------------------------- property

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "UTC",
]

# One instant on each side of each 2024 transition, and two ordinary ones.
ANCHORS = [
    ts(i)
    for i in (
        "2024-03-31T00:00:00+00:00",
        "2024-10-27T00:00:00+00:00",
        "2024-03-10T05:00:00+00:00",
        "2024-11-03T04:00:00+00:00",
        "2024-04-06T14:00:00+00:00",
        "2024-10-05T14:00:00+00:00",
        "2024-01-15T00:00:00+00:00",
        "2024-07-15T00:00:00+00:00",
    )
]


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.integers(1, max(1, (hi - lo) // 2)).map(lambda k: f"*/{k}"),
        st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(value, min_size=1, max_size=3, unique=True).map(
            lambda v: ",".join(map(str, sorted(v)))
        ),
    )


crons = st.tuples(
    _field(0, 59),
    _field(0, 23),
    st.sampled_from(["*", "*", "1", "1-15", "*/2"]),
    st.sampled_from(["*", "*", "3,4,10,11", "*/3"]),
    st.sampled_from(["*", "*", "0", "1-5"]),
    st.one_of(st.none(), _field(0, 59)),
).map(lambda f: " ".join(x for x in f if x is not None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    expr=crons,
    tz=st.sampled_from(ZONES),
    anchor=st.sampled_from(ANCHORS),
    offset=st.floats(-2 * 86400.0, 2 * 86400.0),
)
def test_fires_strictly_increase_and_never_repeat(
    expr: str, tz: str, anchor: float, offset: float
) -> None:
    schedule = cron(expr, tz)
    start = anchor + offset
    fires = next_fires(schedule, start, 40)
    assert fires, expr
    assert fires[0] > start
    assert all(a < b for a, b in pairwise(fires))
    # The set of fire times does not depend on where one starts looking.
    for a, b in pairwise(fires):
        assert next_fire_after(schedule, (a + b) / 2) == b
    # A cron naming hours fires each wall-clock time at most once (repeats fire only the first);
    # an hour field that means every hour runs on elapsed time and may fire a repeated wall time
    # twice. "Every hour" as croniter expands it: '*', '*/1', '0-23' — and also '0-0', which
    # croniter reads as every hour.
    if croniter(expr).expanded[1] != ["*"]:
        zone = ZoneInfo(tz)
        walls = [datetime.fromtimestamp(t, zone).replace(tzinfo=None) for t in fires]
        assert len(set(walls)) == len(walls)


@settings(max_examples=15, deadline=None)
@given(tz=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_daily_fixed_time_fires_once_every_day_of_a_dst_year(
    tz: str, hour: int, minute: int
) -> None:
    zone = ZoneInfo(tz)
    fires = fires_between(
        cron(f"{minute} {hour} * * *", tz),
        local_midnight(tz, 2024, 1, 1),
        local_midnight(tz, 2025, 1, 1),
    )
    dates = {datetime.fromtimestamp(t, zone).date() for t in fires}
    assert len(fires) == len(dates) == 366
