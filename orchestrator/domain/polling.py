"""A job's poll facts + policy + now -> when to poll it next. Pure.

The base is exponential backoff by the number of polls since the job last changed (a change
resets it): ``initial * multiplier ** polls``, capped at ``max_delay``. Twilio's hints override
it where they know better:

- an ETA in the future: Twilio's estimate is noisy (about ``eta_error`` either way), so the job
  ends somewhere in [until / (1 + e), until / (1 - e)] from now. Poll at the earliest plausible
  end plus the delay we accept in noticing it (``notice_fraction`` of the job's expected
  duration, at least ``initial``), but no later than the latest plausible end plus ``initial``,
  and never more than ``max_eta_wait`` away. A job due in two hours is not polled every 30 s;
  a poll that lands early reads a fresh, nearer ETA whose window is narrower;
- an ETA that has passed: the job is overdue, so the backoff restarts from the ETA (``initial``
  right after it, growing with the time since) and never exceeds the ordinary backoff;
- no ETA but a queue position: a job behind N others will not finish sooner than ``initial * N``
  (bounded by ``max_delay``).

Jitter is a caller-supplied number in [0, 1) so the function stays deterministic; it only ever
shortens a delay (by at most ``jitter`` of it), so caps hold and polls never drift later.

Measured by ``python -m bench --only polling`` against the simulator with ±30 % ETA noise; the
ETA window replaced "poll just after the ETA", which noticed a job late whenever its ETA came
out high.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol

from orchestrator.domain.model import Job
from orchestrator.errors import InvalidInput

ZERO = dt.timedelta(0)


class PollStrategy(Protocol):
    """When to poll a job next: ``PollPolicy`` is the daemon's; the benchmarks bring others."""

    def next_poll_at(
        self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
    ) -> dt.datetime:
        """When to poll ``job`` next, after a poll that found ``facts`` (``rand`` in [0, 1))."""
        ...


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often to poll a job (a ``PollStrategy``)."""

    initial: dt.timedelta = dt.timedelta(seconds=30)
    max: dt.timedelta = dt.timedelta(minutes=30)
    multiplier: float = 2.0
    # Fraction in [0, 1): how much a delay may be shortened at random.
    jitter: float = 0.1
    # The longest wait for a far-away ETA.
    max_eta_wait: dt.timedelta = dt.timedelta(hours=6)
    # How far off Twilio's ETA may be, as a fraction of the time left to it.
    eta_error: float = 0.3
    # The delay we accept in noticing a finished job, as a fraction of its duration.
    notice_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.initial <= dt.timedelta(0):
            raise InvalidInput("initial_delay", "must be positive")
        if self.max < self.initial:
            raise InvalidInput("max_delay", "must not be shorter than initial_delay")
        if not self.multiplier >= 1:
            raise InvalidInput("multiplier", f"{self.multiplier} is not at least 1")
        if not 0 <= self.jitter < 1:
            raise InvalidInput("jitter", f"{self.jitter} is not in [0, 1)")
        if self.max_eta_wait < self.initial:
            raise InvalidInput("max_eta_wait", "must not be shorter than initial_delay")
        if not 0 <= self.eta_error < 1:
            raise InvalidInput("eta_error", f"{self.eta_error} is not in [0, 1)")
        if not 0 < self.notice_fraction <= 1:
            raise InvalidInput("notice_fraction", f"{self.notice_fraction} is not in (0, 1]")

    def next_poll_at(
        self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
    ) -> dt.datetime:
        """``next_poll_at(facts, self, now, rand)``: the job itself adds nothing to the facts."""
        return next_poll_at(facts, self, now, rand)


@dataclass(frozen=True, slots=True)
class PollFacts:
    """What the poll decision needs to know about a job."""

    # Polls since the job was submitted or last changed (0 = none yet).
    polls_since_change: int
    # Twilio's estimated completion time (aware UTC), if it gave one.
    eta: dt.datetime | None = None
    queue_position: int | None = None
    # When Twilio accepted the job: its age tells how long the whole job is expected to take.
    submitted_at: dt.datetime | None = None

    @classmethod
    def from_job(cls, job: Job) -> PollFacts:
        """Facts of a stored job; ``Job.poll_count`` counts polls since its last change."""
        return cls(
            polls_since_change=job.poll_count,
            eta=job.eta,
            queue_position=job.queue_position,
            submitted_at=job.submitted_at or job.created_at,
        )


def backoff_delay(polls_since_change: int, policy: PollPolicy) -> dt.timedelta:
    """``initial * multiplier ** polls``, capped at ``max`` (no jitter)."""
    polls = max(polls_since_change, 0)
    if policy.multiplier > 1:
        # Past this many polls the cap applies; bounding the exponent avoids float overflow.
        cap_polls = math.ceil(math.log(policy.max / policy.initial) / math.log(policy.multiplier))
        polls = min(polls, cap_polls)
    return min(policy.initial * policy.multiplier**polls, policy.max)


def _delay_parts(
    facts: PollFacts, policy: PollPolicy, now: dt.datetime
) -> tuple[dt.timedelta, dt.timedelta]:
    """The delay as (fixed part, part jitter may shorten)."""
    delay = backoff_delay(facts.polls_since_change, policy)
    if facts.eta is not None:
        until_eta = facts.eta - now
        if until_eta <= dt.timedelta(0):
            # Overdue: restart the backoff from the ETA, never slower than the ordinary one.
            overdue = -until_eta
            return dt.timedelta(0), min(delay, policy.initial + overdue * (policy.multiplier - 1))
        age = max(now - facts.submitted_at, dt.timedelta(0)) if facts.submitted_at else ZERO
        allowed = max(policy.initial, (age + until_eta) * policy.notice_fraction)
        earliest_end = until_eta / (1 + policy.eta_error)
        latest_end = until_eta / (1 - policy.eta_error)
        wait = min(earliest_end + allowed, latest_end + policy.initial)
        return dt.timedelta(0), min(wait, policy.max_eta_wait)
    if facts.queue_position is not None and facts.queue_position > 0:
        return dt.timedelta(0), max(delay, min(policy.initial * facts.queue_position, policy.max))
    return dt.timedelta(0), delay


def poll_delay(facts: PollFacts, policy: PollPolicy, now: dt.datetime) -> dt.timedelta:
    """How long to wait before the next poll, before jitter."""
    fixed, jitterable = _delay_parts(facts, policy, now)
    return fixed + jitterable


def next_poll_at(
    job: Job | PollFacts, policy: PollPolicy, now: dt.datetime, rng_value: float
) -> dt.datetime:
    """When to poll ``job`` next; ``rng_value`` in [0, 1) picks the jitter."""
    if not 0 <= rng_value < 1:
        raise InvalidInput("rng_value", f"{rng_value} is not in [0, 1)")
    facts = PollFacts.from_job(job) if isinstance(job, Job) else job
    fixed, jitterable = _delay_parts(facts, policy, now)
    return now + fixed + jitterable * (1 - policy.jitter * rng_value)
