"""Trying the notification channels: one test message to each, sent now."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from services.common import notifications
from services.common.job_api import Account
from services.common.notifications import Level, Message
from services.common.notifications.delivery import without_url
from services.common.settings import Settings

_TEST = {
    "ko": ("[KRX] 알림 시험", "{host}의 krx-orchestrator({account})가 보낸 시험 알림입니다. 이 메시지가 보이면 "
                         "이 채널로 사고·매매·일일 보고 알림이 옵니다."),
    "en": ("[KRX] Test notification", "A test notification from krx-orchestrator ({account}) on {host}. If you "
                                      "read this, incidents, trades and daily reports reach this channel."),
}


@dataclass(frozen=True)
class ChannelTest:
    channel: str  # masked
    level: str  # the lowest level it takes
    delivered: bool
    result: str  # "delivered", or why not


def test_message(settings: Settings) -> Message:
    title, body = _TEST[settings.notify_language]
    account = Account.of(settings).describe()
    return Message(Level.ERROR, title, body.format(host=socket.gethostname(), account=account))


def test_channels(settings: Settings) -> list[ChannelTest]:
    """Send :func:`test_message` to each channel of ``settings`` (one attempt each, one
    after the other): what each answered. Empty: no channel is configured."""
    message = test_message(settings)
    results = []
    for channel in notifications.channels_of(settings):
        try:
            reason = notifications.deliver(channel, message, settings.alert_timeout_seconds, settings.display_tz,
                                           test=True)
        except Exception as exc:  # noqa: BLE001 (a channel's failure is its line of the answer)
            reason = without_url(f"{type(exc).__name__}: {exc}", channel.url)
        results.append(ChannelTest(channel.name, channel.level.label, reason is None, reason or "delivered"))
    return results
