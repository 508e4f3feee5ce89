"""Calendar-aware triggers and the job registry, checked against hand-written answers.

The fire-time answers under ``tests/data/fire_times/`` were written from the KRX facts
(sessions, late opens, closures) and the documented schedule, never by this code; see
``tests/data/README.md``. Every trigger is asked with explicit dates: no clock patching.
"""

from __future__ import annotations

import csv
import pickle
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from services.common import market_calendar as market_calendar_module
from services.common.market_calendar import MarketCalendar
from services.common.settings import ConfigurationError, Settings, SettingsError, load_settings
from services.orchestrator import triggers as triggers_module
from services.orchestrator.jobs import JOB_NAMES, build_trigger, build_triggers, get_job
from services.orchestrator.triggers import (
    CalendarTrigger,
    ClockAlignedIntervalTrigger,
    InSessionIntervalTrigger,
    SessionAnchoredTrigger,
    TriggerError,
)

SEOUL = ZoneInfo("Asia/Seoul")
UTC = ZoneInfo("UTC")
FIRE_TIMES = Path(__file__).resolve().parents[1] / "data" / "fire_times"
NO_ENV_FILE = Path("/nonexistent/.env")
SESSION_JOBS = tuple(name for name in JOB_NAMES if name != "risk_checks")


def make_settings(**values: Any) -> Settings:
    """Defaults plus ``values`` as if given on the command line; never the host's env."""
    return load_settings(values, environ={}, env_file=NO_ENV_FILE)


def at(text: str) -> datetime:
    """An aware datetime from ISO 8601 with an offset, e.g. '2026-11-13T16:00+09:00'."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


def read_answers(name: str) -> list[tuple[str, str]]:
    with (FIRE_TIMES / name).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["job", "fire_time"]
    return [(job, fire_time) for job, fire_time in rows[1:]]


def window_rows(
    triggers: dict[str, CalendarTrigger], jobs: tuple[str, ...], start: datetime, end: datetime
) -> list[tuple[str, str]]:
    """``next-runs``-shaped rows: (job, ISO fire time), sorted by time then job."""
    fires = [(fire, job) for job in jobs for fire in triggers[job].fire_times(start, end)]
    return [(job, fire.isoformat()) for fire, job in sorted(fires)]


@pytest.fixture(scope="module")
def calendar(krx_calendar: MarketCalendar) -> MarketCalendar:
    """The real corrected KRX calendar (built once per run in conftest)."""
    return krx_calendar


@pytest.fixture(scope="module")
def seoul(calendar: MarketCalendar) -> dict[str, CalendarTrigger]:
    """The registry's triggers under the default settings (Asia/Seoul)."""
    return build_triggers(make_settings(), calendar=calendar)


# --- the registry builds one trigger a job ----------------------------------------------


def test_build_triggers_gives_each_registry_job_its_kind_of_trigger(
    seoul: dict[str, CalendarTrigger],
) -> None:
    assert tuple(seoul) == JOB_NAMES
    kinds = {name: type(trigger) for name, trigger in seoul.items()}
    assert kinds == {
        "signal_generation": SessionAnchoredTrigger,
        "position_monitoring": InSessionIntervalTrigger,
        "data_collection": SessionAnchoredTrigger,
        "indicator_calculation": SessionAnchoredTrigger,
        "watchlist_update": SessionAnchoredTrigger,
        "risk_checks": ClockAlignedIntervalTrigger,
    }


# --- fire times in a window equal the hand-written answers ------------------------------


