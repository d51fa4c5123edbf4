"""Standard poll policies to compare the daemon's with, plugged into a bench copy of the poll step.

``VariantPoll`` is ``orchestrator.workflows.poll.poll_due_jobs`` line for line (same store calls,
same client, same error handling, same cap per pass) except for the one call that picks the next
poll time, which is a ``NextPoll`` function here. The daemon's own policy is measured through the
real ``poll_due_jobs``, not through this copy.

Production hook that would make this copy unnecessary: ``poll_job``/``poll_due_jobs`` taking a
``next_poll: NextPoll = next_poll_at``-shaped strategy (or ``WorkflowContext.next_poll``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.domain.model import Job, ObservedBy
from orchestrator.domain.polling import PollFacts, PollPolicy, backoff_delay, next_poll_at
from orchestrator.errors import AuthenticationError, NotFound, TwilioError
from orchestrator.workflows.context import WorkflowContext
from orchestrator.workflows.poll import MAX_POLLS_PER_PASS

# (the job as loaded, facts of this poll, polls since it was submitted, now, jitter in [0, 1))
# -> when to poll it next.
NextPoll = Callable[[Job, PollFacts, int, dt.datetime, float], dt.datetime]


def fixed_interval(seconds: float = 60.0) -> NextPoll:
    """Every ``seconds``, whatever the job says."""
    delay = dt.timedelta(seconds=seconds)

    def next_at(
        job: Job, facts: PollFacts, polls: int, now: dt.datetime, rng: float
    ) -> dt.datetime:
        return now + delay

    return next_at


def plain_exponential(
    initial: dt.timedelta = dt.timedelta(seconds=30),
    cap: dt.timedelta = dt.timedelta(minutes=30),
) -> NextPoll:
    """``initial * 2 ** polls since submission``, capped; no reset, no ETA or queue hints."""
    policy = PollPolicy(initial=initial, max=cap, multiplier=2.0, jitter=0.0)

    def next_at(
        job: Job, facts: PollFacts, polls: int, now: dt.datetime, rng: float
    ) -> dt.datetime:
        return now + backoff_delay(polls, policy)

    return next_at


@dataclass
class VariantPoll:
    """A poll pass whose next-poll time comes from ``next_poll``."""

    next_poll: NextPoll
    # Fetches so far per job id (the plain policies count from submission, not from a change).
    polls: collections.Counter[int] = field(default_factory=collections.Counter)

    async def __call__(self, ctx: WorkflowContext) -> int:
        if not ctx.health.healthy:
            return 0
        due = await ctx.store.jobs_due_for_poll(ctx.now(), MAX_POLLS_PER_PASS)
        if due:
            await asyncio.gather(*(self._poll_job(ctx, job) for job in due))
        return len(due)

    async def _poll_job(self, ctx: WorkflowContext, job: Job) -> None:
        assert job.job_sid is not None
        self.polls[job.id] += 1
        polls = self.polls[job.id]
        try:
            remote = await ctx.client.fetch_job(job.job_sid)
        except NotFound:
            await ctx.store.mark_job_lost(
                job.id, ctx.now(), reason="Twilio answered 404", observed_by=ObservedBy.POLL
            )
            return
        except AuthenticationError as error:
            ctx.health.record_auth_failure(error)
            return
        except TwilioError as error:
            now = ctx.now()
            facts = PollFacts(
                polls_since_change=job.poll_count + 1,
                submitted_at=job.submitted_at or job.created_at,
            )
            await ctx.store.mark_job_polled(
                job.id,
                now,
                self.next_poll(job, facts, polls, now, ctx.random()),
                queue_position=job.queue_position,
                eta=job.eta,
                error=str(error),
            )
            return
        now = ctx.now()
        changes = await ctx.store.apply_day_statuses(
            job.id,
            remote.day_statuses(),
            now,
            ObservedBy.POLL,
            max_resubmits=ctx.settings.jobs.max_resubmits,
            resubmit_delay=ctx.settings.jobs.resubmit_delay,
        )
        facts = PollFacts(
            polls_since_change=0 if changes else job.poll_count + 1,
            eta=remote.estimated_completion_time,
            queue_position=remote.job_queue_position,
            submitted_at=job.submitted_at or job.created_at,
        )
        await ctx.store.mark_job_polled(
            job.id,
            now,
            self.next_poll(job, facts, polls, now, ctx.random()),
            queue_position=remote.job_queue_position,
            eta=remote.estimated_completion_time,
            changed=bool(changes),
        )


def daemon_policy(policy: PollPolicy) -> NextPoll:
    """The daemon's own decision (``next_poll_at``) as a ``NextPoll``: with the daemon's policy
    it checks the copy; with ``eta_error=0`` it is the naive "poll at the ETA" variant."""

    def next_at(
        job: Job, facts: PollFacts, polls: int, now: dt.datetime, rng: float
    ) -> dt.datetime:
        return next_poll_at(facts, policy, now, rng)

    return next_at
