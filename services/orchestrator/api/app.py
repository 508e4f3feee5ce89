"""The console's REST API: JSON over the same library functions as the CLI
(``services.orchestrator.ops``), for the account of the settings (user and mode).

Each endpoint is a thin call to one operation. Every time is in the display zone
(``settings.display_tz``) with its offset, as the CLI shows it. A parameter that is
not accepted (a bad date, an unknown job, a limit out of range) is answered 422 with
``{"detail": "<one line>"}``; a database that does not answer 503. OpenAPI at ``/docs``.

Reads are open; a mutation (halt, resume, emergency stop, run a job) needs ``Authorization: Bearer
<ORCHESTRATOR_API_TOKEN>`` (401 without it or with another; 403 while no token is set),
and each one whose token was accepted is written to ``console_audit`` with its answer,
in the transaction of the change where there is one (``GET /api/audit``).
"""

from __future__ import annotations

import calendar as month_calendar
import hmac
import importlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.database import database_error_line
from services.common.market_calendar import CalendarError
from services.common.settings import ConfigurationError, Settings
from services.orchestrator import ops
from services.orchestrator.api.metrics import render_metrics
from services.orchestrator.api.shared_reads import SharedReads
from services.orchestrator.ledger import first_line
from services.orchestrator.ops.arguments import InvalidArgument, parse_moment, parse_optional_day
from services.orchestrator.ops.console import Audit, NoLiveScheduler, QueuedRunNotFound
from services.orchestrator.ops.emergency import EmergencyStop, emergency_stop
from services.orchestrator.ops.halts import HaltChange
from services.orchestrator.ops.watchlist import NoWatchlist
from services.orchestrator.reports import halt_view
from services.orchestrator.runtime import Runtime

logger = logging.getLogger(__name__)

#: the dashboard's page, script and style (served at ``/`` and ``/dashboard/``)
DASHBOARD = Path(__file__).with_name("dashboard")
#: ``/api/jobs/{name}/next-runs`` without ``end``: this long after ``start``
DEFAULT_NEXT_RUNS_WINDOW = timedelta(days=7)
NO_TOKEN = "mutations are refused: no token is set; set ORCHESTRATOR_API_TOKEN and restart to allow them"
BAD_TOKEN = "missing or wrong token: expected the header 'Authorization: Bearer <ORCHESTRATOR_API_TOKEN>'"
NOT_HALTED = "trading is not halted"


class HaltRequest(BaseModel):
    reason: str = Field(description="why trading stops (1 to 300 characters; shown by status)")


class EmergencyStopRequest(BaseModel):
    reason: str = Field(description="why trading stops (1 to 300 characters; the halt's and the exits' reason)")
    flatten: bool = Field(False, description="also sell every position at market, as protective exits")


class RunRequest(BaseModel):
    date: str | None = Field(None, description="trading date, YYYY-MM-DD (default: the job's latest fire's)")


def client_of(request: Request) -> str:
    """Where a request came from: the peer's host:port, and the X-Forwarded-For it
    carries, if any."""
    peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    return f"{peer} (X-Forwarded-For: {forwarded})" if forwarded else peer