@pytest.mark.parametrize(
    ("answer_file", "timezone", "jobs", "start", "end"),
    [
        pytest.param(
            "seoul_2026-11-09_to_2026-11-14_regular_week_no_risk_checks.csv",
            "Asia/Seoul", SESSION_JOBS, "2026-11-09T00:00+09:00", "2026-11-15T00:00+09:00",
            id="regular-week",
        ),
        pytest.param(
            "seoul_2026-11-19_exam_day_no_risk_checks.csv",
            "Asia/Seoul", SESSION_JOBS, "2026-11-19T00:00+09:00", "2026-11-20T00:00+09:00",
            id="exam-day",
        ),
        pytest.param(
            "seoul_2025-10-02_to_2025-10-11_chuseok.csv",
            "Asia/Seoul", JOB_NAMES, "2025-10-02T00:00+09:00", "2025-10-12T00:00+09:00",
            id="chuseok",
        ),
        pytest.param(
            "seoul_2025-12-29_to_2026-01-03_year_end.csv",
            "Asia/Seoul", JOB_NAMES, "2025-12-29T00:00+09:00", "2026-01-04T00:00+09:00",
            id="year-end-and-first-session",
        ),
        pytest.param(
            "utc_2026-11-19T00Z_to_2026-11-20T00Z_exam_day.csv",
            "UTC", JOB_NAMES, "2026-11-19T00:00+00:00", "2026-11-20T00:00+00:00",
            id="utc-timezone",
        ),
    ],
)
def test_fire_times_in_window_equal_the_answer_file(
    calendar: MarketCalendar, answer_file: str, timezone: str, jobs: tuple[str, ...],
    start: str, end: str,
) -> None:
    triggers = build_triggers(make_settings(timezone=timezone), calendar=calendar)
    assert window_rows(triggers, jobs, at(start), at(end)) == read_answers(answer_file)


def test_window_start_is_included_and_end_excluded(seoul: dict[str, CalendarTrigger]) -> None:
    fires = seoul["position_monitoring"].fire_times(
        at("2026-11-13T09:00+09:00"), at("2026-11-13T09:30+09:00")
    )
    assert fires == [at("2026-11-13T09:00+09:00"), at("2026-11-13T09:15+09:00")]


def test_risk_checks_fire_every_30_minutes_on_the_clock_every_day_of_a_week(
    seoul: dict[str, CalendarTrigger],
) -> None:
    fires = seoul["risk_checks"].fire_times(
        at("2026-11-09T00:00+09:00"), at("2026-11-15T00:00+09:00")
    )
    assert len(fires) == 6 * 48  # Monday..Saturday, 48 a day
    assert fires[0].isoformat() == "2026-11-09T00:00:00+09:00"
    assert fires[-1].isoformat() == "2026-11-14T23:30:00+09:00"
    assert all(f.minute in (0, 30) and f.second == 0 and f.microsecond == 0 for f in fires)
    assert all(later - earlier == timedelta(minutes=30) for earlier, later in zip(fires, fires[1:]))
    assert sum(f.date() == date(2026, 11, 14) for f in fires) == 48  # Saturday too


def test_risk_checks_start_at_the_next_clock_mark_not_at_now(
    seoul: dict[str, CalendarTrigger],
) -> None:
    next_fire = seoul["risk_checks"].get_next_fire_time(None, at("2026-11-14T12:07:31+09:00"))
    assert next_fire is not None and next_fire.isoformat() == "2026-11-14T12:30:00+09:00"


# --- timezones: the configured zone changes the display, never the KRX instants ---------


def test_utc_timezone_gives_the_same_instants_as_seoul_printed_in_utc(
    calendar: MarketCalendar, seoul: dict[str, CalendarTrigger]
) -> None:
    utc = build_triggers(make_settings(timezone="UTC"), calendar=calendar)
    start, end = at("2026-11-19T00:00+00:00"), at("2026-11-20T00:00+00:00")
    for job in JOB_NAMES:
        in_utc = utc[job].fire_times(start, end)
        assert in_utc == seoul[job].fire_times(start, end), job  # equal instants
        assert in_utc and all(f.utcoffset() == timedelta(0) for f in in_utc), job


