"""The KIS open API beneath the live adapter: HTTP, the token, pacing and KIS's answers.
It holds no order path and never imports the live adapter
(:mod:`services.trading_engine.kis`), so dry run may use it to read quotes
(:mod:`.quotes`).

- :mod:`.app`: :class:`~.app.KisApp`, the host, app key, secret and pace a client talks as.
- :mod:`.transport`: HTTP on one pooled ``httpx`` client with timeouts, https only
  (http on the loopback only), paced per host and app key across the processes sharing
  the cache directory (:class:`services.common.throttle.SharedThrottle`).
- :mod:`.auth`: the access token (``/oauth2/tokenP``), cached in memory and in a 0600
  file, reused until five minutes before it expires, asked for at most once a minute.
- :mod:`.client`: :class:`~.client.KisClient`: headers, paging, KIS's answers as the
  typed errors of :mod:`.errors`, the retry policy (tenacity, exponential backoff), and
  a read-only mode that refuses every POST.
- :mod:`.parsing`: KIS's fields read into ours (either case, numbers as text); what a
  row means is read by its user (:mod:`.quotes`, the live adapter's ``order_rows``).
- :mod:`.quotes`: current prices (inquire-price), and :class:`~.quotes.KisQuotes`, the
  read-only quote source of a paper account.
"""
