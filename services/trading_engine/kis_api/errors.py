"""What the KIS adapter raises: every error is a :class:`KisError`, itself a
:class:`~services.trading_engine.orders.BrokerError`."""

from __future__ import annotations

from services.trading_engine.orders import BrokerError, OrderRejected


class KisError(BrokerError):
    """KIS did not do what was asked. ``msg_cd``/``msg1`` are KIS's code and message
    when it gave them."""

    def __init__(self, message: str, *, msg_cd: str = "", msg1: str = "") -> None:
        super().__init__(message)
        self.msg_cd = msg_cd
        self.msg1 = msg1

    @property
    def reason(self) -> str:
        """KIS's own words, with its code: ``주문가능금액을 초과 했습니다 (APBK0952)``."""
        if self.msg1 and self.msg_cd:
            return f"{self.msg1} ({self.msg_cd})"
        return self.msg1 or self.msg_cd or str(self)


class KisAuthError(KisError):
    """The app key, app secret or token was refused."""


class KisRateLimited(KisError):
    """KIS kept answering "too many requests per second" (EGW00201) after the retries."""


class KisTokenRateLimited(KisError):
    """A new token is needed but one was asked for less than a minute ago (KIS issues
    one a minute, EGW00133). ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float, msg_cd: str = "", msg1: str = "") -> None:
        super().__init__(message, msg_cd=msg_cd, msg1=msg1)
        self.retry_after = retry_after


class KisTransportError(KisError):
    """No usable answer: connection error, timeout, HTTP 5xx, or a body that is not JSON.
    For an order this means *unknown*: reconcile before sending it again.

    ``unsent``: the request never left (no connection was made), so sending it again is
    safe even for an order. ``transient``: a read may be asked again (a timeout, a
    dropped connection, HTTP 5xx); not set for an answer that came but was not KIS's.
    """

    def __init__(self, message: str, *, msg_cd: str = "", msg1: str = "", unsent: bool = False,
                 transient: bool = False) -> None:
        super().__init__(message, msg_cd=msg_cd, msg1=msg1)
        self.unsent = unsent
        self.transient = transient or unsent


class KisRefused(KisError):
    """KIS answered ``rt_cd`` != "0" for a business reason (not auth, not rate)."""


class KisOrderRejected(KisRefused, OrderRejected):
    """KIS refused an order or a cancel; ``reason`` is its message."""
