"""What a notification says: a title and a body, in Korean (the default) or English,
amounts in KRW with separators, times in the display zone.

Incidents come as :class:`~services.common.alerts.Alert` (one line in English for the
log, details as data); :func:`incident_message` writes each kind by hand in the
language asked for, from its details.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from services.common.alerts import Alert
from services.common.notifications.channels import Level

LANGUAGES = ("ko", "en")
TITLE_PREFIX = "[KRX]"


@dataclass(frozen=True)
class Message:
    level: Level
    title: str
    body: str
    key: str | None = None  # the incident it tells of: not sent again until that clears
    alert: Alert | None = None  # an incident's alert: the webhook channel posts its documented body
    at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when it happened


def won(amount: float | int) -> str:
    """``amount`` in KRW with separators: 1234567 -> '1,234,567원' (sign kept)."""
    return f"{round(amount):,}원"


def when(value: Any, tz: tzinfo) -> str:
    """A time of the details (datetime or ISO text) as 'YYYY-MM-DD HH:MM' in ``tz``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return str(value.astimezone(tz).strftime("%Y-%m-%d %H:%M"))
    return str(value)


_LEVELS = {"info": Level.INFO, "warning": Level.WARNING, "error": Level.ERROR}

_TITLES = {
    "run_failed": ("작업 실패", "Job failed"),
    "run_missed": ("작업 누락", "Run missed"),
    "trading_halted": ("매매 중단", "Trading halted"),
    "trading_resumed": ("매매 재개", "Trading resumed"),
    "calendar_ending": ("거래소 달력 자료 만료 임박", "KRX calendar data running out"),
    "instance_started": ("오케스트레이터 시작", "Orchestrator started"),
    "instance_stopped": ("오케스트레이터 종료", "Orchestrator stopped"),
    "limit_breach": ("위험 한도 초과", "Risk limit breached"),
}

_BREACH_ACTIONS = {
    "warn": ("경고만 합니다", "a warning only"),
    "block_entries": ("오늘은 신규 진입을 하지 않습니다", "no new entries today"),
    "halt": ("매매를 중단합니다", "trading halts"),
}


def _mode(details: dict[str, Any], language: str) -> str:
    dry_run = details.get("dry_run")
    if dry_run is None:
        return ""
    if language == "ko":
        return " (모의투자)" if dry_run else " (실전투자)"
    return " (paper)" if dry_run else " (LIVE)"


def _run_failed(d: dict[str, Any], ko: bool, tz: tzinfo) -> str | None:
    if "job" not in d:
        return None
    day = d.get("trading_date") or when(d.get("scheduled_for", ""), tz)
    error = d.get("error") or ""
    return f"{d['job']} ({day}) 실행이 실패했습니다: {error}" if ko else f"{d['job']} ({day}) failed: {error}"


def _run_missed(d: dict[str, Any], ko: bool, tz: tzinfo) -> str | None:
    if "fires" in d:
        span = f"{when(d['first'], tz)} ~ {when(d['last'], tz)}"
        return (f"오케스트레이터가 멈춰 있던 동안 {d['fires']}회의 실행을 놓쳤습니다 ({span})." if ko
                else f"{d['fires']} fires were missed while the orchestrator was not running ({span}).")
    if "job" not in d:
        return None
    at, reason = when(d.get("scheduled_for", ""), tz), d.get("reason") or ""
    return (f"{d['job']} ({d.get('trading_date')}) {at} 실행을 하지 못했습니다: {reason}" if ko
            else f"{d['job']} ({d.get('trading_date')}): the fire at {at} did not run: {reason}")


def _halted(d: dict[str, Any], ko: bool, tz: tzinfo) -> str:
    by = f"{d.get('halted_by')}, {when(d.get('halted_at'), tz)}"
    if ko:
        return (f"{d.get('user_id')} 계정의 매매를 중단했습니다 ({by}): {d.get('reason')}\n"
                "재개(resume)할 때까지 신규 진입은 없고, 손절·익절 청산만 나갑니다.")
    return (f"Trading for {d.get('user_id')} is halted ({by}): {d.get('reason')}\n"
            "No new entries until it is resumed; protective exits still go out.")


def _resumed(d: dict[str, Any], ko: bool, tz: tzinfo) -> str:
    by = f"{d.get('resumed_by')}, {when(d.get('resumed_at'), tz)}"
    if ko:
        return f"{d.get('user_id')} 계정의 매매를 재개했습니다 ({by}). 중단 사유: {d.get('reason')}"
    return f"Trading for {d.get('user_id')} is resumed ({by}). It had been halted for: {d.get('reason')}"


def _calendar(d: dict[str, Any], ko: bool, _tz: tzinfo) -> str:
    if ko:
        return (f"검토를 마친 KRX 휴장일 자료가 {d.get('valid_through')}에 끝납니다. 그 뒤의 휴장·특별 세션은 "
                "라이브러리 규칙만 따르니 services/common/krx_calendar_overrides.csv를 갱신해 주세요.")
    return (f"The reviewed KRX calendar data ends on {d.get('valid_through')}; later closures and special "
            "sessions follow the library's rules only: update services/common/krx_calendar_overrides.csv.")


def _started(d: dict[str, Any], ko: bool, tz: tzinfo) -> str:
    nxt = f"{d.get('next_job')} {when(d.get('next_fire'), tz)}" if d.get("next_fire") else "-"
    if ko:
        return f"{d.get('host')}에서 {d.get('user_id')} 계정의 스케줄러가 시작되었습니다. 다음 실행: {nxt}"
    return f"The scheduler of {d.get('user_id')} started on {d.get('host')}. Next fire: {nxt}"


def _stopped(d: dict[str, Any], ko: bool, _tz: tzinfo) -> str:
    if ko:
        return f"{d.get('host')}의 {d.get('user_id')} 계정 스케줄러가 멈췄습니다 ({d.get('reason')})."
    return f"The scheduler of {d.get('user_id')} on {d.get('host')} stopped ({d.get('reason')})."


def _breach(d: dict[str, Any], ko: bool, _tz: tzinfo) -> str:
    action_ko, action_en = _BREACH_ACTIONS.get(str(d.get("action")), (str(d.get("action")), str(d.get("action"))))
    if ko:
        return (f"{d.get('user_id')} 계정 ({d.get('trading_date')}): {d.get('description')}. "
                f"조치: {action_ko}.")
    return f"{d.get('user_id')} ({d.get('trading_date')}): {d.get('description')}. Action: {action_en}."


_BODIES: dict[str, Callable[[dict[str, Any], bool, tzinfo], str | None]] = {
    "run_failed": _run_failed, "run_missed": _run_missed, "trading_halted": _halted,
    "trading_resumed": _resumed, "calendar_ending": _calendar, "instance_started": _started,
    "instance_stopped": _stopped, "limit_breach": _breach,
}


def incident_message(alert: Alert, language: str, tz: tzinfo) -> Message:
    """The notification of ``alert`` in ``language`` (``ko`` or ``en``)."""
    ko = language == "ko"
    title_ko, title_en = _TITLES[alert.event]
    body = _BODIES[alert.event](alert.details, ko, tz) or alert.summary
    title = f"{TITLE_PREFIX} {title_ko if ko else title_en}{_mode(alert.details, language)}"
    return Message(_LEVELS[alert.severity], title, body, alert.key, alert)
