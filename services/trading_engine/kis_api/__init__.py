"""The KIS open API beneath the live adapter: HTTP, the token, pacing and KIS's answers.
It holds no order path and never imports the live adapter
(:mod:`services.trading_engine.kis`), so dry run may use it to read quotes
(:mod:`.quotes`).

- :mod:`.app`: :class:`~.app.KisApp`, the host, app key, secret and pace a client talks as.
- :mod:`.transport`: HTTP on one pooled ``httpx`` client with timeouts, https only
  (http on the loopback only), paced by the process's throttle of the host and app key
  (:mod:`services.common.throttle`, the pacing the pykrx provider uses too).
- :mod:`.auth`: the access token (``/oauth2/tokenP``), cached in memory and in a 0600
  file, reused until five minutes before it expires, asked for at most once a minute.
- :mod:`.client`: :class:`~.client.KisClient`: headers, paging, KIS's answers as the
  typed errors of :mod:`.errors`, the retry policy (tenacity, exponential backoff), and
  a read-only mode that refuses every POST.
- :mod:`.parsing`: KIS's rows read into ours.
- :mod:`.quotes`: current prices (inquire-price), and :class:`~.quotes.KisQuotes`, the
  read-only quote source of a paper account.
"""
