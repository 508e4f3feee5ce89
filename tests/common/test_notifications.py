"""Notifications: channels from ORCHESTRATOR_NOTIFY_URLS (apprise), levels, the repeat
rule, retries, never blocking, secrets never shown; delivered to a local HTTP server
through apprise's own json://, form://, Discord, Slack and Telegram formatting."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest

from services.common import notifications
from services.common.alerts import Alert, clear_alert, raise_alert
from services.common.notifications import Channel, Level, Message, Notifier, incident_message, masked, parse_channels

KST = ZoneInfo("Asia/Seoul")
BOT_TOKEN = "123456789:AAEhBOweik9ai2o4SecretToken"  # the form of a Telegram bot token


class Receiver:
    """A local HTTP server recording each POST: (path, content type, body)."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        self.status = status
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:  # recorded before it is answered: the sender may look at once
                    receiver.posts.append((self.path, self.headers.get("Content-Type", ""), body))
                answer = b"ok" if self.path.startswith("/slack") else b'{"ok": true, "result": {}}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def json_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _message(level: Level = Level.ERROR, key: str | None = None, title: str = "[KRX] 작업 실패") -> Message:
    return Message(level, title, "data_collection (2026-11-20) 실행이 실패했습니다: 503", key)


# --- channels ---------------------------------------------------------------------------------------


def test_channels_are_apprise_urls_each_with_its_lowest_level() -> None:
    channels = parse_channels(f"tgram://{BOT_TOKEN}/12345\n error=discord://1234/abcdef  warning=json://h:8/x")
    assert [(c.url.split(":")[0], c.level) for c in channels] == [
        ("tgram", Level.INFO), ("discord", Level.ERROR), ("json", Level.WARNING)]
    assert channels[1].takes(Level.ERROR) and not channels[1].takes(Level.WARNING)


