"""After Twilio refuses a create, when to try creating jobs again. Pure.

A refused create (400: a quota reached, a day Twilio will not take yet; or a request that never
left after retries) created nothing, so its days go straight back to Pending. Planning them again
on the next one-minute submit pass would meet the same refusal, e-mail nobody but fill the log
with an error a minute for as long as the cause lasts. So each consecutive refusal doubles the
pause before the next create, from ``initial`` up to ``maximum``; one accepted create ends it.
The pause is account-wide: Twilio's day quota is too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orchestrator.errors import InvalidInput

INITIAL_PAUSE = dt.timedelta(minutes=2)
MAXIMUM_PAUSE = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SubmitHold:
    """Consecutive refused creates and the moment creates may resume (None: no pause)."""

    refusals: int = 0
    until: dt.datetime | None = None

    def allows(self, now: dt.datetime) -> bool:
        """A create may be sent at ``now``."""
        return self.until is None or now >= self.until


def hold_after_refusal(
    hold: SubmitHold,
    now: dt.datetime,
    *,
    initial: dt.timedelta = INITIAL_PAUSE,
    maximum: dt.timedelta = MAXIMUM_PAUSE,
) -> SubmitHold:
    """The hold after one more refused create at ``now``."""
    if initial <= dt.timedelta(0) or maximum < initial:
        raise InvalidInput("initial", f"need 0 < initial ({initial}) <= maximum ({maximum})")
    refusals = hold.refusals + 1
    # Capped before multiplying: 2 ** refusals grows without bound over a long outage.
    pause = min(maximum, initial * 2 ** min(refusals - 1, 32))
    return SubmitHold(refusals=refusals, until=now + pause)


def hold_after_acceptance() -> SubmitHold:
    """An accepted create ends any pause."""
    return SubmitHold()
