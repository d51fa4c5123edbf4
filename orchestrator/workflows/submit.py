"""Adopt jobs whose create may have reached Twilio, then plan and submit new ones.

The intent is written before the effect: ``claim_days`` writes the job row (with its
deterministic friendly name) before the POST, and the SID after. A job still ``submitting``
after a crash or an ambiguous POST is looked up on Twilio by that name and adopted, or, when
Twilio has no such job, abandoned so its days can be planned again. So a day is never in two
live jobs on Twilio.

An ambiguous create is bounded (``domain.ambiguous``): it counts against the daily budget,
is looked for a few times with growing waits before it is abandoned, and after a few of them
in one UTC day its days wait for the next one (``job.creates_suspended``, error level). One
job's error (a store error, an unexpected exception) is logged with its names and affects that
job alone: the pass goes on with the others.
"""

from __future__ import annotations

import datetime as dt
import functools

from orchestrator.domain.ambiguous import (
    defer_lookup,
    lookup_due,
    mark_ambiguous,
    settle_not_found,
    suspended_days,
    suspended_until,
    suspends,
)
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
    NotLeader,
    StoreError,
    TwilioError,
)
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext, error_fields, log_changes

log = get_logger(__name__)

_LIVE = frozenset(state for state in JobState if state.is_live)
_NEW_JOB_FACTS = PollFacts(polls_since_change=0)


async def adopt_submitting_jobs(ctx: WorkflowContext) -> None:
    """Resolve every job whose create POST may or may not have reached Twilio.

    Only jobs whose next look is due (``domain.ambiguous.lookup_due``); one job's failure
    (a store error, say) is logged with its names and puts off that job alone.
    """
    now = ctx.now()
    submitting = [job for job in await ctx.store.jobs_submitting() if lookup_due(job, now)]
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
        try:
            await _resolve(ctx, job, remote)
        except NotLeader:
            raise  # not one job's failure: the pass stops
        except Exception as error:  # one job's failure must not stop the others' adoption
            await _defer(ctx, job, error, "job.adopt_failed")


async def _resolve(ctx: WorkflowContext, job: Job, remote: RemoteJob | None) -> None:
    """Adopt ``job`` as ``remote``, or count a look that did not find it."""
    now = ctx.now()
    fields = _job_fields(job)
    if remote is not None:
        _, changes = await ctx.store.record_job_sid(
            job.id, remote.job_sid, now, _first_poll(ctx, job, now)
        )
        log.info("job.adopted", job_sid=remote.job_sid, **fields)
        log_changes(changes)
        return
    settled = await ctx.store.settle_job(
        job.id,
        functools.partial(settle_not_found, policy=ctx.policies.ambiguous, now=now),
    )
    if settled.job.state is JobState.LOST:
        log.warning(
            "job.abandoned",
            days=len(settled.changes),
            lookups=settled.job.lookups,
            reason="not found on Twilio by friendly name",
            **fields,
        )
        log_changes(settled.changes)
    else:
        log.info(
            "job.lookup_empty",
            lookups=settled.job.lookups,
            next_lookup_at=_iso(settled.job.next_lookup_at),
            **fields,
        )


async def _defer(ctx: WorkflowContext, job: Job, error: Exception, event: str) -> None:
    """Log ``error`` of one submitting job and put off its next look (best effort)."""
    fields = _job_fields(job)
    log.error(event, **error_fields(error), **fields)
    try:
        settled = await ctx.store.settle_job(
            job.id,
            functools.partial(
                defer_lookup, policy=ctx.policies.ambiguous, now=ctx.now(), error=str(error)
            ),
        )
    except Exception as again:  # the store may be the problem: the next pass tries again
        log.error("job.defer_failed", error=str(again), error_type=type(again).__name__, **fields)
        return
    log.info("job.lookup_deferred", next_lookup_at=_iso(settled.job.next_lookup_at), **fields)


