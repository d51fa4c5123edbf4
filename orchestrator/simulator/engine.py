"""The job lifecycle as a discrete-event model on the simulator's clock. Plain Python, no HTTP.

Jobs wait in one FIFO queue; at most ``max_running_jobs`` run at once. A running job spends
``job_base_seconds`` starting, then works through its days one at a time. A day attempt that
fails shows ErrorDuringRun and is retried after ``retry_delay_seconds``; after
``max_day_attempts`` failed attempts the day is Failed. ``advance(now)`` replays every event up to
``now`` in time order, so the state is the same however the requests are spaced.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
from dataclasses import dataclass, field

from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.logs import get_logger
from orchestrator.simulator import seeds
from orchestrator.simulator.files import file_spec
from orchestrator.simulator.settings import SimulatorSettings

log = get_logger(__name__)

_FINAL = frozenset({DayStatus.COMPLETED, DayStatus.COMPLETED_EMPTY_RECORDS, DayStatus.FAILED})


class QuotaExceeded(Exception):
    """A create would pass the daily requested-days quota."""

    def __init__(self, limit: int, used: int, requested: int, resets_at: dt.datetime) -> None:
        self.limit = limit
        self.used = used
        self.requested = requested
        self.resets_at = resets_at
        super().__init__(f"{used} + {requested} days would exceed {limit} per UTC day")


@dataclass(slots=True)
class SimDay:
    day: dt.date
    duration: dt.timedelta
    # Attempts that fail before one succeeds; >= max attempts means the day ends Failed.
    failing_attempts: int
    status: DayStatus = DayStatus.SUBMITTED
    attempts: int = 0
    ready_at: dt.datetime | None = None
    # When its file was made (the Days list's create_date); kept after the file expires, so
    # a benchmark can time each file's way to the archive from the ledger.
    completed_at: dt.datetime | None = None


@dataclass(slots=True)
class SimJob:
    seq: int
    job_sid: str
    friendly_name: str
    resource_type: ResourceType
    start_day: dt.date
    end_day: dt.date
    webhook_url: str | None
    webhook_method: str | None
    email: str | None
    created_at: dt.datetime
    stuck: bool
    base: dt.timedelta
    days: list[SimDay]
    upper_case: bool
    position_as_string: bool
    empty_details_on_create: bool
    started_at: dt.datetime | None = None
    current: SimDay | None = None
    next_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    # When the job stops being visible: delete grace over, or finished-job TTL over.
    gone_at: dt.datetime | None = None
    reported_position: int | None = None
    reads: int = 0

    @property
    def is_running(self) -> bool:
        return self.started_at is not None and self.finished_at is None and self.deleted_at is None

    @property
    def is_queued(self) -> bool:
        return self.started_at is None and self.deleted_at is None

    @property
    def day_count(self) -> int:
        return len(self.days)


@dataclass(frozen=True, slots=True)
class CompletedDay:
    resource_type: ResourceType
    day: dt.date
    created_at: dt.datetime
    friendly_name: str
    empty: bool


@dataclass(frozen=True, slots=True)
class JobView:
    """What a read shows of a job at one moment (before rendering quirks)."""

    job: SimJob
    groups: tuple[tuple[DayStatus, tuple[dt.date, ...]], ...]
    queue_position: int | None
    estimated_completion: dt.datetime | None


@dataclass(slots=True)
class _Ledger:
    """Everything ever created, for the inspection endpoint; never purged."""

    jobs: list[SimJob] = field(default_factory=list)


_GROUP_ORDER = (
    DayStatus.COMPLETED,
    DayStatus.COMPLETED_EMPTY_RECORDS,
    DayStatus.RUNNING,
    DayStatus.ERROR_DURING_RUN,
    DayStatus.SUBMITTED,
    DayStatus.FAILED,
    DayStatus.RUNNING_TO_BE_DELETED,
    DayStatus.DELETED_BY_USER_REQUEST,
)


class Engine:
    """All jobs and day files of one simulated account."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self._now = settings.clock.now()
        self._jobs: dict[str, SimJob] = {}
        self._queue: collections.deque[SimJob] = collections.deque()
        self._running: list[SimJob] = []
        self._coverage: collections.Counter[tuple[ResourceType, dt.date]] = collections.Counter()
        self._files: dict[tuple[ResourceType, dt.date], CompletedDay] = {}
        self._requested_by_utc_day: collections.Counter[dt.date] = collections.Counter()
        # Day files completed since the last ``take_new_files``; the app pre-measures them.
        self._new_files: list[CompletedDay] = []
        # Jobs finished since the last ``take_finished_jobs``; the app calls their webhooks.
        self._newly_finished: list[SimJob] = []
        self.ledger = _Ledger()

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        """Read the clock and bring the model up to that moment."""
        now = self.settings.clock.now()
        self.advance(now)
        return now

    def advance(self, now: dt.datetime) -> None:
        """Replay every lifecycle event up to ``now`` in time order."""
        while True:
            self._start_queued()
            due = min(
                (j for j in self._running if j.next_at is not None),
                key=lambda j: (j.next_at, j.seq),
                default=None,
            )
            if due is None or due.next_at is None or due.next_at > now:
                break
            self._now = due.next_at
            self._step(due)
        # A clock set backwards does not rewind the model.
        self._now = max(self._now, now)
        self._purge()

    def _start_queued(self) -> None:
        while self._queue and len(self._running) < self.settings.max_running_jobs:
            job = self._queue.popleft()
            job.started_at = self._now
            job.next_at = self._now + job.base
            self._running.append(job)
            log.debug("simulator.job_started", job_sid=job.job_sid, at=self._now.isoformat())

    def _step(self, job: SimJob) -> None:
        at = self._now
        if job.current is not None:
            self._finish_attempt(job, job.current, at)
            job.current = None
        nxt = next((d for d in job.days if d.status is DayStatus.SUBMITTED), None)
        if nxt is None:
            waiting = [d for d in job.days if d.status is DayStatus.ERROR_DURING_RUN]
            ready = [d for d in waiting if d.ready_at is not None and d.ready_at <= at]
            if ready:
                nxt = min(ready, key=lambda d: (d.ready_at, d.day))
            elif waiting:
                job.next_at = min(d.ready_at for d in waiting if d.ready_at is not None)
                return
            else:
                self._finish_job(job, at)
                return
        nxt.status = DayStatus.RUNNING
        nxt.attempts += 1
        nxt.ready_at = None
        job.current = nxt
        job.next_at = at + nxt.duration

    def _finish_attempt(self, job: SimJob, day: SimDay, at: dt.datetime) -> None:
        if day.attempts <= day.failing_attempts:
            if day.attempts >= self.settings.max_day_attempts:
                day.status = DayStatus.FAILED
            else:
                day.status = DayStatus.ERROR_DURING_RUN
                day.ready_at = at + dt.timedelta(seconds=self.settings.retry_delay_seconds)
            return
        empty = file_spec(self.settings, job.resource_type, day.day).is_empty
        day.status = DayStatus.COMPLETED_EMPTY_RECORDS if empty else DayStatus.COMPLETED
        day.completed_at = at
        done = CompletedDay(
            resource_type=job.resource_type,
            day=day.day,
            created_at=at,
            friendly_name=job.friendly_name,
            empty=empty,
        )
        self._files[(job.resource_type, day.day)] = done
        self._new_files.append(done)

    def _finish_job(self, job: SimJob, at: dt.datetime) -> None:
        job.finished_at = at
        job.next_at = None
        job.gone_at = at + self.settings.finished_job_ttl
        self._running.remove(job)
        self._newly_finished.append(job)
        log.debug("simulator.job_finished", job_sid=job.job_sid, at=at.isoformat())

    def _purge(self) -> None:
        gone = [
            sid
            for sid, job in self._jobs.items()
            if job.gone_at is not None and job.gone_at <= self._now
        ]
        for sid in gone:
            del self._jobs[sid]
        expired = [
            key
            for key, done in self._files.items()
            if done.created_at + self.settings.file_ttl <= self._now
        ]
        for key in expired:
            del self._files[key]

    # -- commands -----------------------------------------------------------------------------

    def create(
        self,
        resource_type: ResourceType,
        start_day: dt.date,
        end_day: dt.date,
        friendly_name: str,
        *,
        webhook_url: str | None = None,
        webhook_method: str | None = None,
        email: str | None = None,
    ) -> SimJob:
        """Queue a new job (validation of the request is the caller's)."""
        now = self.now()
        settings = self.settings
        seed = settings.seed
        count = (end_day - start_day).days + 1
        quota = settings.faults.daily_day_quota
        utc_day = now.date()
        if quota is not None and self._requested_by_utc_day[utc_day] + count > quota:
            resets = dt.datetime.combine(utc_day + dt.timedelta(days=1), dt.time(), dt.UTC)
            raise QuotaExceeded(quota, self._requested_by_utc_day[utc_day], count, resets)
        self._requested_by_utc_day[utc_day] += count
        seq = len(self.ledger.jobs)
        sid = "JS" + seeds.hex_id(seed, "job", seq)
        faults = settings.faults
        stuck = seq < faults.stuck_first_jobs or (
            seeds.fraction(seed, "stuck", seq) < faults.stuck_job_fraction
        )
        days = []
        low, high = settings.day_seconds
        for offset in range(count):
            day = start_day + dt.timedelta(days=offset)
            key = (resource_type, day)
            self._coverage[key] += 1
            rand = seeds.rng(seed, "day", seq, resource_type, day)
            duration = dt.timedelta(seconds=rand.uniform(low, high))
            fail_roll, error_roll = rand.random(), rand.random()
            failing = 0
            first_in_a_job = self._coverage[key] == 1
            if (
                key in faults.always_fail_days
                or (key in faults.fail_first_attempt_days and first_in_a_job)
                or fail_roll < faults.failed_day_fraction
            ):
                failing = settings.max_day_attempts
            elif (
                key in faults.error_during_run_days or error_roll < faults.error_during_run_fraction
            ):
                failing = 1
            days.append(SimDay(day=day, duration=duration, failing_attempts=failing))
        job = SimJob(
            seq=seq,
            job_sid=sid,
            friendly_name=friendly_name,
            resource_type=resource_type,
            start_day=start_day,
            end_day=end_day,
            webhook_url=webhook_url,
            webhook_method=webhook_method,
            email=email,
            created_at=now,
            stuck=stuck,
            base=dt.timedelta(seconds=settings.job_base_seconds),
            days=days,
            upper_case=seeds.fraction(seed, "upper", seq) < settings.upper_case_status_fraction,
            position_as_string=(
                seeds.fraction(seed, "posstr", seq) < settings.string_queue_position_fraction
            ),
            empty_details_on_create=(
                seeds.fraction(seed, "emptydetails", seq)
                < settings.empty_details_on_create_fraction
            ),
        )
        self._jobs[sid] = job
        self.ledger.jobs.append(job)
        if not stuck:
            self._queue.append(job)
        # A new job may start at once when a slot is free.
        self._start_queued()
        log.info(
            "simulator.job_created",
            job_sid=sid,
            resource_type=resource_type.value,
            start_day=start_day.isoformat(),
            end_day=end_day.isoformat(),
            stuck=stuck,
        )
        return job

    def delete(self, job_sid: str) -> bool:
        """Delete a visible job; False when it is unknown (or already gone)."""
        now = self.now()
        job = self._jobs.get(job_sid)
        if job is None:
            return False
        if job.deleted_at is not None:
            return True
        job.deleted_at = now
        unfinished = any(d.status not in _FINAL for d in job.days)
        if job in self._running:
            self._running.remove(job)
        if job in self._queue:
            self._queue.remove(job)
        job.next_at = None
        job.current = None
        for day in job.days:
            if day.status in (DayStatus.RUNNING, DayStatus.ERROR_DURING_RUN):
                day.status = DayStatus.RUNNING_TO_BE_DELETED
            elif day.status is DayStatus.SUBMITTED:
                day.status = DayStatus.DELETED_BY_USER_REQUEST
        job.gone_at = now + self.settings.delete_grace if unfinished else now
        self._purge()
        log.info("simulator.job_deleted", job_sid=job_sid, unfinished=unfinished)
        return True

    def take_finished_jobs(self) -> list[SimJob]:
        """Jobs that finished since the previous call."""
        taken, self._newly_finished = self._newly_finished, []
        return taken

    def take_new_files(self) -> list[CompletedDay]:
        """Day files completed since the previous call."""
        taken, self._new_files = self._new_files, []
        return taken

    # -- queries ------------------------------------------------------------------------------

    def job(self, job_sid: str) -> SimJob | None:
        self.now()
        return self._jobs.get(job_sid)

    def jobs(self, resource_type: ResourceType) -> list[SimJob]:
        self.now()
        return [j for j in self._jobs.values() if j.resource_type is resource_type]

    def completed_days(self, resource_type: ResourceType) -> list[CompletedDay]:
        self.now()
        return sorted(
            (d for d in self._files.values() if d.resource_type is resource_type),
            key=lambda d: d.day,
        )

    def completed_day(self, resource_type: ResourceType, day: dt.date) -> CompletedDay | None:
        self.now()
        return self._files.get((resource_type, day))

    def view(self, job: SimJob) -> JobView:
        """The job as a read shows it now; every read re-estimates its completion time."""
        now = self.now()
        job.reads += 1
        by_status: dict[DayStatus, list[dt.date]] = {}
        for day in job.days:
            by_status.setdefault(day.status, []).append(day.day)
        groups = tuple((s, tuple(by_status[s])) for s in _GROUP_ORDER if s in by_status)
        position = self._position(job)
        if position is not None:
            if job.reported_position is not None:
                # The docs promise a queue position never increases.
                position = min(position, job.reported_position)
            job.reported_position = position
        return JobView(job, groups, position, self._estimate(job, now))

    def _position(self, job: SimJob) -> int | None:
        if job.deleted_at is not None or job.finished_at is not None:
            return None
        if job.started_at is not None:
            return 0
        ahead = sum(1 for j in self._jobs.values() if j.is_queued and j.seq < job.seq)
        return ahead + 1

    def _remaining(self, job: SimJob, now: dt.datetime) -> dt.timedelta:
        """Work left in a job, ignoring failures still to come."""
        left = dt.timedelta()
        if job.started_at is None:
            left += job.base
        elif job.next_at is not None:
            left += max(job.next_at - now, dt.timedelta())
        for day in job.days:
            if day.status is DayStatus.SUBMITTED:
                left += day.duration
            elif day.status is DayStatus.ERROR_DURING_RUN:
                if day.ready_at is not None:
                    left += max(day.ready_at - now, dt.timedelta())
                left += day.duration
        return left

    def _estimate(self, job: SimJob, now: dt.datetime) -> dt.datetime | None:
        if job.deleted_at is not None or job.stuck:
            return None
        if job.finished_at is not None:
            return job.finished_at
        if job.started_at is not None:
            remaining = self._remaining(job, now)
        else:
            # When a slot frees for it: the running jobs and those queued ahead share the slots.
            slots = [self._remaining(j, now) for j in self._running]
            slots += [dt.timedelta()] * (self.settings.max_running_jobs - len(slots))
            heapq.heapify(slots)
            remaining = dt.timedelta()
            for queued in self._queue:
                start = heapq.heappop(slots)
                end = start + self._remaining(queued, now)
                heapq.heappush(slots, end)
                if queued is job:
                    remaining = end
                    break
        noise = self.settings.eta_noise
        factor = 1.0 + seeds.rng(self.settings.seed, "eta", job.job_sid, job.reads).uniform(
            -noise, noise
        )
        return now + remaining * factor
