"""The pure retry decisions: what is retried, after how long, and when it stops."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.errors import (
    AuthenticationError,
    BadRequest,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from orchestrator.twilio.retry import RequestNotSent, RetryDecision, backoff, decide, is_retryable
from orchestrator.twilio.settings import ClientSettings

SETTINGS = ClientSettings(
    max_attempts=5,
    retry_timeout=100.0,
    wait_initial=0.5,
    wait_max=10.0,
    wait_jitter=1.0,
    wait_exp_base=2.0,
    max_retry_after=60.0,
)


@pytest.mark.parametrize(
    ("exc", "idempotent", "retryable"),
    [
        (RateLimited(429, "x"), True, True),
        (RateLimited(429, "x"), False, True),
        (RequestNotSent("refused"), False, True),
        (ServerError(500, "x"), True, True),
        (ServerError(500, "x"), False, False),
        (TransportError("reset"), True, True),
        (TransportError("timeout"), False, False),
        (BadRequest(400, "x"), True, False),
        (AuthenticationError(401, "x"), True, False),
        (NotFound(404, "x"), True, False),
        (MalformedResponse("x"), True, False),
        (asyncio.CancelledError(), True, False),
        (ValueError("bug"), True, False),
    ],
)
def test_is_retryable(exc: BaseException, idempotent: bool, retryable: bool) -> None:
    """429 and not-sent always; 5xx/transport only when idempotent; the rest never."""
    assert is_retryable(exc, idempotent=idempotent)[0] is retryable


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.0, 0.5),
        (2, 0.0, 1.0),
        (3, 0.0, 2.0),
        (3, 0.5, 2.5),
        (4, 0.999, 4.999),
        (5, 0.0, 8.0),
        (6, 0.0, 10.0),
        (6, 0.9, 10.0),
        (10_000, 0.0, 10.0),
    ],
)
def test_backoff_grows_exponentially_with_jitter_and_cap(
    attempt: int, jitter: float, expected: float
) -> None:
    """wait_initial * base**(n-1) + jitter * wait_jitter, never above wait_max."""
    assert backoff(attempt, SETTINGS, jitter=jitter) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("exc", "attempt", "elapsed", "expected"),
    [
        (RateLimited(429, "x", retry_after=7.0), 1, 0.0, RetryDecision(True, 7.0, "rate_limited")),
        (RateLimited(429, "x", retry_after=0.0), 1, 0.0, RetryDecision(True, 0.0, "rate_limited")),
        (
            RateLimited(429, "x", retry_after=3600.0),
            1,
            0.0,
            RetryDecision(True, 60.0, "rate_limited"),
        ),
        (RateLimited(429, "x"), 2, 0.0, RetryDecision(True, 1.0, "rate_limited")),
        (ServerError(503, "x"), 1, 0.0, RetryDecision(True, 0.5, "server_error")),
        (TransportError("x"), 3, 0.0, RetryDecision(True, 2.0, "transport_error")),
        (ServerError(503, "x"), 5, 0.0, RetryDecision(False, 0.0, "attempts_exhausted")),
        (
            RateLimited(429, "x", retry_after=50.0),
            1,
            60.0,
            RetryDecision(False, 0.0, "retry_timeout"),
        ),
        (ServerError(503, "x"), 1, 99.9, RetryDecision(False, 0.0, "retry_timeout")),
        (BadRequest(400, "x"), 1, 0.0, RetryDecision(False, 0.0, "not_retryable")),
    ],
)
def test_decide(exc: BaseException, attempt: int, elapsed: float, expected: RetryDecision) -> None:
    """Retry-After wins (capped), else backoff; attempts and total time bound the retries."""
    assert (
        decide(
            exc, attempt=attempt, elapsed=elapsed, idempotent=True, settings=SETTINGS, jitter=0.0
        )
        == expected
    )


def test_decide_never_retries_an_ambiguous_post() -> None:
    """A 5xx or transport failure of a non-idempotent request is not retried."""
    for exc in (ServerError(500, "x"), TransportError("reset")):
        decision = decide(
            exc, attempt=1, elapsed=0.0, idempotent=False, settings=SETTINGS, jitter=0.0
        )
        assert decision.retry is False
        assert decision.reason.endswith("_not_idempotent")