def test_risk_checks_align_to_the_configured_wall_clock(calendar: MarketCalendar) -> None:
    start, end = at("2026-11-19T00:00+00:00"), at("2026-11-20T00:00+00:00")

    def risk_fires(timezone: str, interval: int) -> list[datetime]:
        settings = make_settings(timezone=timezone, risk_check_interval=str(interval))
        return build_trigger(get_job("risk_checks"), settings, calendar).fire_times(start, end)

    # every 120 min: UTC marks are 00:00Z, 02:00Z, ...; Seoul marks (+09:00) fall on odd UTC hours
    assert risk_fires("UTC", 120) == [
        datetime(2026, 11, 19, hour, tzinfo=UTC) for hour in range(0, 24, 2)
    ]
    assert risk_fires("Asia/Seoul", 120) == [
        datetime(2026, 11, 19, hour, tzinfo=UTC) for hour in range(1, 24, 2)
    ]
    # Kathmandu (+05:45): its :00 and :30 are :15 and :45 in UTC
    kathmandu = risk_fires("Asia/Kathmandu", 30)
    assert kathmandu[:2] == [at("2026-11-19T06:00+05:45"), at("2026-11-19T06:30+05:45")]
    assert [f.astimezone(UTC).minute for f in kathmandu] == [15, 45] * 24
    assert all(f.minute in (0, 30) for f in kathmandu)


# --- get_next_fire_time, APScheduler's contract -----------------------------------------


@pytest.mark.parametrize(
    ("job", "now", "expected"),
    [
        ("signal_generation", "2026-11-13T08:45+09:00", "2026-11-13T08:45:00+09:00"),
        ("signal_generation", "2026-11-13T08:45:00.000001+09:00", "2026-11-16T08:45:00+09:00"),
        ("position_monitoring", "2026-11-13T10:07+09:00", "2026-11-13T10:15:00+09:00"),
        ("position_monitoring", "2026-11-13T15:31+09:00", "2026-11-16T09:00:00+09:00"),
        ("data_collection", "2026-11-13T20:00+09:00", "2026-11-16T16:00:00+09:00"),
        ("data_collection", "2026-11-19T16:00+09:00", "2026-11-19T17:00:00+09:00"),
        ("signal_generation", "2025-12-30T08:46+09:00", "2026-01-02T09:45:00+09:00"),
        ("position_monitoring", "2025-10-02T15:30:01+09:00", "2025-10-10T09:00:00+09:00"),
        ("watchlist_update", "2025-10-03T00:00+09:00", "2025-10-10T18:00:00+09:00"),
    ],
)
def test_next_fire_without_previous_is_the_first_fire_at_or_after_now(
    seoul: dict[str, CalendarTrigger], job: str, now: str, expected: str
) -> None:
    fire = seoul[job].get_next_fire_time(None, at(now))
    assert fire is not None and fire.isoformat() == expected


