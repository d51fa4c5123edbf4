"""The daemon: builds everything from config once, owns start-up, signals and shutdown.

Start-up: load config (a ConfigError reaches the CLI, which exits 78), set up logs, migrate the
database, build the client and the store, start the passes, then tell systemd READY=1.

Passes, each asking the store what is due (the database is the source of truth):
- wanted: record the days the config wants now (also the daily advance of open-ended and
  sliding exports);
- submit: adopt jobs whose create may have reached Twilio, then plan and submit new jobs;
- poll: fetch due jobs, record per-day changes, schedule the next poll;
- archive: download, verify and keep each successful day's file (when [archive] is set);
- cleanup: delete stale, finished and orphaned jobs of ours (with archiving on, only once
  their files are safe).

Signals: SIGTERM/SIGINT stop taking work and drain within the deadline; SIGHUP reloads the
config (a bad one is logged and the old one kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TextIO

import aiohttp

from orchestrator.clock import Clock, SystemClock
from orchestrator.config import Settings, load_settings, redaction_secrets
from orchestrator.errors import ConfigError
from orchestrator.logs import SecretRedactor, configure_logging, detect_format, get_logger
from orchestrator.scheduling import Ticker
from orchestrator.store.engine import create_engine
from orchestrator.store.migration import upgrade_to_head
from orchestrator.store.repository import Store
from orchestrator.systemd import Notifier, run_watchdog, watchdog_interval
from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials, new_http_session
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.cleanup import clean_up
from orchestrator.workflows.context import ApiHealth, WorkflowContext
from orchestrator.workflows.poll import poll_due_jobs
from orchestrator.workflows.submit import adopt_submitting_jobs, submit_planned_jobs
from orchestrator.workflows.wanted import all_wanted_days_final, record_wanted_days

log = get_logger(__name__)

# SIGTERM must finish well inside systemd's TimeoutStopSec (30 s in the shipped unit).
DRAIN_SECONDS = 8.0
# Simulated-time cadence of the passes that are not driven by a stored due time.
WANTED_EVERY = dt.timedelta(hours=1)
SUBMIT_EVERY = dt.timedelta(minutes=1)
ARCHIVE_EVERY = dt.timedelta(minutes=1)
# Real-time bounds on any pass interval: never spin, never sleep through a due poll for long.
MIN_REAL_INTERVAL = 0.05
MAX_POLL_REAL_INTERVAL = 15.0


def client_settings(settings: Settings) -> ClientSettings:
    return ClientSettings(
        base_url=settings.twilio.base_url,
        requests_per_second=settings.twilio.requests_per_second,
        max_concurrent_requests=settings.twilio.max_concurrent_requests,
        request_timeout=settings.twilio.request_timeout.total_seconds(),
        download_read_timeout=(
            settings.archive.download_read_timeout.total_seconds() if settings.archive else 60.0
        ),
        max_concurrent_downloads=(
            settings.archive.max_concurrent_downloads if settings.archive else 2
        ),
    )


def client_credentials(settings: Settings) -> Credentials:
    secret = settings.credentials.password.get_secret_value()
    if settings.credentials.method == "api_key":
        return Credentials.from_api_key(
            settings.twilio.account_sid, settings.credentials.username, secret
        )
    return Credentials.from_auth_token(settings.twilio.account_sid, secret)


def all_secrets(settings: Settings) -> list[str]:
    """Every form a secret may take in a log line (the raw value and its Basic encoding)."""
    return [*redaction_secrets(settings), *client_credentials(settings).secret_values()]


@contextlib.asynccontextmanager
async def open_workflow_context(
    settings: Settings, *, clock: Clock, rand: Callable[[], float]
) -> AsyncIterator[WorkflowContext]:
    """A context on its own: the store (migrated) and a client for ``settings``, closed after.

    For driving the passes outside ``orchestrator run`` (``run_cycle``: the end-to-end tests,
    the benchmarks). The daemon wires its own, since a reload replaces the client.
    """
    if settings.state.database_url.get_secret_value().startswith("sqlite"):
        settings.state.directory.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.state.database_url.get_secret_value())
    try:
        await upgrade_to_head(engine)
        async with new_http_session(client_settings(settings)) as session:
            client = BulkExportsClient(
                client_credentials(settings),
                session=session,
                settings=client_settings(settings),
                clock=clock,
            )
            try:
                yield WorkflowContext(
                    store=Store(engine, settings.twilio.account_sid),
                    client=client,
                    clock=clock,
                    settings=settings,
                    health=ApiHealth(),
                    random=rand,
                )
            finally:
                await client.aclose()
    finally:
        await engine.dispose()


async def run_cycle(ctx: WorkflowContext) -> None:
    """Every pass once, in order: the burst mode tests and ``--exit-when-done`` build on."""
    await record_wanted_days(ctx)
    await adopt_submitting_jobs(ctx)
    await submit_planned_jobs(ctx)
    await poll_due_jobs(ctx)
    # Before cleanup, so a job can be deleted in the same cycle its files are stored.
    await archive_due_days(ctx)
    await clean_up(ctx, sweep_orphans=True)


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Daemon:
    """One run of ``orchestrator run``."""

    def __init__(
        self,
        config_path: Path,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        notifier: Notifier | None = None,
        exit_when_done: bool = False,
        log_stream: TextIO | None = None,
        rand: Callable[[], float] = random.random,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier or Notifier.from_environ(self.environ)
        self.exit_when_done = exit_when_done
        self.log_stream = log_stream
        self.rand = rand
        self.drain_seconds = drain_seconds
        self.redactor = SecretRedactor()
        self.health = ApiHealth(on_change=self._report_health)
        self._stop = asyncio.Event()
        self._exit_code = 0
        self._ctx: WorkflowContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._reload_at_start = False

    # ------------------------------------------------------------------ life cycle

    async def run(self) -> int:
        """Run until stopped (or done, with ``exit_when_done``); return the exit code."""
        loop = asyncio.get_running_loop()
        # From the very start: a SIGTERM or SIGHUP during a long migration would otherwise kill
        # the process (their default action) instead of stopping or reloading it once it runs.
        for signum, handler in (
            (signal.SIGTERM, self.request_stop),
            (signal.SIGINT, self.request_stop),
            (signal.SIGHUP, self.request_reload),
        ):
            loop.add_signal_handler(signum, handler)
        try:
            return await self._start_and_serve()
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)

    async def _start_and_serve(self) -> int:
        settings = load_settings(self.config_path, environ=self.environ)
        self._configure_logs(settings)
        if settings.state.database_url.get_secret_value().startswith("sqlite"):
            settings.state.directory.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.state.database_url.get_secret_value())
        try:
            await upgrade_to_head(engine)
            log.info("daemon.migrated")
            async with new_http_session(client_settings(settings)) as session:
                self._session = session
                store = Store(engine, settings.twilio.account_sid)
                self._ctx = self._context(settings, store)
                await self._serve()
        finally:
            await engine.dispose()
        return self._exit_code

    async def _serve(self) -> None:
        ctx = self._require_ctx()
        ticker = Ticker()
        self._schedule(ticker, ctx.settings)
        loop = asyncio.get_running_loop()
        watchdog: asyncio.Task[None] | None = None
        interval = watchdog_interval(self.environ)
        if interval is not None:
            watchdog = asyncio.create_task(run_watchdog(self.notifier, interval, lambda: True))
        ticker.start()
        log.info(
            "daemon.started",
            exports=len(ctx.settings.exports),
            prefix=ctx.settings.jobs.name_prefix,
            archive=ctx.settings.archive is not None,
            exit_when_done=self.exit_when_done,
        )
        self.notifier.ready(status="running")
        if self._reload_at_start:
            # The file may have changed after start-up read it.
            self.request_reload()
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            # A second signal while draining acts as usual (Ctrl-C twice ends it at once).
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
            if self._reloading is not None:
                await asyncio.wait([self._reloading], timeout=self.drain_seconds)
            drained = await ticker.stop(self.drain_seconds)
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            log.info("daemon.stopped", drained=drained, exit_code=self._exit_code)

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("daemon.stopping")
            self._stop.set()

    def request_reload(self) -> None:
        if self._ctx is None:
            self._reload_at_start = True
        elif self._reloading is None or self._reloading.done():
            self._reloading = asyncio.create_task(self._reload_until_current())
        else:
            # The running reload may have read the file already: read it once more after it.
            self._reload_again = True

    async def _reload_until_current(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again:
                return

    # ------------------------------------------------------------------ passes

    def _schedule(self, ticker: Ticker, settings: Settings) -> None:
        def real(delta: dt.timedelta, upper: float | None = None) -> float:
            seconds = max(MIN_REAL_INTERVAL, self.clock.real_seconds(delta))
            return min(seconds, upper) if upper is not None else seconds

        poll_every = real(settings.polling.initial_delay / 2, MAX_POLL_REAL_INTERVAL)
        ticker.every("wanted", real(WANTED_EVERY), self._pass(record_wanted_days))
        ticker.every("submit", real(SUBMIT_EVERY), self._submit_pass, first_in=0.0)
        ticker.every("poll", poll_every, self._poll_pass, first_in=poll_every / 2)
        # Always scheduled: a no-op without [archive], and a reload may turn archiving on.
        ticker.every("archive", real(ARCHIVE_EVERY), self._pass(archive_due_days), first_in=1.0)
        ticker.every("cleanup", real(settings.cleanup.interval), self._pass(clean_up))
        ticker.every("orphans", real(settings.cleanup.orphan_interval), self._orphan_pass)

    def _pass(
        self, workflow: Callable[[WorkflowContext], Awaitable[object]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await workflow(self._require_ctx())

        return run

    async def _orphan_pass(self) -> None:
        await clean_up(self._require_ctx(), sweep_orphans=True)

    async def _submit_pass(self) -> None:
        ctx = self._require_ctx()
        await adopt_submitting_jobs(ctx)
        await submit_planned_jobs(ctx)

    async def _poll_pass(self) -> None:
        ctx = self._require_ctx()
        await poll_due_jobs(ctx)
        if self.exit_when_done and await all_wanted_days_final(
            ctx, require_archived=ctx.settings.archive is not None
        ):
            # Tidy up what is finished before leaving: a one-shot backfill leaves no jobs.
            await clean_up(ctx)
            log.info("daemon.all_days_final")
            self.request_stop()

    # ------------------------------------------------------------------ reload

    async def reload(self) -> None:
        """Load the config again; keep the old one, whole, if the new one is bad."""
        self.notifier.reloading()
        old = self._require_ctx()
        try:
            settings = load_settings(self.config_path, environ=self.environ)
        except ConfigError as error:
            log.error("config.reload_failed", error=str(error), kept=str(old.settings.source))
            self.notifier.ready(status="running (reload failed: old config kept)")
            return
        if settings.state.database_url != old.settings.state.database_url:
            log.error(
                "config.reload_failed",
                error="state.database_url changed: restart the daemon to switch databases",
                kept=str(old.settings.source),
            )
            self.notifier.ready(status="running (reload failed: old config kept)")
            return
        self._configure_logs(settings)
        # The old client is not closed: a pass already running holds the old context and may
        # still call Twilio through it (closing it failed that pass mid-way). It owns nothing
        # to release (the daemon owns the shared session), so it simply goes out of use.
        self.health = ApiHealth(on_change=self._report_health)
        self._ctx = self._context(settings, old.store)
        old.health.retire()
        if old.health.auth_failure is not None:
            log.info("twilio.auth_restored")
            self._report_health(self.health)
        log.info("config.reloaded", exports=len(settings.exports))
        await record_wanted_days(self._ctx)
        self.notifier.ready(status="running")

    # ------------------------------------------------------------------ helpers

    def _context(self, settings: Settings, store: Store) -> WorkflowContext:
        assert self._session is not None
        client = BulkExportsClient(
            client_credentials(settings),
            session=self._session,
            settings=client_settings(settings),
            clock=self.clock,
        )
        return WorkflowContext(
            store=store,
            client=client,
            clock=self.clock,
            settings=settings,
            health=self.health,
            random=self.rand,
        )

    def _configure_logs(self, settings: Settings) -> None:
        self.redactor.replace(all_secrets(settings))
        fmt = detect_format(settings.logging.format, self.environ, self.log_stream)
        configure_logging(
            redactor=self.redactor,
            level=settings.logging.level,
            json=fmt != "console",
            journal=fmt == "journal",
            stream=self.log_stream,
        )

    def _report_health(self, health: ApiHealth) -> None:
        status = "running" if health.healthy else f"unhealthy: {health.auth_failure}"
        self.notifier.status(status)

    def _require_ctx(self) -> WorkflowContext:
        assert self._ctx is not None, "the daemon is not running"
        return self._ctx
