"""The daemon: builds everything from config once, owns start-up, signals and shutdown.

Start-up: load config (a ConfigError reaches the CLI, which exits 78), set up logs, migrate the
database, build the client and the store, record the wanted days, start the passes, then tell
systemd READY=1.

The database may not be there yet (a PostgreSQL server still booting) or may go away while we
run. Either way the daemon waits for it rather than exiting: it tries again after about 1 s,
doubling to 60 s (``domain.reconnect``), logs ``store.unavailable`` once per outage with the
reason and ``store.available`` when it is back, shows it in the systemd STATUS line, keeps the
watchdog fed, and sends READY=1 only once the migrations have run. While it is away the passes
are held (nothing is lost: every write is one transaction, rolled back whole when the
connection goes); when it is back they all run at once.

Passes, each asking the store what is due (the database is the source of truth):
- wanted: record the days the config wants now (also the daily advance of open-ended and
  sliding exports);
- submit: adopt jobs whose create may have reached Twilio, then plan and submit new jobs;
- poll: fetch due jobs, record per-day changes, schedule the next poll;
- archive: download, verify and keep each successful day's file (when [archive] is set);
- cleanup: delete stale, finished and orphaned jobs of ours (with archiving on, only once
  their files are safe).

Passes run when there is work, not only on their tick: the submit pass right after start-up,
when the wanted days grow, and when a Pending day's resubmit delay ends; the archive pass when
a poll found days whose files are waiting.

Signals: SIGTERM/SIGINT stop taking work (also while waiting for the database) and drain
within the deadline; SIGHUP reloads the config (a bad one is logged and the old one kept).

Leadership (one active daemon per account, ``domain.leadership``, ``store.leadership``): after
migrating, the daemon tries for the account's lock. Without it, it stands by: logs
``daemon.standby`` (with the holder where it can tell), sends READY=1 and
``STATUS=standby: ...``, keeps its watchdog and endpoint, and tries again every
``[ha] takeover_interval``. With it, it records the takeover (the next epoch, which fences every
write of the store), logs ``daemon.leader`` and runs the passes from what the database holds.
While leading it confirms the lock every fifth of a lease; a request to Twilio or a write is
let through only within a lease of the last confirmation (``_gate``, the store's fence). When
the lock is lost (or cannot be confirmed in time) it stops acting at once, logs
``daemon.leadership_lost``, drains its passes briefly and stands by again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from orchestrator.clock import Clock, SystemClock
from orchestrator.config import Settings, load_settings
from orchestrator.domain.leadership import HaPolicy, Leader, Lease, standby_status
from orchestrator.domain.reconnect import Outage, ReconnectBackoff
from orchestrator.errors import ConfigError, NotLeader, StoreError
from orchestrator.http import Sources, start_http, stop_http
from orchestrator.logs import SecretRedactor, configure_logging, detect_format, get_logger
from orchestrator.metrics import Metrics
from orchestrator.scheduling import Ticker
from orchestrator.store.engine import shown_url, unavailable_reason
from orchestrator.store.leadership import LeaderLock, leader_lock, this_host
from orchestrator.store.repository import Fence, Store
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

# Re-exported: they lived here before orchestrator.wiring.
__all__ = ["Daemon", "all_secrets", "open_workflow_context", "run_cycle"]

log = get_logger(__name__)

# SIGTERM must finish well inside systemd's TimeoutStopSec (30 s in the shipped unit).
DRAIN_SECONDS = 8.0
# Real-time lower bound on any pass interval: never spin.
MIN_REAL_INTERVAL = 0.05
# Waiting for the database: about 1 s, doubling to 60 s (real seconds).
RECONNECT = ReconnectBackoff()
# A wake-up at a stored moment comes this much after it (real seconds), so the pass that wakes
# finds the moment passed on its own clock.
WAKE_MARGIN_SECONDS = 0.05
# Leadership lost: passes in flight are given this long to notice (every request and write
# of theirs is refused already) before they are cancelled.
LOST_DRAIN_SECONDS = 2.0


class _StopWhileWaiting(Exception):
    """A stop was asked for while the daemon waited for its database at start-up."""


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
        reconnect: ReconnectBackoff = RECONNECT,
    ) -> None:
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier or Notifier.from_environ(self.environ)
        self.exit_when_done = exit_when_done
        self.log_stream = log_stream
        self.rand = rand
        self.drain_seconds = drain_seconds
        self.reconnect = reconnect
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
        # The database as we last saw it; outages are timed on the wall clock, not self.clock.
        self._outage = Outage()
        self._wall = SystemClock()
        self._database = "the database"
        self._probe: asyncio.Task[None] | None = None
        self._ticker: Ticker | None = None
        # Set while start-up waits for the database: a stop then cancels the wait at once.
        self._waiting_task: asyncio.Task[object] | None = None
        self._cleaning = asyncio.Lock()
        # Leadership: whether this process leads, its lease (monotonic seconds, never the
        # possibly simulated clock), and a nudge for the heartbeat when a lease ran out.
        self._leading = False
        self._lease = Lease(confirmed_at=0.0, seconds=0.0)
        self._confirm_now = asyncio.Event()
        self._role_status = "starting"
        self._ready_sent = False
        self._stopping_said = False
        self._drained = True

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
        # Fed from the start: waiting for the database (or migrating) is not being stuck.
        watchdog: asyncio.Task[None] | None = None
        interval = watchdog_interval(self.environ)
        if interval is not None:
            watchdog = asyncio.create_task(run_watchdog(self.notifier, interval, lambda: True))
        try:
            return await self._start_and_serve()
        except (_StopWhileWaiting, asyncio.CancelledError) as stopped:
            if isinstance(stopped, asyncio.CancelledError):
                # Only our own cancel of a start-up still waiting for the database ends here.
                task = asyncio.current_task()
                if not (self._stop.is_set() and self._ctx is None) or task is None:
                    raise
                task.uncancel()
            self.notifier.stopping()
            log.info("daemon.stopped", drained=True, exit_code=self._exit_code, waited=True)
            return self._exit_code
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)

    async def _start_and_serve(self) -> int:
        settings = load_settings(self.config_path, environ=self.environ)
        self._configure_logs(settings)
        self._database = shown_url(settings.state.database_url.get_secret_value())
        async with open_settings_store(
            settings, migrate=True, wait=self._wait_for_database
        ) as store:
            self._database_back()
            log.info("daemon.migrated")
            async with new_http_session(client_settings(settings)) as session:
                self._session = session
                self._settings = settings
                self._ctx = self._context(settings, store)
                await self._serve()
        return self._exit_code

    async def _serve(self) -> None:
        settings = self._require_settings()
        store = self._require_ctx().store
        # The read-only endpoint, before READY=1 and in both roles; stopped last in the drain.
        http = await start_http(
            settings.http.address(),
            Sources(store=store, metrics=self.metrics, context=self._require_ctx),
        )
        loop = asyncio.get_running_loop()
        lock = leader_lock(
            settings.state.database_url.get_secret_value(),
            settings.twilio.account_sid,
            lease_seconds=self._ha.lease_seconds,
        )
        try:
            # At least one try, also when a stop came during start-up: a daemon that wins then
            # starts (and applies a reload that came with the stop) before it stops.
            while (started := await self._stand_by(lock)) is not None:
                await self._lead(lock, started)
                if self._stop.is_set():
                    break
        finally:
            self._say_stopping()
            # A second signal while draining acts as usual (Ctrl-C twice ends it at once).
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
            if self._reloading is not None:
                await asyncio.wait([self._reloading], timeout=self.drain_seconds)
            if self._probe is not None:
                self._probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._probe
            await lock.close()
            await stop_http(http)
            log.info("daemon.stopped", drained=self._drained, exit_code=self._exit_code)

    # ------------------------------------------------------------------ leadership

    @property
    def _ha(self) -> HaPolicy:
        return self._require_settings().ha.ha_policy()

    async def _stand_by(self, lock: LeaderLock) -> float | None:
        """Try for the lock until it is won (the monotonic time the winning try started) or a
        stop is asked for (None). Says who leads when that changes."""
        shown: Leader | bool | None = False  # False: nothing said yet
        while True:
            if not self._outage.down:  # while the database is away, the probe waits for it
                started = time.monotonic()
                try:
                    attempt = await lock.try_acquire()
                except StoreError as error:
                    self._lock_failed(error, lock)
                else:
                    if attempt.won:
                        return started
                    if shown is False or attempt.holder != shown:
                        shown = attempt.holder
                        self._standing_by(attempt.holder, lock)
            if self._stop.is_set():
                return None
            await self._sleep_unless_stopped(self._ha.takeover_seconds)

    def _lock_failed(self, error: StoreError, lock: LeaderLock) -> None:
        """A try for the lock (or its record) failed: an outage, or an error of its own."""
        reason = unavailable_reason(error)
        if reason is not None:
            self._database_away(reason)
        else:
            log.error("daemon.lock_failed", error=str(error), lock=lock.describe)

    def _standing_by(self, holder: Leader | None, lock: LeaderLock) -> None:
        fields: dict[str, object] = {"lock": lock.describe}
        if holder is not None:
            fields |= {
                "leader_host": holder.host,
                "leader_pid": holder.pid,
                "leader_since": holder.since.isoformat(),
            }
        log.info("daemon.standby", takeover_interval=self._ha.takeover_seconds, **fields)
        self._set_role_status(standby_status(holder))

    async def _lead(self, lock: LeaderLock, started: float) -> None:
        """Lead from a won lock until a stop is asked for or the lock is lost."""
        ctx = self._require_ctx()
        try:
            leader = await ctx.store.claim_leadership(this_host(), os.getpid(), self._wall.now())
        except StoreError as error:
            await lock.release()
            self._lock_failed(error, lock)
            await self._sleep_unless_stopped(self._ha.takeover_seconds)
            return
        assert leader.epoch is not None  # claim_leadership always returns the new epoch
        self._lease = Lease(confirmed_at=started, seconds=self._ha.lease_seconds)
        self._leading = True
        ctx.store.fence(Fence(leader.epoch, self._may_act))
        self.metrics.set_leader(True)
        log.info(
            "daemon.leader",
            epoch=leader.epoch,
            host=leader.host,
            pid=leader.pid,
            lock=lock.describe,
        )
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        heartbeat = asyncio.create_task(self._heartbeat(lock, lost))
        ticker = Ticker()
        self._ticker = ticker
        settings = self._require_settings()
        self._schedule(ticker, settings)
        stopped = asyncio.create_task(self._stop.wait())
        try:
            # The wanted days first, so the first submit (right after start) and the first
            # --exit-when-done check see them: a pass racing it would find an empty table.
            await self._guarded("wanted", self._wanted_pass)()
            ticker.start()
            log.info(
                "daemon.started",
                exports=len(settings.exports),
                prefix=settings.jobs.name_prefix,
                archive=settings.archive is not None,
                exit_when_done=self.exit_when_done,
            )
            self._set_role_status("running")
            if self._reload_at_start:
                # The file may have changed after start-up read it.
                self._reload_at_start = False
                self.request_reload()
            ends: list[asyncio.Future[Any]] = [stopped, lost]
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            was_lost = lost.done() and not lost.cancelled()
            if was_lost:
                # Refused already (``_leading`` went false with the loss): a short drain.
                drain = LOST_DRAIN_SECONDS
            else:
                # Stopping: passes in flight may still finish (and write) within the deadline.
                self._say_stopping()
                drain = self.drain_seconds
            self._drained = await ticker.stop(drain)
            self._ticker = None
            self._leading = False
            ctx.store.fence(Fence(leader.epoch, _never))
            # The standby may take over as soon as the lock is free.
            await lock.release()
            self.metrics.set_leader(False)
            if was_lost:
                log.warning("daemon.leadership_lost", reason=lost.result(), epoch=leader.epoch)

    async def _heartbeat(self, lock: LeaderLock, lost: asyncio.Future[str]) -> None:
        """Confirm the lock every fifth of a lease; renew the lease, or declare it lost."""
        ha = self._ha
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._confirm_now.wait(), timeout=ha.heartbeat_seconds)
            self._confirm_now.clear()
            started = time.monotonic()
            try:
                async with asyncio.timeout(ha.confirm_timeout_seconds):
                    await lock.confirm()
            except Exception as error:  # any failure to confirm: the lock cannot be relied on
                self._leading = False
                # Not an outage by itself: on PostgreSQL the server ends the lock's session
                # when the lease runs out. A database really away is seen by the next try for
                # the lock, which then waits for it as for any outage.
                reason = (
                    f"no confirmation within {ha.confirm_timeout_seconds:g} s"
                    if isinstance(error, TimeoutError)
                    else str(error)
                )
                if not lost.done():
                    lost.set_result(reason)
                return
            self._lease = self._lease.renewed(started)

    def _may_act(self) -> bool:
        """Whether this process may send Twilio a request or write now (see the docstring)."""
        if not self._leading:
            return False
        if self._lease.holds(time.monotonic()):
            return True
        # The lease ran out (a pause, a stuck loop): confirm now rather than at the next beat.
        self._confirm_now.set()
        return False

    def _gate(self) -> None:
        """The client's gate: no request leaves unless this process may act."""
        if not self._may_act():
            raise NotLeader("this instance cannot confirm that it leads: request not sent")

    def _say_stopping(self) -> None:
        """STOPPING=1, once."""
        if not self._stopping_said:
            self._stopping_said = True
            self.notifier.stopping()

    def _set_role_status(self, status: str) -> None:
        """The role in systemd's STATUS (READY=1 with the first one)."""
        self._role_status = status
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(status=status)
        else:
            self._report_health(self.health)

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("daemon.stopping")
            self._stop.set()
        if self._waiting_task is not None and not self._waiting_task.done():
            # Start-up is waiting for the database (or trying it once more): end it now.
            self._waiting_task.cancel()

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
                "submit": self._submit_pass,
            }
            run = own.get(spec.name) or self._pass(spec.run)
            if spec.deletes_jobs:
                run = self._one_cleanup_at_a_time(run)
            # Counted before the guard absorbs a store error: a pass that failed softly failed.
            run = self._guarded(spec.name, self.metrics.track_pass(spec.name, run))
            first_in = every * spec.first_in + spec.first_delay_seconds
            ticker.every(spec.name, every, run, first_in=first_in)

    def _one_cleanup_at_a_time(
        self, run: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Cleanup passes (and the last tidy-up) never overlap: two would delete one job twice
        ("cannot go from deleted to deleting"), as when every pass wakes after an outage."""

        async def serialized() -> None:
            async with self._cleaning:
                await run()

        return serialized

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
        added = await pass_spec("wanted").run(self._require_ctx())
        self._wanted_recorded = True
        if added:
            self._run_soon("submit")

    async def _submit_pass(self) -> None:
        await pass_spec("submit").run(self._require_ctx())
        await self._wake_submit_at_not_before()

    async def _poll_pass(self) -> None:
        ctx = self._require_ctx()
        polled = await pass_spec("poll").run(ctx)
        if polled:
            # A poll may have made days Completed (archive them now) or Failed (resubmit
            # them when their delay ends).
            await self._wake_submit_at_not_before()
            if ctx.archive is not None and await ctx.store.days_due_for_archiving(1, now=ctx.now()):
                self._run_soon("archive")
        if (
            self.exit_when_done
            and self._wanted_recorded
            and await ctx.store.all_wanted_final(require_archived=ctx.archive is not None)
        ):
            # Tidy up what is finished before leaving: a one-shot backfill leaves no jobs.
            async with self._cleaning:
                await clean_up(ctx)
            log.info("daemon.all_days_final")
            self.request_stop()

    async def _wake_submit_at_not_before(self) -> None:
        """Bring the submit pass forward to when the soonest resubmit delay ends."""
        ctx = self._require_ctx()
        now = ctx.now()
        soonest = await ctx.store.earliest_pending_not_before(now)
        if soonest is not None:
            delay = self.clock.real_seconds(soonest - now) + WAKE_MARGIN_SECONDS
            self._run_soon("submit", delay)

    def _run_soon(self, name: str, delay_seconds: float = 0.0) -> None:
        if self._ticker is not None:
            self._ticker.run_soon(name, delay_seconds)

    def _guarded(
        self, name: str, run: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """``run``, held while the database is away; a store failure is one event, not a
        traceback per tick."""

        async def guarded() -> None:
            if self._outage.down:
                return  # the probe runs every pass once the database is back
            try:
                await run()
            except NotLeader as error:
                # Leadership is confirmed (or given up) by the heartbeat, not by a pass.
                log.debug("pass.not_leader", name=name, reason=str(error))
            except (StoreError, OSError) as error:
                await self._pass_failed_on_store(name, error)

        return guarded

    # ------------------------------------------------------------------ the database

    async def _pass_failed_on_store(self, name: str, error: BaseException) -> None:
        """A pass met a store error: an outage (the database does not answer) or its own."""
        if self._outage.down:
            return
        reason: str | None
        try:
            await self._require_ctx().store.ping()
        except Exception as ping_error:
            reason = unavailable_reason(ping_error) or unavailable_reason(error)
        else:
            reason = None
        if reason is None:
            log.error(
                "pass.store_failed", name=name, error=str(error), error_type=type(error).__name__
            )
            return
        self._database_away(reason, failed_pass=name)

    async def _wait_for_database(self, reason: str) -> None:
        """Start-up could not reach the database: say so (once), back off, try again."""
        delay = self._database_away(reason)
        self._waiting_task = asyncio.current_task()
        try:
            await self._sleep_unless_stopped(delay)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stop.is_set() and task is not None:
                task.uncancel()
                raise _StopWhileWaiting from None
            raise
        if self._stop.is_set():
            raise _StopWhileWaiting

    def _database_away(self, reason: str, *, failed_pass: str | None = None) -> float:
        """Record one failed try; log and start probing when it starts an outage; the delay."""
        self._outage, started = self._outage.failed(reason, self._wall.now())
        delay = self.reconnect.delay(self._outage.failures, self.rand())
        if started:
            fields: dict[str, object] = {"database": self._database, "reason": reason}
            if failed_pass is not None:
                fields["failed_pass"] = failed_pass
            log.warning("store.unavailable", retry_in=round(delay, 1), **fields)
            if self._ctx is not None and (self._probe is None or self._probe.done()):
                self._probe = asyncio.create_task(self._probe_database())
        else:
            log.debug("store.still_unavailable", reason=reason, tries=self._outage.failures)
        self.notifier.status(
            f"waiting for the database: {reason} (try {self._outage.failures},"
            f" next in {delay:.0f} s)"
        )
        return delay

    def _database_back(self) -> None:
        self._outage, lasted = self._outage.recovered(self._wall.now())
        self._waiting_task = None
        if lasted is None:
            return
        log.info("store.available", database=self._database, down_seconds=lasted.total_seconds())
        self._report_health(self.health)
        if self._ticker is not None:
            for spec in PASSES:
                self._ticker.run_soon(spec.name)

    async def _probe_database(self) -> None:
        """While the database is away (after start-up): try it with backoff until it answers."""
        while self._outage.down and not self._stop.is_set():
            delay = self.reconnect.delay(self._outage.failures, self.rand())
            await self._sleep_unless_stopped(delay)
            if self._stop.is_set():
                return
            try:
                await self._require_ctx().store.ping()
            except Exception as error:
                reason = unavailable_reason(error) or f"{type(error).__name__}: {error}"
                self._database_away(reason)
            else:
                self._database_back()

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

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
        if self._leading:
            await self._guarded("wanted", self._wanted_pass)()
        self.notifier.ready(status=self._role_status)

    # ------------------------------------------------------------------ helpers

    def _context(self, settings: Settings, store: Store) -> WorkflowContext:
        assert self._session is not None
        return workflow_context(
            settings,
            store=store,
            client=make_client(
                settings,
                session=self._session,
                clock=self.clock,
                observer=self.metrics,
                gate=self._gate,
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
        status = self._role_status if health.healthy else f"unhealthy: {health.auth_failure}"
        self.notifier.status(status)

    def _require_ctx(self) -> WorkflowContext:
        assert self._ctx is not None, "the daemon is not running"
        return self._ctx

    def _require_settings(self) -> Settings:
        assert self._settings is not None, "the daemon is not running"
        return self._settings


def _never() -> bool:
    """The fence of a leadership that ended: no write passes."""
    return False