@pytest.mark.parametrize(
    ("job", "previous", "now", "expected"),
    [
        # strictly after previous, although earlier than now (the scheduler sees the misfire)
        ("position_monitoring", "2026-11-13T10:00+09:00", "2026-11-13T14:07+09:00",
         "2026-11-13T10:15:00+09:00"),
        ("signal_generation", "2026-11-09T08:45+09:00", "2026-11-12T12:00+09:00",
         "2026-11-10T08:45:00+09:00"),
        # Friday evening to Monday
        ("signal_generation", "2026-11-13T08:45+09:00", "2026-11-13T20:00+09:00",
         "2026-11-16T08:45:00+09:00"),
        ("position_monitoring", "2026-11-13T15:30+09:00", "2026-11-13T20:00+09:00",
         "2026-11-16T09:00:00+09:00"),
        ("watchlist_update", "2026-11-13T18:00+09:00", "2026-11-13T20:00+09:00",
         "2026-11-16T18:00:00+09:00"),
        # across Chuseok and Hangul Day (2025-10-03, 10-06..10-09 closed)
        ("signal_generation", "2025-10-02T08:45+09:00", "2025-10-02T08:45+09:00",
         "2025-10-10T08:45:00+09:00"),
        ("data_collection", "2025-10-02T16:00+09:00", "2025-10-02T16:00+09:00",
         "2025-10-10T16:00:00+09:00"),
        # across year end (12-31 and 01-01 closed) into the 10:00 first session
        ("signal_generation", "2025-12-30T08:45+09:00", "2025-12-30T08:45+09:00",
         "2026-01-02T09:45:00+09:00"),
        ("position_monitoring", "2025-12-30T15:30+09:00", "2025-12-30T15:30+09:00",
         "2026-01-02T10:00:00+09:00"),
        ("indicator_calculation", "2025-12-30T17:00+09:00", "2025-12-30T17:00+09:00",
         "2026-01-02T17:00:00+09:00"),
        # single-day closures: local elections (Wed) and Constitution Day (Fri)
        ("signal_generation", "2026-06-02T08:45+09:00", "2026-06-02T08:45+09:00",
         "2026-06-04T08:45:00+09:00"),
        ("data_collection", "2026-07-16T16:00+09:00", "2026-07-16T16:00+09:00",
         "2026-07-20T16:00:00+09:00"),
        # into the exam day: post-close jobs follow the 16:30 close
        ("data_collection", "2026-11-18T16:00+09:00", "2026-11-18T16:00+09:00",
         "2026-11-19T17:00:00+09:00"),
        ("position_monitoring", "2026-11-19T16:15+09:00", "2026-11-19T16:15+09:00",
         "2026-11-19T16:30:00+09:00"),
        # risk checks run on holidays and weekends
        ("risk_checks", "2025-10-04T23:30+09:00", "2025-10-04T23:30+09:00",
         "2025-10-05T00:00:00+09:00"),
    ],
)
def test_next_fire_with_previous_is_the_first_fire_strictly_after_previous(
    seoul: dict[str, CalendarTrigger], job: str, previous: str, now: str, expected: str
) -> None:
    fire = seoul[job].get_next_fire_time(at(previous), at(now))
    assert fire is not None and fire.isoformat() == expected


def test_next_fire_is_in_the_configured_timezone(calendar: MarketCalendar) -> None:
    utc = build_triggers(make_settings(timezone="UTC"), calendar=calendar)
    fire = utc["data_collection"].get_next_fire_time(None, at("2026-11-19T12:00+09:00"))
    assert fire is not None and fire.isoformat() == "2026-11-19T08:00:00+00:00"


def test_session_jobs_have_no_fire_past_the_end_of_the_calendar_data(
    calendar: MarketCalendar, seoul: dict[str, CalendarTrigger]
) -> None:
    past_the_end = datetime.combine(
        calendar.last_date + timedelta(days=1), datetime.min.time(), SEOUL
    )
    for job, trigger in seoul.items():
        if job != "risk_checks":
            assert trigger.get_next_fire_time(None, past_the_end) is None, job


def test_risk_checks_need_no_calendar_and_go_on_past_its_end(
    calendar: MarketCalendar, seoul: dict[str, CalendarTrigger]
) -> None:
    past_the_end = datetime.combine(calendar.last_date + timedelta(days=1), datetime.min.time(), SEOUL)
    fire = seoul["risk_checks"].get_next_fire_time(None, past_the_end + timedelta(minutes=1))
    assert fire is not None and fire.isoformat() == "2028-01-01T00:30:00+09:00"


def test_naive_datetimes_are_rejected(seoul: dict[str, CalendarTrigger]) -> None:
    with pytest.raises(TriggerError, match="timezone-aware"):
        seoul["signal_generation"].get_next_fire_time(None, datetime(2026, 11, 13, 8, 0))
    with pytest.raises(TriggerError, match="timezone-aware"):
        seoul["risk_checks"].fire_times(datetime(2026, 11, 13), at("2026-11-14T00:00+09:00"))


