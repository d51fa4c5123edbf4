"""Record the days the configuration wants now, so a day once wanted stays wanted."""

from __future__ import annotations

from orchestrator.domain.model import DayKey, latest_eligible_day
from orchestrator.domain.wanted import wanted_days
from orchestrator.logs import get_logger
from orchestrator.workflows.context import WorkflowContext

log = get_logger(__name__)


async def record_wanted_days(ctx: WorkflowContext) -> int:
    """Upsert every eligible wanted day; return how many were new.

    Days not yet eligible are left for a later pass: recording them now would make
    ``--exit-when-done`` wait for days Twilio cannot export yet.
    """
    now = ctx.now()
    latest = latest_eligible_day(now)
    keys = [
        DayKey(resource_type, day)
        for resource_type, days in wanted_days(ctx.exports, now).items()
        for day in sorted(days)
        if day <= latest
    ]
    added = await ctx.store.upsert_wanted_days(keys, now)
    if added:
        log.info("days.wanted", added=added, eligible_through=latest.isoformat())
    return added