async def submit_planned_jobs(ctx: WorkflowContext) -> list[Job]:
    """Plan jobs for pending eligible days and create them on Twilio; return those created."""
    if not ctx.health.healthy:
        return []
    now = ctx.now()
    if any(lookup_due(job, now) for job in await ctx.store.jobs_submitting()):
        # Unresolved creates first: planning now could double-book their days' budget. A job
        # waiting for its next look holds its days and counts in the budget: it blocks nothing.
        return []
    pending = await ctx.store.pending_days(now)
    if not pending:
        return []
    hold = ctx.submits.hold
    if not hold.allows(now):
        log.debug("plan.paused", refusals=hold.refusals, until=_iso(hold.until))
        return []
    window_start, _ = budget_window(now)
    suspended = suspended_days(
        await ctx.store.ambiguous_creates_since(window_start), ctx.policies.ambiguous, now
    )
    if suspended:
        pending = [day for day in pending if day.key not in suspended]
        log.debug("plan.days_suspended", days=len(suspended), until=_iso(suspended_until(now)))
    live = await ctx.store.list_jobs(states=[*_LIVE])
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
        try:
            job = await _submit(ctx, request)
        except NotLeader:
            raise  # not one job's failure: the pass stops
        except Exception as error:  # one job's failure must not stop the others' creates
            log.error("job.submit_error", **error_fields(error), **_request_fields(request))
            continue
        if job is not None:
            created.append(job)
        if not ctx.health.healthy or not ctx.submits.hold.allows(ctx.now()):
            break
    return created


def _request_fields(request: JobRequest) -> dict[str, object]:
    return {
        "resource_type": request.resource_type.value,
        "start_day": request.start_day.isoformat(),
        "end_day": request.end_day.isoformat(),
        "days": len(request.days),
        "attempt": request.attempt,
        "friendly_name": request.friendly_name,
    }


def _job_fields(job: Job) -> dict[str, object]:
    return {
        "resource_type": job.resource_type.value,
        "start_day": job.start_day.isoformat(),
        "end_day": job.end_day.isoformat(),
        "attempt": job.attempt,
        "friendly_name": job.friendly_name,
    }


async def _submit(ctx: WorkflowContext, request: JobRequest) -> Job | None:
    fields = _request_fields(request)
    try:
        job = await ctx.store.claim_days(request, ctx.now())
    except ClaimConflict as conflict:
        log.info("job.claim_conflict", reason=str(conflict), **fields)
        return None
    except StoreError as error:
        # Nothing was written (one transaction): the days are planned again on a later pass.
        log.error("job.claim_failed", error=str(error), **fields)
        return None
    try:
        remote = await ctx.client.create_job(
            request.resource_type, request.start_day, request.end_day, request.friendly_name
        )
    except AmbiguousCreateError as error:
        # The job may exist: leave it submitting; a later pass looks it up by name.
        await _ambiguous(ctx, job, error.reason, fields)
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
    try:
        job, changes = await ctx.store.record_job_sid(
            job.id, remote.job_sid, now, _first_poll(ctx, job, now)
        )
    except StoreError as error:
        # Twilio has the job but our record of it is unclear: as for an unclear answer, the
        # job stays submitting, counts in the budget and is looked up by name after a wait.
        log.error(
            "job.record_failed",
            job_sid=remote.job_sid,
            error=str(error),
            action="the job is looked up on Twilio by name later",
            **fields,
        )
        await _ambiguous(ctx, job, f"SID {remote.job_sid} not recorded: {error}", fields)
        return None
    log.info("job.submitted", job_sid=remote.job_sid, **fields)
    log_changes(changes)
    return job


async def _ambiguous(
    ctx: WorkflowContext, job: Job, reason: str, fields: dict[str, object]
) -> None:
    """Record an unclear create; past the day's limit for its days, say so at error level."""
    now = ctx.now()
    policy = ctx.policies.ambiguous
    settled = await ctx.store.settle_job(
        job.id, functools.partial(mark_ambiguous, policy=policy, now=now, reason=reason)
    )
    log.warning(
        "job.submit_ambiguous",
        reason=reason,
        next_lookup_at=_iso(settled.job.next_lookup_at),
        **fields,
    )
    window_start, _ = budget_window(now)
    today = await ctx.store.ambiguous_creates_since(window_start)
    if suspends(settled.job, today, policy, now):
        log.error(
            "job.creates_suspended",
            ambiguous_creates=policy.max_creates_per_day,
            until=_iso(suspended_until(now)),
            reason=reason,
            action=(
                "Twilio answered creates of these days in a way the daemon could not read "
                f"{policy.max_creates_per_day} times today; no new job takes them before "
                "the next UTC day. Check Twilio's job list and e-mails for duplicate jobs, "
                "and [twilio] base_url, any proxy in between and Twilio's status page"
            ),
            **fields,
        )


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
