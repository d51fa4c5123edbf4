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
import os
import random
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TextIO

import aiohttp

from orchestrator.clock import Clock, SystemClock
from orchestrator.config import Settings, load_settings
from orchestrator.errors import ConfigError
from orchestrator.http import Sources, start_http, stop_http
from orchestrator.logs import SecretRedactor, configure_logging, detect_format, get_logger
from orchestrator.metrics import Metrics
from orchestrator.scheduling import Ticker
from orchestrator.store.repository import Store
from orchestrator.systemd import Notifier, run_watchdog, watchdog_interval
from orchestrator.twilio import new_http_session
from orchestrator.wiring import (
    PASSES,
    all_secrets,
    client_settings,
    make_client,
    open_settings_store,
    open_workflow_context,
    pass_spec,
    run_cycle,
    workflow_context,
)
from orchestrator.workflows.archive import ArchiveReport
from orchestrator.workflows.cleanup import clean_up
from orchestrator.workflows.context import ApiHealth, WorkflowContext
from orchestrator.workflows.wanted import record_wanted_days

# Re-exported: they lived here before orchestrator.wiring.
__all__ = ["Daemon", "all_secrets", "open_workflow_context", "run_cycle"]

log = get_logger(__name__)

# SIGTERM must finish well inside systemd's TimeoutStopSec (30 s in the shipped unit).
DRAIN_SECONDS = 8.0
# Real-time lower bound on any pass interval: never spin.
MIN_REAL_INTERVAL = 0.05


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
        self._settings: Settings | None = None
        # Set once the first wanted pass has recorded its days: before that an empty days table
        # would read as "every wanted day is final" to --exit-when-done.
        self._wanted_recorded = False
        self._session: aiohttp.ClientSession | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._reload_at_start = False
        # The read-only endpoint's metrics (orchestrator.http): one registry per daemon.
        self.metrics = Metrics(passes=[spec.name for spec in PASSES])

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
        async with open_settings_store(settings, migrate=True) as store:
            log.info("daemon.migrated")
            async with new_http_session(client_settings(settings)) as session:
                self._session = session
                self._settings = settings
                self._ctx = self._context(settings, store)
                await self._serve()
        return self._exit_code

    async def _serve(self) -> None:
        ticker = Ticker()
        settings = self._require_settings()
        self._schedule(ticker, settings)
        # The read-only endpoint, before READY=1; stopped last in the drain.
        http = await start_http(
            settings.http.address(),
            Sources(
                store=self._require_ctx().store, metrics=self.metrics, context=self._require_ctx
            ),
        )
        loop = asyncio.get_running_loop()
        watchdog: asyncio.Task[None] | None = None
        interval = watchdog_interval(self.environ)
        if interval is not None:
            watchdog = asyncio.create_task(run_watchdog(self.notifier, interval, lambda: True))
        ticker.start()
        log.info(
            "daemon.started",
            exports=len(settings.exports),
            prefix=settings.jobs.name_prefix,
            archive=settings.archive is not None,
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
            await stop_http(http)
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
        """Every pass of ``wiring.PASSES`` on its cadence, in real seconds of this clock."""
        for spec in PASSES:
            every = max(MIN_REAL_INTERVAL, self.clock.real_seconds(spec.every(settings)))
            if spec.max_real_interval is not None:
                every = min(every, spec.max_real_interval)
            own: dict[str, Callable[[], Awaitable[None]]] = {
                "poll": self._poll_pass,
                "wanted": self._wanted_pass,
            }
            run = own.get(spec.name) or self._pass(spec.run)
            first_in = every * spec.first_in + spec.first_delay_seconds
            ticker.every(
                spec.name, every, self.metrics.track_pass(spec.name, run), first_in=first_in
            )

    def _pass(
        self, workflow: Callable[[WorkflowContext], Awaitable[object]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            ctx = self._require_ctx()
            result = await workflow(ctx)
            if isinstance(result, ArchiveReport):
                await self.metrics.archive_report(result, ctx.store)

        return run

    async def _wanted_pass(self) -> None:
        await pass_spec("wanted").run(self._require_ctx())
        self._wanted_recorded = True

    async def _poll_pass(self) -> None:
        ctx = self._require_ctx()
        await pass_spec("poll").run(ctx)
        if (
            self.exit_when_done
            and self._wanted_recorded
            and await ctx.store.all_wanted_final(require_archived=ctx.archive is not None)
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
        old_settings = self._require_settings()
        try:
            settings = load_settings(self.config_path, environ=self.environ)
        except ConfigError as error:
            log.error("config.reload_failed", error=str(error), kept=str(old_settings.source))
            self.notifier.ready(status="running (reload failed: old config kept)")
            return
        if settings.state.database_url != old_settings.state.database_url:
            log.error(
                "config.reload_failed",
                error="state.database_url changed: restart the daemon to switch databases",
                kept=str(old_settings.source),
            )
            self.notifier.ready(status="running (reload failed: old config kept)")
            return
        self._configure_logs(settings)
        # The old client is not closed: a pass already running holds the old context and may
        # still call Twilio through it (closing it failed that pass mid-way). It owns nothing
        # to release (the daemon owns the shared session), so it simply goes out of use.
        self.health = ApiHealth(on_change=self._report_health)
        self._settings = settings
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
        return workflow_context(
            settings,
            store=store,
            client=make_client(
                settings, session=self._session, clock=self.clock, observer=self.metrics
            ),
            clock=self.clock,
            health=self.health,
            rand=self.rand,
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

    def _require_settings(self) -> Settings:
        assert self._settings is not None, "the daemon is not running"
        return self._settings
