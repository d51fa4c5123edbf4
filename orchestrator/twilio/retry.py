"""When to retry a request and how long to wait: pure decisions, wired into stamina.

``decide`` is pure (the attempt number, the elapsed time and the random source come in as
arguments) and returns a ``RetryDecision`` value. ``call_with_retries`` feeds it to stamina as a
backoff hook: stamina keeps the loop, the attempt and time bounds, instrumentation and its test
mode (``stamina.set_testing``), and sleeps exactly the wait we computed, so a server's
Retry-After is honoured and exponential backoff with jitter is ours to test.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina
import structlog

from orchestrator.errors import RateLimited, ServerError, TransportError
from orchestrator.twilio.settings import ClientSettings

T = TypeVar("T")


class RequestNotSent(TransportError):
    """The connection could not be made: nothing reached the server, so any request may retry."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether to try again after a failed attempt, after how many seconds, and why."""

    retry: bool
    wait: float
    reason: str


def is_retryable(exc: BaseException, *, idempotent: bool) -> tuple[bool, str]:
    """Whether ``exc`` may be retried, with a short reason for the logs.

    429 is never processed by Twilio and a failed connect never sent anything: always safe.
    A 5xx, a timeout or a reset may have been processed: safe only for an idempotent request
    (GET, DELETE); a create POST must not be repeated blindly.
    """
    if isinstance(exc, RateLimited):
        return True, "rate_limited"
    if isinstance(exc, RequestNotSent):
        return True, "not_sent"
    if isinstance(exc, ServerError | TransportError):
        reason = "server_error" if isinstance(exc, ServerError) else "transport_error"
        if idempotent:
            return True, reason
        return False, f"{reason}_not_idempotent"
    return False, "not_retryable"


def backoff(attempt: int, settings: ClientSettings, *, jitter: float) -> float:
    """Exponential backoff for the ``attempt``-th failure (1-based) plus ``jitter`` in [0, 1)
    times ``wait_jitter``, capped at ``wait_max``."""
    try:
        base = settings.wait_initial * settings.wait_exp_base ** (attempt - 1)
    except OverflowError:
        return settings.wait_max
    return min(settings.wait_max, base + settings.wait_jitter * jitter)


def decide(
    exc: BaseException,
    *,
    attempt: int,
    elapsed: float,
    idempotent: bool,
    settings: ClientSettings,
    jitter: float,
) -> RetryDecision:
    """The decision after the ``attempt``-th attempt (1-based) failed with ``exc``.

    The wait is the server's Retry-After when it gave one (capped at ``max_retry_after``),
    else exponential backoff with jitter. No retry once ``max_attempts`` attempts were made
    or when waiting would pass ``retry_timeout`` (counted from the first attempt).
    """
    retryable, reason = is_retryable(exc, idempotent=idempotent)
    if not retryable:
        return RetryDecision(False, 0.0, reason)
    if attempt >= settings.max_attempts:
        return RetryDecision(False, 0.0, "attempts_exhausted")
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        wait = min(max(exc.retry_after, 0.0), settings.max_retry_after)
    else:
        wait = backoff(attempt, settings, jitter=jitter)
    if elapsed + wait > settings.retry_timeout:
        return RetryDecision(False, 0.0, "retry_timeout")
    return RetryDecision(True, wait, reason)


class _Hook:
    """A stamina backoff hook for one call: counts failures and asks ``decide``."""

    def __init__(
        self,
        *,
        settings: ClientSettings,
        idempotent: bool,
        log_fields: dict[str, object],
        log: structlog.typing.FilteringBoundLogger,
        monotonic: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._idempotent = idempotent
        self._log_fields = log_fields
        self._log = log
        self._monotonic = monotonic
        self._rand = rand
        self._start = monotonic()
        self.failures = 0
        self.decisions: list[RetryDecision] = []

    def __call__(self, exc: Exception) -> bool | float:
        self.failures += 1
        decision = decide(
            exc,
            attempt=self.failures,
            elapsed=self._monotonic() - self._start,
            idempotent=self._idempotent,
            settings=self._settings,
            jitter=self._rand(),
        )
        self.decisions.append(decision)
        if not decision.retry:
            if decision.reason in ("attempts_exhausted", "retry_timeout"):
                self._log.warning(
                    "twilio.request_gave_up",
                    **self._log_fields,
                    attempts=self.failures,
                    reason=decision.reason,
                    error=type(exc).__name__,
                    status=getattr(exc, "status", None),
                )
            return False
        self._log.warning(
            "twilio.request_retried",
            **self._log_fields,
            attempt=self.failures,
            wait=round(decision.wait, 3),
            reason=decision.reason,
            error=type(exc).__name__,
            status=getattr(exc, "status", None),
        )
        # A float is stamina's "retry after exactly this many seconds" (0 in its test mode).
        return decision.wait


async def call_with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    settings: ClientSettings,
    idempotent: bool,
    log: structlog.typing.FilteringBoundLogger,
    log_fields: dict[str, object],
    monotonic: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run ``operation`` until it succeeds or ``decide`` says stop; the last error is raised."""
    hook = _Hook(
        settings=settings,
        idempotent=idempotent,
        log_fields=log_fields,
        log=log,
        monotonic=monotonic,
        rand=rand,
    )
    async for attempt in stamina.retry_context(
        on=hook,
        # Our decide() enforces both bounds; stamina's copies keep its test mode (cap=True) sane.
        attempts=settings.max_attempts,
        timeout=settings.retry_timeout,
        wait_initial=settings.wait_initial,
        wait_max=settings.wait_max,
        wait_jitter=settings.wait_jitter,
        wait_exp_base=settings.wait_exp_base,
    ):
        with attempt:
            return await operation()
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