@pytest.mark.parametrize("text, shown", [
    ("tgram:/broken", "<not a URL> is not a URL"),
    (f"tgramm://{BOT_TOKEN}/12345", "tgramm://... is not a URL apprise can send to"),
    ("fatal=json://host/x", "'fatal' (before json://host/...) is not a level; expected info=, warning= or error="),
])
def test_a_channel_not_accepted_is_named_masked(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_channels(text)
    assert str(refused.value).startswith(shown)
    assert BOT_TOKEN not in str(refused.value)


@pytest.mark.parametrize("url, shown", [
    (f"tgram://{BOT_TOKEN}/12345", "tgram://..."),
    ("discord://1234567890/webhook-token-secret", "discord://..."),
    ("slack://T000/B000/XXXXsecret", "slack://..."),
    ("mailto://trader:p4ssw0rd@example.com?to=me@example.com", "mailto://..."),
    ("ntfys://my-secret-topic", "ntfys://..."),  # on ntfy.sh, the topic is the secret
    ("json://user:pa/ss@hook.example.com/x", "json://hook.example.com/..."),
    ("json://127.0.0.1:8080/hooks/secret?token=x", "json://127.0.0.1:8080/..."),
])
def test_a_channel_is_shown_as_its_scheme_and_host_only(url: str, shown: str) -> None:
    assert masked(url) == shown


# --- the notifier -------------------------------------------------------------------------------------


class Recording:
    """A channel's sending, recorded; ``gate`` holds each send until it is set; fails
    ``failures`` times first."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.failures = failures

    def __call__(self, channel: Channel, message: Message, _timeout: float, _tz: Any) -> str | None:
        self.gate.wait(10)
        if self.failures:
            self.failures -= 1
            return "HTTP 502 Bad Gateway"
        self.sent.append((channel.url, message.title))
        return None


def test_each_channel_gets_what_reaches_its_level() -> None:
    send = Recording()
    notifier = Notifier([Channel("json://all/"), Channel("json://errors/", Level.ERROR)], send=send)
    notifier.notify(_message(Level.INFO, title="started"))
    notifier.notify(_message(Level.ERROR, title="failed"))
    notifier.close()
    assert send.sent == [("json://all/", "started"), ("json://all/", "failed"), ("json://errors/", "failed")]


def test_sending_never_blocks_the_caller() -> None:
    send = Recording()
    send.gate.clear()  # the channel hangs
    notifier = Notifier([Channel("json://slow/")], send=send)
    assert notifier.notify(_message(title="one")) and notifier.notify(_message(title="two"))
    assert send.sent == []  # both queued; the caller went on while the channel hangs
    send.gate.set()
    notifier.close()
    assert [title for _, title in send.sent] == ["one", "two"]


def test_an_incident_is_sent_once_until_it_clears() -> None:
    send = Recording()
    notifier = Notifier([Channel("json://h/")], send=send)
    assert notifier.notify(_message(key="run_failed:u:data_collection"))
    assert not notifier.notify(_message(key="run_failed:u:data_collection"))  # fails again: not sent again
    assert notifier.notify(_message(key="run_failed:u:indicator_calculation"))  # another job: sent
    notifier.clear(["run_failed:u:data_collection"])  # it worked again
    assert notifier.notify(_message(key="run_failed:u:data_collection"))
    notifier.close()
    assert len(send.sent) == 3


def test_an_incident_heard_nowhere_is_tried_again_next_time() -> None:
    broken = Recording(failures=3)  # the first message's three attempts fail
    notifier = Notifier([Channel("json://down/")], send=broken, backoff=0.001)
    notifier.notify(_message(key="run_failed:u:data_collection", title="first"))
    notifier.close(timeout=10)
    again = Notifier([Channel("json://down/")], send=broken, backoff=0.001)
    again._open_incidents = dict(notifier._open_incidents)  # the same process's memory
    assert again.notify(_message(key="run_failed:u:data_collection", title="second"))
    again.close()
    assert broken.sent == [("json://down/", "second")]


def test_an_incident_not_cleared_is_said_again_after_the_reminder_time() -> None:
    send, now = Recording(), [0.0]
    notifier = Notifier([Channel("json://h/")], send=send, remind_seconds=3600, clock=lambda: now[0])
    assert notifier.notify(_message(key="k"))
    now[0] = 3599.0
    assert not notifier.notify(_message(key="k"))
    now[0] = 3600.0  # cleared elsewhere, perhaps (another process): said again
    assert notifier.notify(_message(key="k"))
    notifier.close()
    assert len(send.sent) == 2


def test_a_message_no_channel_takes_opens_no_incident() -> None:
    send = Recording()
    notifier = Notifier([Channel("json://h/", Level.ERROR)], send=send)
    assert not notifier.notify(_message(Level.WARNING, key="calendar_ending"))
    assert notifier.notify(_message(Level.ERROR, key="calendar_ending"))
    notifier.close()
    assert len(send.sent) == 1


def test_a_failing_listener_never_breaks_what_raised_the_alert(caplog: pytest.LogCaptureFixture) -> None:
    from services.common.alerts import listen_for_alerts

    def broken(_alert: Alert) -> None:
        raise KeyError("no text for it")

    stop = listen_for_alerts(broken)
    try:
        raise_alert(logging.getLogger("services.test"), Alert("calendar_ending", "ends soon"))  # does not raise
    finally:
        stop()
    assert any(r.getMessage().startswith("a listener of alerts failed") for r in caplog.records)


def test_a_failing_channel_is_retried_then_given_up_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    flaky, broken = Recording(failures=1), Recording(failures=99)
    notifier = Notifier([Channel("json://flaky/")], send=flaky, backoff=0.001)
    other = Notifier([Channel(f"tgram://{BOT_TOKEN}/1")], send=broken, backoff=0.001)
    with caplog.at_level(logging.WARNING):
        notifier.notify(_message(title="kept"))
        other.notify(_message(title="lost"))
        notifier.close()
        other.close()
    assert flaky.sent == [("json://flaky/", "kept")]  # the second attempt went through
    assert [r.getMessage() for r in caplog.records] == [
        "notification to tgram://... not delivered after 3 attempts (HTTP 502 Bad Gateway): lost"]


def test_incidents_reach_the_installed_channels_and_clear(receiver: Receiver) -> None:
    log = logging.getLogger("services.test")
    failed = Alert("run_failed", "data_collection 2026-11-20 failed: RuntimeError: 503", {
        "job": "data_collection", "trading_date": "2026-11-20", "user_id": "u", "dry_run": True,
        "error": "RuntimeError: 503"})
    with notifications.install((Channel(f"json://{receiver.host}/hook"),), tz=KST):
        raise_alert(log, failed)
        raise_alert(log, failed)  # the same incident: logged, not sent again
        clear_alert("run_failed:u:data_collection")
        raise_alert(log, failed)
    bodies = receiver.json_bodies()
    assert [(b["title"], b["message"], b["type"]) for b in bodies] == [
        ("[KRX] 작업 실패 (모의투자)", "data_collection (2026-11-20) 실행이 실패했습니다: RuntimeError: 503", "failure")
    ] * 2


# --- apprise's formatting, against a local server -----------------------------------------------------


def test_json_and_form_channels_post_the_title_and_the_body(receiver: Receiver) -> None:
    message = _message()
    for url in (f"json://{receiver.host}/j", f"form://{receiver.host}/f"):
        assert notifications.deliver(Channel(url), message, 5.0) is None
    (json_path, json_type, json_body), (form_path, form_type, form_body) = receiver.posts
    assert (json_path, json_type) == ("/j", "application/json")
    assert {k: v for k, v in json.loads(json_body).items() if k in ("title", "message", "type")} == {
        "title": "[KRX] 작업 실패", "message": message.body, "type": "failure"}
    assert (form_path, form_type) == ("/f", "application/x-www-form-urlencoded")
    assert parse_qs(form_body.decode())["message"] == [message.body]


def test_telegram_discord_and_slack_are_formatted_by_apprise(receiver: Receiver,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from apprise.plugins.discord import NotifyDiscord
    from apprise.plugins.slack import NotifySlack
    from apprise.plugins.telegram import NotifyTelegram

    monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://{receiver.host}/telegram/bot")
    monkeypatch.setattr(NotifyDiscord, "notify_url", f"http://{receiver.host}/discord")
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://{receiver.host}/slack")
    message = _message()
    for url in (f"tgram://{BOT_TOKEN}/987654321", "discord://1234567890/webhooktoken",
                "slack://T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert notifications.deliver(Channel(url), message, 5.0) is None, url
    telegram, discord, slack = ((path, json.loads(body)) for path, _, body in receiver.posts)
    assert telegram[0] == f"/telegram/bot{BOT_TOKEN}/sendMessage"
    assert telegram[1]["chat_id"] == 987654321 and "실행이 실패했습니다" in telegram[1]["text"]
    assert discord[0] == "/discord/1234567890/webhooktoken"
    assert "실행이 실패했습니다" in json.dumps(discord[1], ensure_ascii=False)
    assert slack[0] == "/slack/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX"
    assert "실행이 실패했습니다" in json.dumps(slack[1], ensure_ascii=False)


def test_a_failure_reason_never_holds_the_url(caplog: pytest.LogCaptureFixture) -> None:
    failing = Receiver(status=500)
    try:
        url = f"json://{failing.host}/hooks/{BOT_TOKEN}"
        with caplog.at_level(logging.DEBUG):
            reason = notifications.deliver(Channel(url), _message(), 5.0)
    finally:
        failing.close()
    assert reason is not None and BOT_TOKEN not in reason
    assert [(record.name, record.getMessage()) for record in caplog.records if BOT_TOKEN in record.getMessage()] == []


# --- the text ---------------------------------------------------------------------------------------------


def test_incidents_are_written_in_korean_by_default_and_in_english_on_request() -> None:
    halted = Alert("trading_halted", "TRADING HALTED for u by max_daily_loss_pct: daily loss 3.2%", {
        "user_id": "u", "halted_by": "max_daily_loss_pct", "reason": "daily loss 3.2%",
        "halted_at": "2026-11-20T01:30:00+00:00"})
    ko = incident_message(halted, "ko", KST)
    assert (ko.level, ko.title, ko.key) == (Level.ERROR, "[KRX] 매매 중단", None)  # said once: when made
    assert ko.body == ("u 계정의 매매를 중단했습니다 (max_daily_loss_pct, 2026-11-20 10:30): daily loss 3.2%\n"
                       "재개(resume)할 때까지 신규 진입은 없고, 손절·익절 청산만 나갑니다.")
    en = incident_message(halted, "en", KST)
    assert en.title == "[KRX] Trading halted" and en.body.startswith(
        "Trading for u is halted (max_daily_loss_pct, 2026-11-20 10:30): daily loss 3.2%")


def test_amounts_are_in_won_with_separators() -> None:
    assert notifications.won(98740192) == "98,740,192원"
    assert notifications.won(-1259808.4) == "-1,259,808원"


@pytest.mark.parametrize("alert, level, title, body", [
    (Alert("run_missed", "3 fires were missed", {"fires": 3, "user_id": "u", "first": "2026-11-20T07:00:00+00:00",
                                                 "last": "2026-11-20T08:00:00+00:00", "reason": "down"}),
     Level.ERROR, "[KRX] 작업 누락",
     "오케스트레이터가 멈춰 있던 동안 3회의 실행을 놓쳤습니다 (2026-11-20 16:00 ~ 2026-11-20 17:00)."),
    (Alert("calendar_ending", "ends", {"valid_through": "2026-12-31", "today": "2026-12-14"}),
     Level.WARNING, "[KRX] 거래소 달력 자료 만료 임박",
     "검토를 마친 KRX 휴장일 자료가 2026-12-31에 끝납니다. 그 뒤의 휴장·특별 세션은 라이브러리 규칙만 따르니 "
     "services/common/krx_calendar_overrides.csv를 갱신해 주세요."),
    (Alert("instance_started", "started", {"user_id": "u", "dry_run": False, "host": "box",
                                           "next_job": "signal_generation",
                                           "next_fire": "2026-11-23T08:45:00+09:00"}),
     Level.INFO, "[KRX] 오케스트레이터 시작 (실전투자)",
     "box에서 u 계정의 스케줄러가 시작되었습니다. 다음 실행: signal_generation 2026-11-23 08:45"),
    (Alert("limit_breach", "breached", {"user_id": "u", "dry_run": True, "trading_date": "2026-11-20",
                                        "action": "block_entries", "description": "daily loss 3.2% reached "
                                        "ORCHESTRATOR_MAX_DAILY_LOSS_PCT 3%"}),
     Level.ERROR, "[KRX] 위험 한도 초과 (모의투자)",
     "u 계정 (2026-11-20): daily loss 3.2% reached ORCHESTRATOR_MAX_DAILY_LOSS_PCT 3%. "
     "조치: 오늘은 신규 진입을 하지 않습니다."),
    (Alert("limit_breach", "breached", {"user_id": "u", "dry_run": True, "trading_date": "2026-11-20",
                                        "action": "warn", "description": "position X 11% reached ..."}),
     Level.WARNING, "[KRX] 위험 한도 초과 (모의투자)",
     "u 계정 (2026-11-20): position X 11% reached .... 조치: 경고만 합니다."),
])
def test_each_incident_kind_is_written_by_hand(alert: Alert, level: Level, title: str, body: str) -> None:
    message = incident_message(alert, "ko", KST)
    assert (message.level, message.title, message.body) == (level, title, body)