def create_app(settings: Settings, runtime_factory: Callable[[Settings], Runtime] = Runtime.create) -> FastAPI:
    """The API of the account of ``settings``, on one runtime (``runtime_factory``'s),
    closed when the app shuts down."""
    runtime = runtime_factory(settings)
    opening = threading.Lock()  # the database is opened (and migrated) once, by the first request

    def warm_up() -> None:
        """Open the database and load what the reads use, so the first page is quick."""
        try:
            with opening:
                runtime.session_factory()
            importlib.import_module("services.trading_engine.queries")
            importlib.import_module("services.risk_manager.queries")
            importlib.import_module("services.watchlist_manager.manager")
        except Exception as exc:  # each request says it again, in one line
            logger.debug("the console could not open the database yet: %s", first_line(str(exc)))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        warming = threading.Thread(target=warm_up, name="console-warm-up", daemon=True)
        warming.start()
        try:
            yield
        finally:
            await run_in_threadpool(warming.join)
            runtime.close()

    app = FastAPI(title="KRX orchestrator console", version="1",
                  summary=f"The REST API of {settings.user_id} ({'paper' if settings.dry_run else 'live'})",
                  lifespan=lifespan)
    app.state.runtime = runtime
    _add_error_handlers(app)
    app.add_middleware(SharedReads, seconds=settings.api_cache_seconds)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard")

    def opened() -> Runtime:
        with opening:
            runtime.session_factory()
        return runtime

    Opened = Depends(opened)

    def mutation(action: str) -> Any:
        """The token check of a mutation; once passed, the request's audit
        (``request.state.audit``), written with its answer."""

        def authorize(request: Request) -> None:
            token = settings.api_token
            if not token:
                raise HTTPException(403, NO_TOKEN)
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                raise HTTPException(401, BAD_TOKEN, headers={"WWW-Authenticate": "Bearer"})
            request.state.audit = Audit(runtime, action, client_of(request), dict(request.path_params))

        return Depends(authorize)

    def audit_of(request: Request) -> Audit:
        audit: Audit = request.state.audit
        return audit

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The dashboard: one page reading the endpoints below, refreshing itself."""
        return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/health", tags=["probes"])
    def health() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/ready", tags=["probes"])
    def ready() -> JSONResponse:
        """The account is served: its database answers, its schema is at this code's head
        revision, and a scheduler of the account beat within 2 minutes; else 503 with the
        reason."""
        with opening:
            readiness = ops.status.readiness(runtime)
        return JSONResponse(readiness.as_dict(settings.display_tz), status_code=200 if readiness.ready else 503)

    @app.get("/api/status", tags=["scheduler"])
    def status(rt: Runtime = Opened) -> dict[str, Any]:
        """As ``status --format json``: now, halt, database, settings, calendar, jobs,
        waiting_elsewhere."""
        return ops.status.report(rt).as_dict()

    @app.get("/api/jobs", tags=["scheduler"])
    def jobs(rt: Runtime = Opened) -> list[dict[str, Any]]:
        """Each job: job, enabled, service_installed, schedule, next_fire_times, last_run."""
        return ops.status.jobs(rt)

    @app.get("/api/jobs/{name}/next-runs", tags=["scheduler"])
    def next_runs(name: str, start: str | None = Query(None, description="ISO time, included (default: now)"),
                  end: str | None = Query(None, description="ISO time, excluded (default: 7 days after start)"),
                  ) -> list[dict[str, str]]:
        """Every fire of the job in [start, end), from the scheduler's own triggers (none
        if it is disabled)."""
        tz = settings.display_tz
        start_at = runtime.clock.now() if start is None else parse_moment(start, "start", tz)
        end_at = start_at + DEFAULT_NEXT_RUNS_WINDOW if end is None else parse_moment(end, "end", tz)
        return ops.schedule.fire_times(runtime, [name], start_at, end_at)

    @app.get("/api/timeline", tags=["scheduler"])
    def timeline(date: str | None = Query(None, description="YYYY-MM-DD (default: today)"),
                 rt: Runtime = Opened) -> dict[str, Any]:
        """The day's fires of every enabled job with the outcome of each one's latest run
        (``upcoming``, ``not run``), and the day's runs that answer no fire (scheduled:
        false): {date, now, session, items [job, fire_time, scheduled, outcome, run_id,
        origin, reason]}."""
        return ops.schedule.timeline(rt, parse_optional_day(date, "date"))

    @app.get("/api/runs", tags=["scheduler"])
    def runs(job: str | None = None, outcome: str | None = None,
             limit: int = Query(ops.status.DEFAULT_RUNS_LIMIT, description="runs per page"),
             before: int | None = Query(None, description="the next_before of the previous page"),
             rt: Runtime = Opened) -> dict[str, Any]:
        """The account's run ledger, newest first, a page at a time: {runs, next_before}."""
        return ops.status.runs(rt, job, outcome, limit, before)

    @app.get("/api/calendar", tags=["scheduler"])
    def calendar(start: str | None = Query(None, description="YYYY-MM-DD (default: the month's first day)"),
                 end: str | None = Query(None, description="YYYY-MM-DD, included (default: its last)"),
                 ) -> list[dict[str, str]]:
        """The KRX sessions, one row per weekday: date, open, close, status."""
        start_day, end_day = parse_optional_day(start, "start"), parse_optional_day(end, "end")
        first = start_day or (end_day or ops.account.today(runtime)).replace(day=1)
        last = end_day or first.replace(day=month_calendar.monthrange(first.year, first.month)[1])
        return ops.schedule.calendar_days(runtime, first, last)

    @app.get("/api/account", tags=["account"])
    def account(rt: Runtime = Opened) -> dict[str, Any]:
        """Cash, equity, exposure, day and total P&L (``ops.account.summary``)."""
        return ops.account.summary(rt)

    @app.get("/api/positions", tags=["account"])
    def positions(rt: Runtime = Opened) -> list[dict[str, Any]]:
        """The open positions, as ``positions --format json``."""
        return ops.account.positions(rt)

    @app.get("/api/orders", tags=["account"])
    def orders(status: str = Query(ops.account.DEFAULT_ORDER_STATUS,
                                   description=", ".join(ops.account.ORDER_STATUSES)),
               limit: int = ops.account.DEFAULT_ORDER_LIMIT, rt: Runtime = Opened) -> list[dict[str, Any]]:
        """The latest orders, newest first, as ``orders --format json``."""
        return ops.account.orders(rt, status, limit)

    @app.get("/api/fills", tags=["account"])
    def fills(start: str | None = Query(None, description="YYYY-MM-DD (default: 29 days before end)"),
              end: str | None = Query(None, description="YYYY-MM-DD, included (default: today)"),
              rt: Runtime = Opened) -> list[dict[str, Any]]:
        """The fills traded from start to end, oldest first, as ``fills --format json``."""
        return ops.account.fills(rt, parse_optional_day(start, "start"), parse_optional_day(end, "end"))

    @app.get("/api/equity", tags=["account"])
    def equity(start: str | None = Query(None, description="YYYY-MM-DD (default: 29 days before end)"),
               end: str | None = Query(None, description="YYYY-MM-DD, included (default: today)"),
               rt: Runtime = Opened) -> list[dict[str, Any]]:
        """The portfolio snapshots of the trading dates from start to end, oldest first."""
        return ops.account.equity(rt, parse_optional_day(start, "start"), parse_optional_day(end, "end"))

    @app.get("/api/watchlist", tags=["account"])
    def watchlist(date: str | None = Query(None, description="YYYY-MM-DD (default: the latest list dated today "
                                                             "or earlier)"),
                  rt: Runtime = Opened) -> dict[str, Any]:
        """The watchlist in force on the date, as ``watchlist --format json`` (404: none yet)."""
        return ops.watchlist.view(rt, parse_optional_day(date, "date"))

    @app.get("/api/risk", tags=["account"])
    def risk(rt: Runtime = Opened) -> dict[str, Any]:
        """The limits, the latest risk check's metrics, the latest breaches, the halt."""
        return ops.risk.view(rt)

    @app.get("/api/audit", tags=["console"])
    def audit(limit: int = Query(ops.console.DEFAULT_AUDIT_LIMIT, description="entries, 1 to 1000"),
              rt: Runtime = Opened) -> list[dict[str, Any]]:
        """The account's mutations asked of the console (token accepted), newest first:
        id, at, user_id, dry_run, action, detail, client, status_code, outcome."""
        return ops.console.audit_log(rt, limit)

    @app.post("/api/halt", tags=["console"], dependencies=[mutation("halt")])
    def halt(body: HaltRequest, request: Request, rt: Runtime = Opened) -> dict[str, Any]:
        """Halt trading for the account, as ``halt``: {halt, made} (made: false if a
        halt was already in force, kept as it was). Needs the token."""
        audit = audit_of(request)
        audit.detail["reason"] = body.reason

        def audited(connection: Connection, change: HaltChange) -> None:
            audit.write(connection, 200, "halted" if change.made else "already halted")

        change = ops.halts.halt(rt, body.reason, audited)
        return {"halt": halt_view(change.halt, settings.display_tz), "made": change.made}

    @app.post("/api/resume", tags=["console"], dependencies=[mutation("resume")],
              responses={409: {"description": NOT_HALTED}})
    def resume(request: Request, rt: Runtime = Opened) -> dict[str, Any]:
        """End the account's halt, as ``resume``: {halt} (the halt that ended); 409 if
        trading is not halted. Needs the token."""
        audit = audit_of(request)

        def audited(connection: Connection, resumed: Any) -> None:
            audit.write(connection, 200 if resumed is not None else 409, "resumed" if resumed else NOT_HALTED)

        resumed = ops.halts.resume(rt, audited)
        if resumed is None:
            raise HTTPException(409, NOT_HALTED)
        return {"halt": halt_view(resumed, settings.display_tz)}

    @app.post("/api/emergency-stop", tags=["console"], dependencies=[mutation("emergency-stop")])
    def emergency(body: EmergencyStopRequest, request: Request, rt: Runtime = Opened) -> dict[str, Any]:
        """Halt trading (a halt in force is kept), cancel every open order of the
        account, and with ``flatten`` place a market sell of every position through the
        risk gate as a protective exit (reason ``emergency stop: <reason>``), in one
        transaction: {halt, halted, halt_made, cancelled, not_cancelled, exit_orders,
        positions, trading_date}. A paper exit fills at the next position_monitoring
        tick of its trading date, as other exits do; a live one is sent to KIS after the
        commit. Needs the token."""
        audit = audit_of(request)
        audit.detail.update(reason=body.reason, flatten=body.flatten)

        def audited(connection: Connection, stop: EmergencyStop) -> None:
            audit.detail.update(stop.summary())
            audit.write(connection, 200, f"stopped: {stop.cancelled} order(s) cancelled, "
                        f"{stop.exit_orders} exit(s) placed" + ("" if stop.halt_made else " (already halted)"))

        stop = emergency_stop(rt, body.reason, body.flatten, audited)
        return {"halt": halt_view(stop.halt, settings.display_tz), **stop.summary()}

    @app.post("/api/jobs/{name}/run", tags=["console"], status_code=202, dependencies=[mutation("run-job")],
              responses={409: {"description": "no scheduler of the account is running"}})
    def run_job(name: str, request: Request, body: RunRequest | None = Body(None),
                rt: Runtime = Opened) -> dict[str, Any]:
        """Queue a run of the job now, checked as ``run-job`` checks it, for a running
        scheduler of the account to run within seconds (origin manual, in the run
        ledger): 202 {queued_id, job, trading_date}; 409 if no scheduler of the
        account beat within 2 minutes. Follow it at ``/api/queued-runs/{queued_id}``.
        Needs the token."""
        audit = audit_of(request)
        text = body.date if body is not None else None
        audit.detail["date"] = text

        def audited(connection: Connection, answer: dict[str, Any]) -> None:
            audit.detail["trading_date"] = answer["trading_date"]
            audit.write(connection, 202, f"queued as {answer['queued_id']}")

        return ops.console.queue_run(rt, name, parse_optional_day(text, "date"), audit.client, audited)

    @app.get("/api/queued-runs/{queued_id}", tags=["console"])
    def queued_run(queued_id: int, rt: Runtime = Opened) -> dict[str, Any]:
        """A queued run: id, job, trading_date, status (queued, running, done, failed),
        run_id and outcome (its run in the ledger, once run), requested_at,
        requested_by, finished_at."""
        return ops.console.queued_run(rt, queued_id)

    @app.get("/metrics", tags=["probes"], response_class=Response)
    def metrics(rt: Runtime = Opened) -> Response:
        """The account's runs, fire lateness, account figures, halt and calendar horizon
        in the Prometheus text format, read from the database at each scrape (so every
        process serving the account says the same)."""
        body, content_type = render_metrics(rt)
        return Response(body, media_type=content_type)

    return app


