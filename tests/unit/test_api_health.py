"""ApiHealth: one set of credentials' standing with Twilio, retired by a reload."""

from __future__ import annotations

import structlog

from orchestrator.errors import AuthenticationError
from orchestrator.workflows.context import ApiHealth

REJECTED = AuthenticationError(401, "Authenticate", code=20003)


def test_the_first_rejection_is_logged_and_reported_once() -> None:
    reported: list[bool] = []
    health = ApiHealth(on_change=lambda h: reported.append(h.healthy))
    with structlog.testing.capture_logs() as logs:
        health.record_auth_failure(REJECTED)
        health.record_auth_failure(REJECTED)
    assert not health.healthy
    assert [e["event"] for e in logs] == ["twilio.auth_failed"]
    assert logs[0]["code"] == 20003
    assert reported == [False]


def test_a_retired_health_stops_its_passes_and_ignores_their_rejections() -> None:
    """A pass still holding the replaced credentials must not mark the new ones as rejected
    (its 401 arrives after the reload), and it stops at its next check."""
    reported: list[bool] = []
    old = ApiHealth(on_change=lambda h: reported.append(h.healthy))
    current = ApiHealth(on_change=lambda h: reported.append(h.healthy))
    old.retire()
    with structlog.testing.capture_logs() as logs:
        old.record_auth_failure(REJECTED)
    assert not old.healthy
    assert old.auth_failure is None
    assert current.healthy
    assert logs == [] and reported == []
