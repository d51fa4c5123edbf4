"""Standard poll strategies to compare the daemon's with.

Each is a ``PollStrategy`` (``orchestrator.domain.polling``): the benchmark puts it in the
context's ``Policies`` in place of the daemon's ``PollPolicy``, so the real poll step (same
store calls, client, error handling and cap per pass) and the first poll after a submit both
follow it; only the choice of the next poll time differs.
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass, field

from orchestrator.domain.model import Job
from orchestrator.domain.polling import PollFacts, PollPolicy, backoff_delay


@dataclass(frozen=True)
class FixedInterval:
    """Every ``seconds``, whatever the job says."""

    seconds: float = 60.0

    def next_poll_at(
        self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
    ) -> dt.datetime:
        return now + dt.timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class PlainExponential:
    """``initial * 2 ** polls since submission``, capped; no reset, no ETA or queue hints."""

    initial: dt.timedelta = dt.timedelta(seconds=30)
    cap: dt.timedelta = dt.timedelta(minutes=30)
    # Polls of each job so far (each answered or failed fetch, and the first after its submit).
    _polls: collections.Counter[int] = field(default_factory=collections.Counter, compare=False)

    def next_poll_at(
        self, job: Job, facts: PollFacts, now: dt.datetime, rand: float
    ) -> dt.datetime:
        policy = PollPolicy(initial=self.initial, max=self.cap, multiplier=2.0, jitter=0.0)
        polls = self._polls[job.id]
        self._polls[job.id] += 1
        return now + backoff_delay(polls, policy)
