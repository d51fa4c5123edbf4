"""Delete stale, finished and orphaned jobs of ours on Twilio; never anyone else's."""

from __future__ import annotations

import functools

from orchestrator.domain.cleanup import CleanupAction, CleanupReason, decide_cleanup, owns_name
from orchestrator.domain.model import JobState, ObservedBy, RemoteJob, ResourceType
from orchestrator.domain.settlement import end_job, start_deleting
from orchestrator.errors import AuthenticationError, NotLeader, StoreError, TwilioError
from orchestrator.logs import get_logger
from orchestrator.twilio import DeleteOutcome
from orchestrator.workflows.context import WorkflowContext, log_changes

log = get_logger(__name__)

_OPEN_STATES = (JobState.ACTIVE, JobState.FINISHED, JobState.DELETING)


async def clean_up(ctx: WorkflowContext, *, sweep_orphans: bool = False) -> list[CleanupAction]:
    """Decide which of our jobs to delete and delete them; return what was done.

    Our own jobs are deleted by the SIDs the store recorded, so an ordinary pass calls Twilio
    only to delete. ``sweep_orphans`` also lists every job on Twilio to find jobs with our
    prefix that the store never recorded: costly (a list per resource type, every page), so
    the daemon does it at start-up and then every ``cleanup.orphan_interval``.
    """
    if not ctx.health.healthy:
        return []
    prefix = ctx.name_prefix
    remote: list[RemoteJob] = []
    if sweep_orphans and ctx.policies.cleanup.delete_orphans:
        listed = await _list_remote_jobs(ctx)
        if listed is None:
            return []
        remote = listed
    # Read after listing: a job created meanwhile is then known, not taken for an orphan.
    known_names = {job.friendly_name for job in await ctx.store.list_jobs()}
    jobs = await ctx.store.list_jobs(states=_OPEN_STATES)
    days = await ctx.store.list_days()
    now = ctx.now()
    actions = decide_cleanup(
        jobs,
        days,
        remote,
        known_names=known_names,
        policy=ctx.policies.cleanup,
        prefix=prefix,
        now=now,
    )
    done: list[CleanupAction] = []
    for action in actions:
        # decide_cleanup promises this already; checked again at the one place that deletes.
        if not owns_name(action.friendly_name, prefix):
            log.error("job.delete_refused", job_sid=action.job_sid, reason="not our prefix")
            continue
        try:
            deleted = await _delete(ctx, action)
        except NotLeader:
            raise  # not one job's failure: the pass stops
        except Exception as error:  # one job's failure must not stop the other deletes
            details: dict[str, object] = {"error": str(error), "error_type": type(error).__name__}
            if not isinstance(error, StoreError):
                details["exc_info"] = error
            # Nothing more to write: the job is decided again on the next pass (its backoff is
            # the cleanup interval); a job left deleting is resumed then.
            log.error(
                "job.delete_error",
                resource_type=action.resource_type.value,
                job_sid=action.job_sid,
                friendly_name=action.friendly_name,
                reason=action.reason.value,
                **details,
            )
            continue
        if deleted:
            done.append(action)
        if not ctx.health.healthy:
            break
    return done


async def _list_remote_jobs(ctx: WorkflowContext) -> list[RemoteJob] | None:
    """Every job on Twilio of the resource types we use; None when it could not be listed."""
    jobs = await ctx.store.list_jobs(states=_OPEN_STATES)
    types = {job.resource_type for job in jobs} | {spec.resource_type for spec in ctx.exports}
    remote: list[RemoteJob] = []
    for resource_type in sorted(types, key=list(ResourceType).index):
        try:
            remote.extend(await ctx.client.list_jobs(resource_type))
        except AuthenticationError as error:
            ctx.health.record_auth_failure(error)
            return None
        except TwilioError as error:
            log.warning("cleanup.deferred", resource_type=resource_type.value, error=str(error))
            return None
    return remote


async def _delete(ctx: WorkflowContext, action: CleanupAction) -> bool:
    """DELETE one job on Twilio, recorded as deleting before and as deleted after.

    Intent before effect, as for creates: a crash between the two leaves the job deleting,
    and the next pass sends the DELETE again (``CleanupReason.RESUME``; a 404 then confirms it).
    The job keeps its days until Twilio confirmed, so a day never sits in two live jobs.
    """
    fields = {
        "resource_type": action.resource_type.value,
        "job_sid": action.job_sid,
        "friendly_name": action.friendly_name,
        "reason": action.reason.value,
    }
    reason = f"cleanup: {action.reason.value}"
    if action.job_id is not None and action.reason is not CleanupReason.RESUME:
        await ctx.store.settle_job(
            action.job_id, functools.partial(start_deleting, now=ctx.now(), reason=reason)
        )
    try:
        outcome = await ctx.client.delete_job(action.job_sid)
    except AuthenticationError as error:
        ctx.health.record_auth_failure(error)
        return False
    except TwilioError as error:
        log.warning("job.delete_failed", error=str(error), **fields)
        return False
    if action.job_id is not None:
        ended = await ctx.store.settle_job(
            action.job_id,
            functools.partial(
                end_job,
                new_state=JobState.DELETED,
                observed_by=ObservedBy.CLEANUP,
                now=ctx.now(),
                reason=reason,
            ),
        )
        log_changes(ended.changes)
    level = log.warning if action.reason is CleanupReason.STALE else log.info
    level("job.deleted", already_gone=outcome is DeleteOutcome.ALREADY_GONE, **fields)
    return True
