"""Keeps time for the daemon; the only module that imports APScheduler.

It only keeps time: every durable fact (a job's next poll, a day's status) lives in the store,
and each scheduled pass asks the store what is due. APScheduler's memory job store forgets on
restart, which is fine because nothing here needs remembering.

Draining: APScheduler 3's ``shutdown(wait=True)`` cannot wait under asyncio (it cancels), so
``Ticker`` tracks the tasks of the passes it started, stops starting new ones, waits for the
running ones up to a deadline, and only then shuts the scheduler down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from orchestrator.logs import get_logger

Pass = Callable[[], Awaitable[None]]

log = get_logger(__name__)


def _silence_apscheduler() -> None:
    """Keep APScheduler's own stdlib log records out of the output.

    Unhandled, they reach stderr as plain text through logging's last-resort handler, amid the
    JSON lines ops parse. Everything they say (a pass failed, missed or skipped) reaches the
    listeners below and is logged as an event instead.
    """
    logger = logging.getLogger("apscheduler")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


class Ticker:
    """Runs named async passes on intervals, with early wake-ups and a draining stop."""

    def __init__(self, *, misfire_grace_seconds: int = 60) -> None:
        self._scheduler = AsyncIOScheduler(
            timezone=dt.UTC,
            job_defaults={
                # A pass that fell behind runs once, not once per missed interval.
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": misfire_grace_seconds,
            },
        )
        self._scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        _silence_apscheduler()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._accepting = True

    def every(self, name: str, seconds: float, run: Pass, *, first_in: float = 0.0) -> None:
        """Run ``run`` every ``seconds`` (real time), the first time after ``first_in``."""
        if seconds <= 0:
            raise ValueError(f"interval of pass {name!r} must be positive, got {seconds}")
        self._scheduler.add_job(
            self._tracked(name, run),
            trigger="interval",
            seconds=seconds,
            id=name,
            name=name,
            replace_existing=True,
            next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(0.0, first_in)),
        )

    def run_soon(self, name: str, delay_seconds: float = 0.0) -> None:
        """Bring the next run of pass ``name`` forward to ``delay_seconds`` from now.

        A later time than the one already scheduled is ignored: waking early is always safe
        (the pass asks the store what is due), waking late is not.
        """
        job = self._scheduler.get_job(name)
        if job is None or not self._accepting:
            return
        wanted = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=max(0.0, delay_seconds))
        scheduled: dt.datetime | None = job.next_run_time
        if scheduled is None or wanted < scheduled:
            job.modify(next_run_time=wanted)

    def start(self) -> None:
        """Start keeping time; needs a running event loop."""
        self._scheduler.start()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    async def stop(self, deadline_seconds: float) -> bool:
        """Stop starting passes, let running ones finish within the deadline, then shut down.

        Returns True when every pass finished in time (none had to be cancelled).
        """
        self._accepting = False
        if self._scheduler.running:
            self._scheduler.pause()
        pending = {task for task in self._in_flight if not task.done()}
        finished_in_time = True
        if pending:
            _, late = await asyncio.wait(pending, timeout=deadline_seconds)
            for task in late:
                task.cancel()
            if late:
                finished_in_time = False
                await asyncio.wait(late)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            # The asyncio scheduler shuts down through call_soon; give it that turn.
            await asyncio.sleep(0)
        return finished_in_time

    def _tracked(self, name: str, run: Pass) -> Callable[[], Awaitable[None]]:
        async def tracked() -> None:
            if not self._accepting:
                return
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.add(task)
            try:
                await run()
            finally:
                if task is not None:
                    self._in_flight.discard(task)

        tracked.__name__ = f"pass_{name}"
        return tracked

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("scheduler.pass_missed", name=event.job_id)
        elif event.exception is not None:
            log.error(
                "scheduler.pass_failed",
                name=event.job_id,
                error=repr(event.exception),
                error_type=type(event.exception).__name__,
                traceback=event.traceback,
            )

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        # The pass is still running from its last tick; this tick is dropped (coalesced). Normal
        # when a pass waits on a slow Twilio for longer than its interval.
        log.debug("scheduler.pass_skipped", name=event.job_id, reason="still running")
