"""Record the days the configuration wants now, so a day once wanted stays wanted."""

from __future__ import annotations

import datetime as dt

from orchestrator.domain.model import DayKey, latest_eligible_day
from orchestrator.domain.wanted import wanted_days
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext

log = get_logger(__name__)


def _eligible_wanted(ctx: WorkflowContext, now: dt.datetime) -> list[DayKey]:
    latest = latest_eligible_day(now)
    return [
        DayKey(resource_type, day)
        for resource_type, days in wanted_days(ctx.settings.export_specs(), now).items()
        for day in sorted(days)
        if day <= latest
    ]


async def record_wanted_days(ctx: WorkflowContext) -> int:
    """Upsert every eligible wanted day; return how many were new.

    Days not yet eligible are left for a later pass: recording them now would make
    ``--exit-when-done`` wait for days Twilio cannot export yet.
    """
    now = ctx.now()
    added = await ctx.store.upsert_wanted_days(_eligible_wanted(ctx, now), now)
    if added:
        latest = latest_eligible_day(now)
        log.info("days.wanted", added=added, eligible_through=latest.isoformat())
    return added


async def all_wanted_days_final(ctx: WorkflowContext, *, require_archived: bool) -> bool:
    """Every recorded day is final, and so is every day the configuration wants now.

    The second half matters on a fresh database: before the first wanted pass has recorded
    anything, "every recorded day is final" is vacuously true.
    """
    if not await ctx.store.all_wanted_final(require_archived=require_archived):
        return False
    keys = _eligible_wanted(ctx, ctx.now())
    return await ctx.store.all_wanted_final(keys=keys, require_archived=require_archived)
