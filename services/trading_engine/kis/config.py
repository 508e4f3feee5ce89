"""Which KIS host, tr_ids, credentials and account: :class:`KisConfig`, checked by
:func:`check_live_config` before anything is sent (paper settings pointing at the live
host, or live settings with paper tr_ids, fail with one line)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from services.common.settings import SETTING_FIELDS, ConfigurationError, Settings

#: KIS's own hosts, as the settings' defaults name them: a paper account pointed at the
#: live hostname (or the reverse) is refused
LIVE_HOSTNAME = urllib.parse.urlsplit(SETTING_FIELDS["kis_live_host"].metadata["default"]).hostname
PAPER_HOSTNAME = urllib.parse.urlsplit(SETTING_FIELDS["kis_paper_host"].metadata["default"]).hostname
DEFAULT_LIVE_HOST = f"https://{LIVE_HOSTNAME}:9443"
DEFAULT_PAPER_HOST = f"https://{PAPER_HOSTNAME}:29443"
#: Calls whose tr_id differs between the paper (V...) and the live host; ``quote`` is shared.
ACCOUNT_CALLS = ("buy", "sell", "cancel", "balance", "fills")


def mask_account(account: str) -> str:
    """``12345678-01`` -> ``********01``: only the last two digits are shown."""
    digits = "".join(ch for ch in account if ch.isdigit())
    return "*" * max(len(digits) - 2, 0) + digits[-2:]


@dataclass(frozen=True, repr=False)
class KisConfig:
    """What the client needs. Its repr hides the app key, secret and account."""

    environment: str  # paper | live
    host: str
    tr_ids: Mapping[str, str]
    app_key: str
    app_secret: str
    cano: str  # 종합계좌번호, the account's first 8 digits
    acnt_prdt_cd: str  # 계좌상품코드, its last 2 digits
    requests_per_second: float

    @classmethod
    def from_settings(cls, settings: Settings) -> KisConfig:
        """The configuration in force; raises :class:`ConfigurationError` (one line) if
        :func:`check_live_config` finds a problem."""
        check_live_config(settings)
        digits = settings.kis_account.replace("-", "")
        return cls(
            environment=settings.kis_environment,
            host=settings.kis_host,
            tr_ids=MappingProxyType(settings.kis_tr_ids.as_dict()),
            app_key=settings.kis_app_key,
            app_secret=settings.kis_app_secret,
            cano=digits[:8],
            acnt_prdt_cd=digits[8:],
            requests_per_second=settings.kis_requests_per_second,
        )

    @property
    def broker_name(self) -> str:
        return f"kis-{self.environment}"

    @property
    def masked_account(self) -> str:
        return mask_account(self.cano + self.acnt_prdt_cd)

    def account(self) -> dict[str, str]:
        """The account fields every account call carries (CANO, ACNT_PRDT_CD)."""
        return {"CANO": self.cano, "ACNT_PRDT_CD": self.acnt_prdt_cd}

    def __repr__(self) -> str:
        return (f"KisConfig(environment={self.environment!r}, host={self.host!r}, "
                f"tr_ids={dict(self.tr_ids)!r}, app_key='***', app_secret='***', "
                f"account={self.masked_account!r}, requests_per_second={self.requests_per_second!r})")

    __str__ = __repr__


def check_live_config(settings: Settings) -> None:
    """Refuse a KIS configuration that would trade the wrong account or cannot work.

    Raises :class:`ConfigurationError` with one line naming what is wrong and what is
    accepted: missing ``KIS_APP_KEY``/``KIS_APP_SECRET``/``KIS_ACCOUNT`` (named, never
    shown); paper settings that point at the live host or use live tr_ids; live
    settings that point at the paper host or use paper (``V...``) tr_ids.
    """
    missing = [name for name, value in (("KIS_APP_KEY", settings.kis_app_key),
                                        ("KIS_APP_SECRET", settings.kis_app_secret),
                                        ("KIS_ACCOUNT", settings.kis_account)) if not value]
    if missing:
        raise ConfigurationError(
            f"KIS trading (--no-dry-run) needs {', '.join(missing)}, not set in the environment or .env; "
            "expected the KIS open API app key and app secret and the 10-digit account number "
            "(8 digits, a dash, 2 digits)")
    problems = []
    if settings.kis_environment == "paper":
        host, tr_ids = settings.kis_paper_host, settings.kis_paper_tr_ids.as_dict()
        if _hostname(host) == LIVE_HOSTNAME or host == settings.kis_live_host:
            problems.append(f"ORCHESTRATOR_KIS_PAPER_HOST={host} is the live host; expected the paper "
                            f"(모의투자) host such as {DEFAULT_PAPER_HOST}")
        wrong = [f"{call}={tr_ids[call]}" for call in ACCOUNT_CALLS if not tr_ids[call].startswith("V")]
        if wrong:
            problems.append(f"ORCHESTRATOR_KIS_PAPER_TR_IDS has live tr_ids {', '.join(wrong)}; expected "
                            "paper tr_ids starting with V (e.g. buy=VTTC0012U,sell=VTTC0011U)")
    else:
        host, tr_ids = settings.kis_live_host, settings.kis_live_tr_ids.as_dict()
        if _hostname(host) == PAPER_HOSTNAME or host == settings.kis_paper_host:
            problems.append(f"ORCHESTRATOR_KIS_LIVE_HOST={host} is the paper host; expected the live host "
                            f"such as {DEFAULT_LIVE_HOST}")
        wrong = [f"{call}={tr_ids[call]}" for call in ACCOUNT_CALLS if tr_ids[call].startswith("V")]
        if wrong:
            problems.append(f"ORCHESTRATOR_KIS_LIVE_TR_IDS has paper tr_ids {', '.join(wrong)}; expected "
                            "live tr_ids, which do not start with V (e.g. buy=TTTC0012U,sell=TTTC0011U)")
    if problems:
        raise ConfigurationError(f"ORCHESTRATOR_KIS_ENVIRONMENT={settings.kis_environment}: "
                                 + "; ".join(problems))


def _hostname(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()