def _detail(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": first_line(message) or "error"}, status_code=status_code)


def _audited(handler: Callable[[Request, Exception], Any]) -> Callable[[Request, Exception], Any]:
    """``handler``, writing the answer to the audit of a mutation whose token was
    accepted, unless the change wrote it already."""

    async def answer(request: Request, exc: Exception) -> Response:
        response: Response = await handler(request, exc)
        audit: Audit | None = getattr(request.state, "audit", None)
        if audit is not None and not audit.written:
            try:
                outcome = str(json.loads(bytes(response.body)).get("detail", ""))
            except (ValueError, AttributeError):
                outcome = ""
            await run_in_threadpool(audit.record, response.status_code, outcome)
        return response

    return answer


def _add_error_handlers(app: FastAPI) -> None:
    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(404, str(exc))

    async def invalid_argument(_request: Request, exc: Exception) -> JSONResponse:
        name = getattr(exc, "name", "")
        return _detail(422, f"Invalid value for '{name}': {exc}" if name else str(exc))

    async def bad_usage(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(422, str(exc))

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        if not errors:
            return _detail(422, str(exc))
        error = errors[0]
        where = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")]
        message = str(error.get("msg", "not accepted"))
        return _detail(422, f"Invalid value for '{'.'.join(where)}': {message}" if where else message)

    async def database_error(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(503, f"database error: {database_error_line(exc)}")

    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(409, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return await http_exception_handler(request, exc)

    app.add_exception_handler(NoWatchlist, _audited(not_found))
    app.add_exception_handler(QueuedRunNotFound, _audited(not_found))
    app.add_exception_handler(InvalidArgument, _audited(invalid_argument))
    app.add_exception_handler(ConfigurationError, _audited(bad_usage))  # an unknown job among them
    app.add_exception_handler(CalendarError, _audited(bad_usage))
    app.add_exception_handler(RequestValidationError, _audited(invalid_request))
    app.add_exception_handler(SQLAlchemyError, _audited(database_error))
    app.add_exception_handler(NoLiveScheduler, _audited(conflict))
    app.add_exception_handler(StarletteHTTPException, _audited(http_error))
