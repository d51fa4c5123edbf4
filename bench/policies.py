"""Standard poll policies to compare the daemon's with.

Each is a ``NextPoll`` for ``orchestrator.workflows.poll.poll_due_jobs(ctx, next_poll=...)``:
the real poll step (same store calls, client, error handling and cap per pass) with only the
choice of the next poll time swapped. The daemon's own policy runs with ``next_poll=None``.
"""

from __future__ import annotations

import collections
import datetime as dt

from orchestrator.domain.model import Job
from orchestrator.domain.polling import PollFacts, PollPolicy, backoff_delay, next_poll_at
from orchestrator.workflows.poll import NextPoll


def fixed_interval(seconds: float = 60.0) -> NextPoll:
    """Every ``seconds``, whatever the job says."""
    delay = dt.timedelta(seconds=seconds)

    def next_at(job: Job, facts: PollFacts, now: dt.datetime, rng: float) -> dt.datetime:
        return now + delay

    return next_at


def plain_exponential(
    initial: dt.timedelta = dt.timedelta(seconds=30),
    cap: dt.timedelta = dt.timedelta(minutes=30),
) -> NextPoll:
    """``initial * 2 ** polls since submission``, capped; no reset, no ETA or queue hints."""
    policy = PollPolicy(initial=initial, max=cap, multiplier=2.0, jitter=0.0)
    # Called once per poll of a job (after each fetch, answered or not): polls since submission.
    polls: collections.Counter[int] = collections.Counter()

    def next_at(job: Job, facts: PollFacts, now: dt.datetime, rng: float) -> dt.datetime:
        polls[job.id] += 1
        return now + backoff_delay(polls[job.id], policy)

    return next_at


def daemon_policy(policy: PollPolicy) -> NextPoll:
    """The daemon's decision (``next_poll_at``) with another ``policy``: with ``eta_error=0`` it is
    the naive "poll at the ETA" variant."""

    def next_at(job: Job, facts: PollFacts, now: dt.datetime, rng: float) -> dt.datetime:
        return next_poll_at(facts, policy, now, rng)

    return next_at
