"""Poll the jobs that are due, record what changed, and decide when to look again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from orchestrator.domain.model import Job, ObservedBy
from orchestrator.domain.polling import PollFacts, next_poll_at
from orchestrator.errors import AuthenticationError, NotFound, TwilioError
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext, log_changes

log = get_logger(__name__)

# Jobs polled in one pass at most; the rest are still due on the next pass.
MAX_POLLS_PER_PASS = 500

# (the job as loaded, this poll's facts, now, jitter in [0, 1)) -> when to poll it next. The
# daemon always uses its policy (None below); the benchmarks compare others through this.
NextPoll = Callable[[Job, PollFacts, dt.datetime, float], dt.datetime]


async def poll_due_jobs(ctx: WorkflowContext, *, next_poll: NextPoll | None = None) -> int:
    """Poll every due job concurrently (within the client's limits); return how many."""
    if not ctx.health.healthy:
        return 0
    due = await ctx.store.jobs_due_for_poll(ctx.now(), MAX_POLLS_PER_PASS)
    if due:
        await asyncio.gather(*(poll_job(ctx, job, next_poll=next_poll) for job in due))
    return len(due)


async def poll_job(ctx: WorkflowContext, job: Job, *, next_poll: NextPoll | None = None) -> None:
    """Fetch one job, apply its per-day statuses, and schedule its next poll."""
    assert job.job_sid is not None, "only active jobs (with a SID) are polled"
    fields = {
        "resource_type": job.resource_type.value,
        "job_sid": job.job_sid,
        "attempt": job.attempt,
    }
    try:
        remote = await ctx.client.fetch_job(job.job_sid)
    except NotFound:
        # Twilio dropped it (deleted by someone else, or expired): its unfinished days go back.
        changes = await ctx.store.mark_job_lost(
            job.id, ctx.now(), reason="Twilio answered 404", observed_by=ObservedBy.POLL
        )
        log.warning("job.lost", days_returned=len(changes), **fields)
        log_changes(changes)
        return
    except AuthenticationError as error:
        ctx.health.record_auth_failure(error)
        return
    except TwilioError as error:
        # A malformed answer or exhausted retries: state untouched, try again later.
        await _schedule_next_poll(
            ctx,
            job,
            PollFacts(polls_since_change=job.poll_count + 1, submitted_at=job.submitted_at),
            keep=(job.queue_position, job.eta),
            error=str(error),
            next_poll=next_poll,
        )
        log.warning("job.poll_failed", error=str(error), error_type=type(error).__name__, **fields)
        return
    changes = await ctx.store.apply_day_statuses(
        job.id,
        remote.day_statuses(),
        ctx.now(),
        ObservedBy.POLL,
        max_resubmits=ctx.settings.jobs.max_resubmits,
        resubmit_delay=ctx.settings.jobs.resubmit_delay,
    )
    log_changes(changes)
    facts = PollFacts(
        polls_since_change=0 if changes else job.poll_count + 1,
        eta=remote.estimated_completion_time,
        queue_position=remote.job_queue_position,
        submitted_at=job.submitted_at,
    )
    await _schedule_next_poll(
        ctx,
        job,
        facts,
        keep=(facts.queue_position, facts.eta),
        changed=bool(changes),
        next_poll=next_poll,
    )
    log.debug(
        "job.polled",
        changes=len(changes),
        queue_position=remote.job_queue_position,
        eta=remote.estimated_completion_time.isoformat()
        if remote.estimated_completion_time
        else None,
        **fields,
    )


async def _schedule_next_poll(
    ctx: WorkflowContext,
    job: Job,
    facts: PollFacts,
    *,
    keep: tuple[int | None, dt.datetime | None],
    error: str | None = None,
    changed: bool = False,
    next_poll: NextPoll | None,
) -> None:
    """Record the poll and when to look again; ``keep`` is the (queue position, ETA) to store."""
    now = ctx.now()
    queue_position, eta = keep
    rng = ctx.random()
    if next_poll is None:
        when = next_poll_at(facts, ctx.settings.poll_policy(), now, rng)
    else:
        when = next_poll(job, facts, now, rng)
    await ctx.store.mark_job_polled(
        job.id,
        now,
        when,
        queue_position=queue_position,
        eta=eta,
        error=error,
        changed=changed,
    )
