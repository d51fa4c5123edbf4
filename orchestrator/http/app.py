"""The read-only HTTP app: ``/metrics``, ``/livez``, ``/readyz`` and ``/`` (the status page).

It reads, never writes: the handlers call the store's read methods only (read-only
transactions, which never wait for the store's write slots, so a scrape answers while a pass
holds the SQLite write lock) and the in-memory metrics. Only GET (and HEAD) routes exist;
anything else is 404 or 405. No secret reaches a page, a metric or a header: the pages show
SIDs (identifiers) and state, the readiness reasons are fixed sentences, and the database URL
or a Twilio error body never appears.

``Sources`` is what the app reads: the store, the metrics and the current workflow context
(a reload replaces it; only its exports, policies, health and archive setting are read).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from orchestrator.domain.observed import export_ranges
from orchestrator.domain.plan import budget_window
from orchestrator.errors import StoreError
from orchestrator.http.page import ExportView, PageData, render_page
from orchestrator.logs import get_logger
from orchestrator.metrics import CONTENT_TYPE, Metrics
from orchestrator.store.repository import Store
from orchestrator.workflows.context import WorkflowContext

log = get_logger(__name__)

# The page shows this many of the newest jobs and transitions.
PAGE_JOBS = 50
PAGE_CHANGES = 50
# A database that does not answer within this is not ready.
READY_TIMEOUT_SECONDS = 5.0

# Headers on every answer: no caching of state, no sniffing, and no script, frame or remote
# resource on the page (its CSS is inline).
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Sources:
    """What the endpoint reads."""

    store: Store
    metrics: Metrics
    # The current context (a reload replaces it).
    context: Callable[[], WorkflowContext]


SOURCES = web.AppKey("sources", Sources)


def make_app(sources: Sources) -> web.Application:
    """The app over ``sources``; serve it with ``serve.start_http``."""
    app = web.Application(middlewares=[_headers])
    app[SOURCES] = sources
    app.router.add_get("/", status_page)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.cleanup_ctx.append(_logged)
    return app


async def _logged(app: web.Application) -> AsyncIterator[None]:
    log.debug("http.app_started")
    yield
    log.debug("http.app_stopped")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        error.headers.update(_HEADERS)
        raise
    response.headers.update(_HEADERS)
    return response


async def livez(request: web.Request) -> web.Response:
    """200 while the event loop turns (this answer is the proof)."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers and Twilio has not rejected the credentials, else 503."""
    sources = request.app[SOURCES]
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await sources.store.ping()
    except (StoreError, TimeoutError) as error:
        log.warning("http.not_ready", reason="database", error=str(error))
        return _not_ready("the database does not answer")
    if sources.context().health.auth_failure is not None:
        return _not_ready("Twilio rejected the credentials; fix them and reload")
    return web.json_response({"ready": True})


def _not_ready(reason: str) -> web.Response:
    return web.json_response({"ready": False, "reason": reason}, status=503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format: the in-process counters and the database's gauges."""
    sources = request.app[SOURCES]
    ctx = sources.context()
    now = ctx.now()
    sources.metrics.set_credentials_ok(ctx.health.auth_failure is None)
    try:
        snapshot = await sources.store.metrics_snapshot(
            now, export_ranges(ctx.exports, now), budget_since=budget_window(now)[0]
        )
    except StoreError as error:
        # The in-process metrics still answer; the database's gauges are left out.
        log.warning("http.metrics_store_failed", error=str(error))
        sources.metrics.clear_snapshot()
    else:
        sources.metrics.set_snapshot(snapshot, budget=ctx.policies.plan.daily_day_budget)
    # No await between setting the snapshot and rendering it: concurrent scrapes cannot mix.
    body = sources.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def status_page(request: web.Request) -> web.Response:
    """The status page: per export a calendar of its days, the jobs, risk, recent changes."""
    sources = request.app[SOURCES]
    store = sources.store
    ctx = sources.context()
    now = ctx.now()
    ranges = export_ranges(ctx.exports, now)
    views = [
        ExportView(export, {day.day: day for day in await store.days_in_range(export)})
        for export in ranges
    ]
    named = {r.name for r in ranges}
    idle = [(spec.name, spec.resource_type) for spec in ctx.exports if spec.name not in named]
    snapshot = await store.metrics_snapshot(now, (), budget_since=budget_window(now)[0])
    data = PageData(
        now=now,
        account_sid=store.account_sid,
        exports=views,
        idle_exports=idle,
        at_risk=snapshot.at_risk,
        archive_on=ctx.archive is not None,
        jobs=await store.recent_jobs(PAGE_JOBS),
        job_count=sum(snapshot.jobs.values()),
        changes=await store.recent_changes(PAGE_CHANGES),
        credentials_problem=ctx.health.auth_failure,
    )
    return web.Response(text=render_page(data), content_type="text/html", charset="utf-8")
