"""The read-only endpoint on the wire, over a real store (both databases)."""

from __future__ import annotations

import asyncio
import datetime as dt
from html import escape
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.errors import AuthenticationError
from orchestrator.http import Sources, make_app
from orchestrator.metrics import Metrics
from orchestrator.store import Store, create_engine

from .conftest import MARKUP, NOW, SID_A, SID_B, Endpoint

DEADLINE = 30.0


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape(endpoint: Endpoint) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await endpoint.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await response.text())


async def test_metrics_have_the_issue_names_labels_and_values(endpoint: Endpoint) -> None:
    """The database's gauges come out with the issue's names, labels and the scene's values."""
    found = await scrape(endpoint)
    calls = {"export": "calls-may", "resource_type": "Calls"}
    assert value(found, "orchestrator_days", **calls, status="Completed") == 1
    assert value(found, "orchestrator_days", **calls, status="CompletedEmptyRecords") == 1
    assert value(found, "orchestrator_days", **calls, status="Submitted") == 3
    per_export = sum(
        v
        for (name, labels), v in found.items()
        if name == "orchestrator_days" and ("export", "calls-may") in labels
    )
    assert per_export == 10
    assert (
        value(
            found,
            "orchestrator_days",
            export="recent-messages",
            resource_type="Messages",
            status="Pending",
        )
        == 3
    )
    # 05-20 made its file 6 days ago and is not archived: one day left.
    assert value(found, "orchestrator_days_at_risk", resource_type="Calls") == 1
    assert value(found, "orchestrator_day_file_expiry_seconds", resource_type="Calls") == 86400
    assert ("orchestrator_days_at_risk", (("resource_type", "Messages"),)) not in found
    week = 7 * 86400.0
    assert (
        value(found, "orchestrator_oldest_pending_day_age_seconds", resource_type="Messages")
        == week
    )
    assert value(found, "orchestrator_jobs", state="active") == 1
    assert value(found, "orchestrator_jobs", state="finished") == 1
    assert value(found, "orchestrator_jobs", state="lost") == 0
    # Job B (3 days) was created today (UTC); job A six days ago.
    assert value(found, "orchestrator_quota_days_used") == 3
    assert value(found, "orchestrator_quota_days_budget") == (
        endpoint.settings.policies.plan.daily_day_budget
    )
    assert value(found, "orchestrator_twilio_credentials_ok") == 1
    assert value(found, "orchestrator_leader") == 0  # no daemon has won a lock here
    assert value(found, "orchestrator_build_info", version="9.9.9-test") == 1
    for name in ("wanted", "submit", "poll", "archive", "cleanup", "orphans"):
        assert (
            value(found, "orchestrator_pass_last_success_timestamp_seconds", **{"pass": name}) == 0
        )
        assert value(found, "orchestrator_pass_failures_total", **{"pass": name}) == 0


async def test_counters_follow_the_metrics_methods(endpoint: Endpoint) -> None:
    """Passes, archive outcomes and Twilio requests show in the next scrape."""
    metrics = endpoint.metrics

    async def ok() -> None:
        return None

    async def broken() -> None:
        raise RuntimeError("boom")

    metrics._wall_time = lambda: 1_700_000_000.0
    await metrics.track_pass("poll", ok)()
    with pytest.raises(RuntimeError):
        await metrics.track_pass("archive", broken)()
    metrics.archived(2048)
    metrics.archive_failed("corrupt")
    metrics.archive_failed("a day 2024-05-01 is not a label")
    metrics.observe_request("/v1/Exports/Jobs/{JobSid}", "200", 0.2)
    found = await scrape(endpoint)
    assert (
        value(found, "orchestrator_pass_last_success_timestamp_seconds", **{"pass": "poll"})
        == 1_700_000_000.0
    )
    assert value(found, "orchestrator_pass_failures_total", **{"pass": "archive"}) == 1
    assert value(found, "orchestrator_archive_files_total") == 1
    assert value(found, "orchestrator_archive_bytes_total") == 2048
    assert value(found, "orchestrator_archive_failures_total", reason="corrupt") == 1
    assert value(found, "orchestrator_archive_failures_total", reason="unknown") == 1
    route = "/v1/Exports/Jobs/{JobSid}"
    assert value(found, "orchestrator_twilio_requests_total", route=route, status="200") == 1
    assert value(found, "orchestrator_twilio_request_duration_seconds_count", route=route) == 1


async def test_credentials_rejected_show_in_metrics_readyz_and_page(endpoint: Endpoint) -> None:
    """After a 401 the gauge reads 0, /readyz answers 503 with the reason, the page warns."""
    response = await endpoint.client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"ready": True}
    endpoint.ctx.health.record_auth_failure(
        AuthenticationError(status=401, code=20003, message="Authenticate")
    )
    assert value(await scrape(endpoint), "orchestrator_twilio_credentials_ok") == 0
    response = await endpoint.client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["ready"] is False
    assert "credentials" in body["reason"]
    page = await (await endpoint.client.get("/")).text()
    assert "Twilio rejects the credentials" in page


