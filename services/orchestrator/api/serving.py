"""Serving the console with uvicorn: alone (``serve``, in the main thread, until
SIGINT/SIGTERM) or beside the scheduler (``start``, from a daemon thread).

The socket is bound first, before anything else starts, so an address that cannot be
used is refused at once with one line (exit 2). An address beyond this machine needs
``ORCHESTRATOR_API_TOKEN``: without it the console would be open to the network.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING

from services.common.setting_values import is_loopback_host
from services.common.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 10.0  # how long a background server may take to start serving
STOP_SECONDS = 5.0
BACKLOG = 2048  # uvicorn's


def check_binding(settings: Settings) -> None:
    """Refuse an address beyond this machine without a token."""
    if not is_loopback_host(settings.api_host) and not settings.api_token:
        raise ConfigurationError(
            f"refusing to serve the console on {settings.api_host}: an address beyond this machine needs "
            "ORCHESTRATOR_API_TOKEN; set it, or listen on 127.0.0.1")


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0: any free port); refused in one
    line. Clients wait in its backlog until the server serves."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}; expected an address of "
                                 "this machine (ORCHESTRATOR_API_HOST, --host)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)  # from now on a client waits to be served, and is not refused
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                                 "ORCHESTRATOR_API_PORT (--port), or 0 for any free port") from None
    return sock


class ConsoleServer:
    """The console of ``settings``'s account on a bound socket."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self._socket = sock
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def bind(cls, settings: Settings) -> ConsoleServer:
        """Check the address and bind it (a ``ConfigurationError`` if refused)."""
        check_binding(settings)
        return cls(settings, bind_socket(settings.api_host, settings.api_port))

    @property
    def port(self) -> int:
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = self._socket.getsockname()[0]
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def _make_server(self) -> uvicorn.Server:
        import uvicorn

        from services.orchestrator.api.app import create_app

        config = uvicorn.Config(create_app(self.settings), log_config=None, lifespan="on",
                                access_log=self.settings.log_level == "DEBUG", server_header=False)
        self._server = uvicorn.Server(config)
        return self._server

    def serve(self) -> None:
        """Serve in this (the main) thread until SIGINT or SIGTERM, then stop cleanly."""
        server = self._make_server()
        # uvicorn catches the signal, shuts down, then raises it again to the handler it
        # found: a handler that does nothing, so the command ends with exit 0
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[self._socket])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._socket.close()

    def start_in_background(self) -> None:
        """Serve from a daemon thread; log the URL once it serves (or why it does not)."""
        server = self._make_server()
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                        name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            logger.info("console (REST API) at %s (OpenAPI at %sdocs)", self.url, self.url)
        else:
            logger.error("the console (REST API) did not start on %s; the scheduler runs without it", self.url)

    def stop(self) -> None:
        """Stop serving (running requests end first), and release the socket."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_SECONDS)
        self._socket.close()
