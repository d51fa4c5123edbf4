"""Poll the jobs that are due, record what changed, and decide when to look again.

Each poll is one fetch and one write transaction: the store locks the job and its days and
writes what ``domain.settlement`` decides from them and Twilio's answer (the day changes, the
released days, the job's bookkeeping and its next poll, together). One job's error (a store
error, an unexpected exception) is logged with its names and backs that job off alone.
"""

from __future__ import annotations

import asyncio
import functools

from orchestrator.domain.model import Job, JobState, ObservedBy
from orchestrator.domain.settlement import end_job, settle_failed_poll, settle_poll
from orchestrator.errors import AuthenticationError, NotFound, NotLeader, TwilioError
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext, error_fields, log_changes

log = get_logger(__name__)

# Jobs polled in one pass at most; the rest are still due on the next pass.
MAX_POLLS_PER_PASS = 500


async def poll_due_jobs(ctx: WorkflowContext) -> int:
    """Poll every due job, as many at once as the store has connections; return how many."""
    if not ctx.health.healthy:
        return 0
    due = await ctx.store.jobs_due_for_poll(ctx.now(), MAX_POLLS_PER_PASS)
    if not due:
        return 0
    # More polls at once than pooled connections would only queue on the pool (or open
    # overflow connections that are closed again); the client bounds the HTTP side itself.
    places = asyncio.Semaphore(ctx.store.max_connections)

    async def one(job: Job) -> None:
        async with places:
            try:
                await poll_job(ctx, job)
            except NotLeader:
                raise  # not one job's failure: the pass stops
            except Exception as error:  # one job's failure must not fail the others' polls
                await _poll_error(ctx, job, error)

    await asyncio.gather(*(one(job) for job in due))
    return len(due)


async def _poll_error(ctx: WorkflowContext, job: Job, error: Exception) -> None:
    """Log an error settling one job's poll, and put its next poll off (best effort).

    A store error is expected now and then (the database may be busy or gone); anything else
    is a bug, logged with its traceback. The job's backoff is the poll strategy's, as after a
    poll without a usable answer; when even that cannot be written, the job is still due and
    the next pass tries again.
    """
    fields = {
        "resource_type": job.resource_type.value,
        "job_sid": job.job_sid,
        "friendly_name": job.friendly_name,
        "attempt": job.attempt,
    }
    log.error("job.poll_error", **error_fields(error), **fields)
    try:
        await ctx.store.settle_job(
            job.id,
            functools.partial(
                settle_failed_poll,
                error=f"{type(error).__name__}: {error}",
                poll=ctx.policies.poll,
                rand=ctx.random(),
                now=ctx.now(),
            ),
        )
    except Exception as again:  # the store may be the problem: the next pass tries again
        log.error(
            "job.poll_backoff_failed", error=str(again), error_type=type(again).__name__, **fields
        )


async def poll_job(ctx: WorkflowContext, job: Job) -> None:
    """Fetch one job, then settle its days and its next poll in one write."""
    assert job.job_sid is not None, "only active jobs (with a SID) are polled"
    fields = {
        "resource_type": job.resource_type.value,
        "job_sid": job.job_sid,
        "attempt": job.attempt,
    }
    policies = ctx.policies
    try:
        remote = await ctx.client.fetch_job(job.job_sid)
    except NotFound:
        # Twilio dropped it (deleted by someone else, or expired): its unfinished days go back.
        ended = await ctx.store.settle_job(
            job.id,
            functools.partial(
                end_job,
                new_state=JobState.LOST,
                observed_by=ObservedBy.POLL,
                now=ctx.now(),
                reason="Twilio answered 404",
            ),
        )
        log.warning("job.lost", days_returned=len(ended.changes), **fields)
        log_changes(ended.changes)
        return
    except AuthenticationError as error:
        ctx.health.record_auth_failure(error)
        return
    except TwilioError as error:
        # A malformed answer or exhausted retries: state untouched, try again later.
        await ctx.store.settle_job(
            job.id,
            functools.partial(
                settle_failed_poll,
                error=str(error),
                poll=policies.poll,
                rand=ctx.random(),
                now=ctx.now(),
            ),
        )
        log.warning("job.poll_failed", error=str(error), error_type=type(error).__name__, **fields)
        return
    settled = await ctx.store.settle_job(
        job.id,
        functools.partial(
            settle_poll,
            remote=remote,
            resubmit=policies.resubmit,
            poll=policies.poll,
            rand=ctx.random(),
            now=ctx.now(),
        ),
    )
    log_changes(settled.changes)
    log.debug(
        "job.polled",
        changes=len(settled.changes),
        queue_position=remote.job_queue_position,
        eta=remote.estimated_completion_time.isoformat()
        if remote.estimated_completion_time
        else None,
        **fields,
    )