# --- previous_fire_time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "now", "expected"),
    [
        ("data_collection", "2025-10-08T12:00+09:00", "2025-10-02T16:00:00+09:00"),
        ("position_monitoring", "2026-11-19T10:07+09:00", "2026-11-19T10:00:00+09:00"),
        ("position_monitoring", "2026-11-19T10:15+09:00", "2026-11-19T10:15:00+09:00"),
        ("position_monitoring", "2026-11-19T20:00+09:00", "2026-11-19T16:30:00+09:00"),
        # the first session's signal is 09:45, so at 09:00 the latest is the previous session's
        ("signal_generation", "2026-01-02T09:00+09:00", "2025-12-30T08:45:00+09:00"),
        ("watchlist_update", "2026-11-16T07:00+09:00", "2026-11-13T18:00:00+09:00"),
        ("risk_checks", "2026-11-14T12:10+09:00", "2026-11-14T12:00:00+09:00"),
    ],
)
def test_previous_fire_time_is_the_latest_fire_at_or_before_now(
    seoul: dict[str, CalendarTrigger], job: str, now: str, expected: str
) -> None:
    fire = seoul[job].previous_fire_time(at(now))
    assert fire is not None and fire.isoformat() == expected


# --- trading_date ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "fire_time", "expected"),
    [
        ("data_collection", "2026-11-19T17:00+09:00", date(2026, 11, 19)),
        ("watchlist_update", "2026-11-19T19:00+09:00", date(2026, 11, 19)),
        ("position_monitoring", "2026-11-19T16:30+09:00", date(2026, 11, 19)),
        ("signal_generation", "2026-01-02T09:45+09:00", date(2026, 1, 2)),
        ("watchlist_update", "2025-10-02T18:00+09:00", date(2025, 10, 2)),
        ("data_collection", "2026-11-19T08:00+00:00", date(2026, 11, 19)),  # same fire, in UTC
        ("risk_checks", "2026-11-14T12:00+09:00", date(2026, 11, 14)),  # a Saturday
        ("risk_checks", "2025-10-07T00:00+09:00", date(2025, 10, 7)),  # a holiday
    ],
)
def test_trading_date_of_a_fire(
    seoul: dict[str, CalendarTrigger], job: str, fire_time: str, expected: date
) -> None:
    assert seoul[job].trading_date(at(fire_time)) == expected


def test_trading_date_of_a_time_that_is_not_a_fire_is_an_error(
    seoul: dict[str, CalendarTrigger],
) -> None:
    with pytest.raises(TriggerError, match="not a fire time"):  # the exam day moved it to 17:00
        seoul["data_collection"].trading_date(at("2026-11-19T16:00+09:00"))
    with pytest.raises(TriggerError, match="not a fire time"):  # a holiday
        seoul["signal_generation"].trading_date(at("2025-10-06T08:45+09:00"))


# --- market_deadline ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "fire_time", "expected"),
    [
        # pre-open: useful until the open
        ("signal_generation", "2026-11-13T08:45+09:00", "2026-11-13T09:00:00+09:00"),
        ("signal_generation", "2026-11-19T09:45+09:00", "2026-11-19T10:00:00+09:00"),
        # post-close: useful until the next session's pre-open job (open - 15 min)
        ("data_collection", "2026-11-13T16:00+09:00", "2026-11-16T08:45:00+09:00"),
        ("indicator_calculation", "2026-11-19T18:00+09:00", "2026-11-20T08:45:00+09:00"),
        ("data_collection", "2025-10-02T16:00+09:00", "2025-10-10T08:45:00+09:00"),
        ("watchlist_update", "2025-12-30T18:00+09:00", "2026-01-02T09:45:00+09:00"),
        # in-session: useful until the next tick
        ("position_monitoring", "2026-11-19T10:15+09:00", "2026-11-19T10:30:00+09:00"),
    ],
)
def test_market_deadline_of_a_fire(
    seoul: dict[str, CalendarTrigger], job: str, fire_time: str, expected: str
) -> None:
    deadline = seoul[job].market_deadline(at(fire_time))
    assert deadline is not None and deadline == at(expected)


def test_risk_checks_have_no_market_deadline(seoul: dict[str, CalendarTrigger]) -> None:
    assert seoul["risk_checks"].market_deadline(at("2026-11-14T12:00+09:00")) is None