async def test_livez_answers(endpoint: Endpoint) -> None:
    """/livez is 200 with a plain body."""
    response = await endpoint.client.get("/livez")
    assert response.status == 200
    assert await response.text() == "ok\n"


async def test_readyz_is_503_when_the_database_does_not_answer(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    """A store whose database cannot be opened makes /readyz 503, naming no URL or path."""
    missing = tmp_path / "no" / "such" / "dir" / "x.sqlite"
    engine = create_engine(f"sqlite:///{missing}")
    try:
        broken = Store(engine, endpoint.store.account_sid)
        app = make_app(Sources(store=broken, metrics=Metrics(), context=lambda: endpoint.ctx))
        async with TestClient(TestServer(app, port=0)) as client:
            response = await client.get("/readyz")
            assert response.status == 503
            body = await response.json()
            assert body == {"ready": False, "reason": "the database does not answer"}
            # /metrics still answers, without the database's gauges.
            scraped = await client.get("/metrics")
            assert scraped.status == 200
            names = {name for name, _ in samples(await scraped.text())}
            assert "orchestrator_build_info" in names
            assert "orchestrator_days_at_risk" not in names
    finally:
        await engine.dispose()


@pytest.mark.parametrize("path", ["/nope", "/metrics/x", "/status", "/favicon.ico", "/.env"])
async def test_unknown_paths_are_404(endpoint: Endpoint, path: str) -> None:
    """Only the four routes exist."""
    response = await endpoint.client.get(path)
    assert response.status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/metrics", "/livez", "/readyz"])
async def test_nothing_but_get(endpoint: Endpoint, method: str, path: str) -> None:
    """Every route refuses every method that could change something."""
    response = await endpoint.client.request(method, path)
    assert response.status == 405


async def _state(store: Store) -> tuple[object, ...]:
    return (
        await store.list_days(),
        await store.list_jobs(),
        await store.recent_changes(1000),
    )


async def test_nothing_changes_state_and_no_secret_shows(endpoint: Endpoint) -> None:
    """Every answer (bodies and headers) is free of every form of the secret; the store is
    the same after all of them."""
    before = await _state(endpoint.store)
    seen: list[str] = []
    for method, path in [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/livez"),
        ("GET", "/readyz"),
        ("GET", "/nope"),
        ("HEAD", "/"),
        ("POST", "/metrics"),
    ]:
        response = await endpoint.client.request(method, path)
        seen.append(await response.text())
        seen.extend(f"{k}: {v}" for k, v in response.headers.items())
    everything = "\n".join(seen)
    assert endpoint.store.account_sid in everything  # the page and headers were read
    for secret in endpoint.secrets:
        assert secret not in everything
    assert await _state(endpoint.store) == before


async def test_page_escapes_every_value(endpoint: Endpoint) -> None:
    """A job's last error with markup shows as text, never as markup; no script on the page."""
    response = await endpoint.client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert MARKUP not in page
    assert escape(MARKUP, quote=True) in page
    assert "<script" not in page
    assert SID_A in page and SID_B in page


async def test_page_shows_calendars_risk_and_changes(endpoint: Endpoint) -> None:
    """One cell per wanted day per export, titles with status and job, the risk banner."""
    page = await (await endpoint.client.get("/")).text()
    assert page.count('class="cell ') == 10 + 3
    assert f'title="2024-05-20: Completed, job {SID_A}, not archived"' in page
    assert f'title="2024-05-21: CompletedEmptyRecords, job {SID_A}, archived"' in page
    assert 'title="2024-05-28: Pending, no job"' in page
    assert "1 Calls day at risk:" in page
    assert "1d 0h" in page
    assert "Last state changes" in page
    assert '<meta name="viewport"' in page


async def test_a_scrape_answers_while_a_write_holds_the_sqlite_write_slot(
    endpoint: Endpoint,
) -> None:
    """Reads never queue behind a long write transaction (BEGIN IMMEDIATE held)."""
    if endpoint.store._engine.dialect.name != "sqlite":
        pytest.skip("the write slot is one at a time on SQLite only")
    holding = asyncio.Event()
    release = asyncio.Event()

    async def long_write() -> None:
        async with endpoint.store._write("a long pass"):
            holding.set()
            await release.wait()

    writer = asyncio.create_task(long_write())
    try:
        await asyncio.wait_for(holding.wait(), DEADLINE)
        assert endpoint.store._write_slots.locked()
        for path in ("/metrics", "/", "/readyz"):
            response = await asyncio.wait_for(endpoint.client.get(path), DEADLINE)
            assert response.status == 200, path
            await response.read()
        assert not writer.done()
    finally:
        release.set()
        await writer


async def test_scrape_reads_the_current_clock(endpoint: Endpoint) -> None:
    """The expiry counts down with the clock (time is read at each scrape)."""
    endpoint.clock.advance(dt.timedelta(hours=1))
    found = await scrape(endpoint)
    assert value(found, "orchestrator_day_file_expiry_seconds", resource_type="Calls") == 82800
    assert endpoint.clock.now() > NOW
