"""Adopt jobs whose create may have reached Twilio, then plan and submit new ones.

The intent is written before the effect: ``claim_days`` writes the job row (with its
deterministic friendly name) before the POST, and the SID after. A job still ``submitting``
after a crash or an ambiguous POST is looked up on Twilio by that name and adopted, or, when
Twilio has no such job, abandoned so its days can be planned again. So a day is never in two
live jobs on Twilio.
"""

from __future__ import annotations

import datetime as dt
import functools

from orchestrator.domain.model import (
    DayChange,
    Job,
    JobRequest,
    JobState,
    ObservedBy,
    RemoteJob,
    ResourceType,
)
from orchestrator.domain.plan import budget_window, plan_jobs
from orchestrator.domain.polling import PollFacts
from orchestrator.domain.settlement import end_job
from orchestrator.domain.submit_hold import hold_after_acceptance, hold_after_refusal
from orchestrator.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    ClaimConflict,
    TwilioError,
)
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext, log_changes

log = get_logger(__name__)

_LIVE = frozenset(state for state in JobState if state.is_live)
_NEW_JOB_FACTS = PollFacts(polls_since_change=0)


async def adopt_submitting_jobs(ctx: WorkflowContext) -> None:
    """Resolve every job whose create POST may or may not have reached Twilio."""
    submitting = await ctx.store.jobs_submitting()
    if not submitting or not ctx.health.healthy:
        return
    remote_by_type: dict[ResourceType, dict[str, RemoteJob]] = {}
    for job in submitting:
        if job.resource_type not in remote_by_type:
            try:
                listed = await ctx.client.list_jobs(job.resource_type)
            except AuthenticationError as error:
                ctx.health.record_auth_failure(error)
                return
            except TwilioError as error:
                log.warning(
                    "job.adopt_deferred", resource_type=job.resource_type.value, error=str(error)
                )
                return
            remote_by_type[job.resource_type] = {
                r.friendly_name: r for r in listed if r.friendly_name is not None
            }
        remote = remote_by_type[job.resource_type].get(job.friendly_name)
        now = ctx.now()
        if remote is not None:
            _, changes = await ctx.store.record_job_sid(
                job.id, remote.job_sid, now, _first_poll(ctx, job, now)
            )
            log.info(
                "job.adopted",
                resource_type=job.resource_type.value,
                job_sid=remote.job_sid,
                friendly_name=job.friendly_name,
                attempt=job.attempt,
            )
            log_changes(changes)
        else:
            lost = await _lose(ctx, job, "create never reached Twilio", now)
            log.warning(
                "job.abandoned",
                resource_type=job.resource_type.value,
                friendly_name=job.friendly_name,
                days=len(lost),
                reason="not found on Twilio by friendly name",
            )
            log_changes(lost)


async def submit_planned_jobs(ctx: WorkflowContext) -> list[Job]:
    """Plan jobs for pending eligible days and create them on Twilio; return those created."""
    if not ctx.health.healthy:
        return []
    now = ctx.now()
    if await ctx.store.jobs_submitting():
        # Unresolved creates first: planning now could double-book their days' budget.
        return []
    pending = await ctx.store.pending_days(now)
    if not pending:
        return []
    hold = ctx.submits.hold
    if not hold.allows(now):
        log.debug("plan.paused", refusals=hold.refusals, until=_iso(hold.until))
        return []
    live = await ctx.store.list_jobs(states=[*_LIVE])
    window_start, _ = budget_window(now)
    requests = plan_jobs(
        pending,
        live_jobs=len(live),
        requested_days_today=await ctx.store.requested_days_since(window_start),
        limits=ctx.policies.plan,
        prefix=ctx.name_prefix,
        now=now,
    )
    if not requests and pending:
        log.debug("plan.nothing_to_submit", pending=len(pending), live_jobs=len(live))
    created: list[Job] = []
    for request in requests:
        job = await _submit(ctx, request)
        if job is not None:
            created.append(job)
        if not ctx.health.healthy or not ctx.submits.hold.allows(ctx.now()):
            break
    return created


async def _submit(ctx: WorkflowContext, request: JobRequest) -> Job | None:
    fields = {
        "resource_type": request.resource_type.value,
        "start_day": request.start_day.isoformat(),
        "end_day": request.end_day.isoformat(),
        "days": len(request.days),
        "attempt": request.attempt,
        "friendly_name": request.friendly_name,
    }
    try:
        job = await ctx.store.claim_days(request, ctx.now())
    except ClaimConflict as conflict:
        log.info("job.claim_conflict", reason=str(conflict), **fields)
        return None
    try:
        remote = await ctx.client.create_job(
            request.resource_type, request.start_day, request.end_day, request.friendly_name
        )
    except AmbiguousCreateError as error:
        # The job may exist: leave it submitting; the next pass looks it up by name.
        log.warning("job.submit_ambiguous", reason=error.reason, **fields)
        return None
    except AuthenticationError as error:
        await _abandon(ctx, job, f"create refused: {error}")
        ctx.health.record_auth_failure(error)
        return None
    except (ApiError, TwilioError) as error:
        # Refused outright (400, quota) or never sent: nothing was created on Twilio.
        await _abandon(ctx, job, f"create refused: {error}")
        hold = hold_after_refusal(ctx.submits.hold, ctx.now())
        ctx.submits.hold = hold
        log.error(
            "job.submit_failed",
            error=str(error),
            code=error.code if isinstance(error, ApiError) else None,
            refusals=hold.refusals,
            next_try_at=_iso(hold.until),
            **fields,
        )
        return None
    now = ctx.now()
    if ctx.submits.hold.refusals:
        log.info("job.submits_resumed", after_refusals=ctx.submits.hold.refusals)
    ctx.submits.hold = hold_after_acceptance()
    job, changes = await ctx.store.record_job_sid(
        job.id, remote.job_sid, now, _first_poll(ctx, job, now)
    )
    log.info("job.submitted", job_sid=remote.job_sid, **fields)
    log_changes(changes)
    return job


async def _abandon(ctx: WorkflowContext, job: Job, reason: str) -> None:
    log_changes(await _lose(ctx, job, reason, ctx.now()))


async def _lose(
    ctx: WorkflowContext, job: Job, reason: str, now: dt.datetime
) -> tuple[DayChange, ...]:
    """The create never made a job on Twilio: the job is lost and its days go back."""
    decision = functools.partial(
        end_job, new_state=JobState.LOST, observed_by=ObservedBy.SUBMIT, now=now, reason=reason
    )
    return (await ctx.store.settle_job(job.id, decision)).changes


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _first_poll(ctx: WorkflowContext, job: Job, now: dt.datetime) -> dt.datetime:
    return ctx.policies.poll.next_poll_at(job, _NEW_JOB_FACTS, now, ctx.random())