def test_post_close_deadline_follows_the_configured_pre_open_lead(
    calendar: MarketCalendar,
) -> None:
    triggers = build_triggers(make_settings(signal_generation_time="08:30"), calendar=calendar)
    deadline = triggers["data_collection"].market_deadline(at("2026-11-13T16:00+09:00"))
    assert deadline == at("2026-11-16T08:30+09:00")


# --- pickling (persistent job stores) -----------------------------------------------------


@pytest.mark.parametrize("timezone", ["Asia/Seoul", "UTC"])
@pytest.mark.parametrize("job", JOB_NAMES)
def test_pickle_round_trip_keeps_the_schedule(
    calendar: MarketCalendar, monkeypatch: pytest.MonkeyPatch, job: str, timezone: str
) -> None:
    trigger = build_trigger(get_job(job), make_settings(timezone=timezone), calendar)
    start, end = at("2025-12-29T00:00+09:00"), at("2026-01-04T00:00+09:00")
    expected = trigger.fire_times(start, end)

    data = pickle.dumps(trigger)
    assert len(data) < 2_000  # the schedule, not the session table
    # an unpickled trigger finds the process-wide calendar again
    monkeypatch.setattr(triggers_module, "get_calendar", lambda: calendar)
    restored = pickle.loads(data)

    assert type(restored) is type(trigger)
    assert str(restored.timezone) == timezone
    assert restored.describe() == trigger.describe()
    assert restored.fire_times(start, end) == expected
    assert [f.isoformat() for f in restored.fire_times(start, end)] == [
        f.isoformat() for f in expected
    ]


# --- invalid constructions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "job", "variable"),
    [
        ({"data_collection_time": "15:00"}, "data_collection", "ORCHESTRATOR_DATA_COLLECTION_TIME"),
        ({"indicator_calculation_time": "15:29"}, "indicator_calculation",
         "ORCHESTRATOR_INDICATOR_CALCULATION_TIME"),
        ({"watchlist_update_time": "09:00"}, "watchlist_update",
         "ORCHESTRATOR_WATCHLIST_UPDATE_TIME"),
        ({"signal_generation_time": "09:30"}, "signal_generation",
         "ORCHESTRATOR_SIGNAL_GENERATION_TIME"),
        ({"signal_generation_time": "09:00"}, "signal_generation",
         "ORCHESTRATOR_SIGNAL_GENERATION_TIME"),  # at the open is not before it
    ],
)
def test_job_time_on_the_wrong_side_of_the_session_is_a_configuration_error(
    calendar: MarketCalendar, values: dict[str, str], job: str, variable: str
) -> None:
    settings = make_settings(**values)
    with pytest.raises(ConfigurationError, match=variable) as excinfo:
        build_trigger(get_job(job), settings, calendar)
    assert next(iter(values.values())) in str(excinfo.value)  # says what it received
    with pytest.raises(ConfigurationError, match=variable):
        build_triggers(settings, calendar=calendar)


def test_post_close_time_at_the_close_fires_at_the_actual_close(calendar: MarketCalendar) -> None:
    trigger = build_trigger(
        get_job("data_collection"), make_settings(data_collection_time="15:30"), calendar
    )
    fires = trigger.fire_times(at("2026-11-18T00:00+09:00"), at("2026-11-20T00:00+09:00"))
    assert [f.isoformat() for f in fires] == [
        "2026-11-18T15:30:00+09:00",
        "2026-11-19T16:30:00+09:00",  # the exam-day close
    ]


@pytest.mark.parametrize("interval", ["7", "25", "0", "1441"])
def test_risk_interval_that_does_not_divide_a_day_is_rejected_by_settings(interval: str) -> None:
    with pytest.raises(SettingsError, match="ORCHESTRATOR_RISK_CHECK_INTERVAL"):
        load_settings(
            {}, environ={"ORCHESTRATOR_RISK_CHECK_INTERVAL": interval}, env_file=NO_ENV_FILE
        )


def test_triggers_reject_impossible_arguments_with_named_errors() -> None:
    with pytest.raises(TriggerError, match="divide a day"):
        ClockAlignedIntervalTrigger(7, "Asia/Seoul")
    with pytest.raises(TriggerError, match="positive"):
        InSessionIntervalTrigger(timedelta(0), "Asia/Seoul")
    with pytest.raises(TriggerError, match="'open' or 'close'"):
        SessionAnchoredTrigger("noon", timedelta(0), "Asia/Seoul")


# --- a custom position-monitoring interval ------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "day", "first", "last", "count"),
    [
        ("60", "2026-11-13", "09:00", "15:00", 7),  # 15:30 is not on the hour grid
        ("30", "2026-11-13", "09:00", "15:30", 14),
        ("60", "2026-11-19", "10:00", "16:00", 7),  # exam day 10:00-16:30
        ("30", "2026-01-02", "10:00", "15:30", 12),  # first session 10:00-15:30
        ("15", "2026-01-02", "10:00", "15:30", 23),
    ],
)
def test_position_monitoring_ticks_from_the_actual_open_at_a_custom_interval(
    calendar: MarketCalendar, interval: str, day: str, first: str, last: str, count: int
) -> None:
    settings = make_settings(position_monitor_interval=interval)
    trigger = build_trigger(get_job("position_monitoring"), settings, calendar)
    fires = trigger.fire_times(at(f"{day}T00:00+09:00"), at(f"{day}T23:59+09:00"))
    assert len(fires) == count
    assert fires[0] == at(f"{day}T{first}+09:00")
    assert fires[-1] == at(f"{day}T{last}+09:00")
    step = timedelta(minutes=int(interval))
    assert all(later - earlier == step for earlier, later in zip(fires, fires[1:]))


# --- nothing is computed from the wall clock ----------------------------------------------


class _NoWallClockDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> Any:
        raise AssertionError("a trigger read the wall clock (datetime.now)")

    @classmethod
    def utcnow(cls) -> Any:
        raise AssertionError("a trigger read the wall clock (datetime.utcnow)")

    @classmethod
    def today(cls) -> Any:
        raise AssertionError("a trigger read the wall clock (datetime.today)")


class _NoWallClockDate(date):
    @classmethod
    def today(cls) -> Any:
        raise AssertionError("a trigger read the wall clock (date.today)")


def test_triggers_in_apscheduler_answer_from_their_arguments_not_the_wall_clock(
    calendar: MarketCalendar, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A guard, not a fake clock: any read of the wall clock fails the test.
    for module in (triggers_module, market_calendar_module):
        monkeypatch.setattr(module, "datetime", _NoWallClockDatetime)
        monkeypatch.setattr(module, "date", _NoWallClockDate)
    triggers = build_triggers(make_settings(), calendar=calendar)
    scheduler = BackgroundScheduler(timezone=SEOUL)  # never started
    for name, trigger in triggers.items():
        scheduler.add_job(print, trigger=trigger, id=name, name=name, replace_existing=True)

    # Chuseok 2025, a year before this module was written: the answers are 2025's.
    now = at("2025-10-02T12:00+09:00")
    expected_next = {
        "signal_generation": "2025-10-10T08:45:00+09:00",
        "position_monitoring": "2025-10-02T12:00:00+09:00",
        "data_collection": "2025-10-02T16:00:00+09:00",
        "indicator_calculation": "2025-10-02T17:00:00+09:00",
        "watchlist_update": "2025-10-02T18:00:00+09:00",
        "risk_checks": "2025-10-02T12:00:00+09:00",
    }
    for job in scheduler.get_jobs():
        assert job.pending  # registering computed nothing
        assert job.trigger is triggers[job.id]
        fire = job.trigger.get_next_fire_time(None, now)
        assert fire is not None and fire.isoformat() == expected_next[job.id]
        assert job.trigger.previous_fire_time(fire) == fire
        assert job.trigger.trading_date(fire) == fire.date()
        assert job.trigger.fire_times(now, fire + timedelta(seconds=1))[0] == fire
