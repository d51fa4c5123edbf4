"""``orchestrator run`` serves the endpoint from its own loop: up before READY, counting passes
and Twilio requests as they happen, gone after the drain."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.simulator import running_simulator
from tests.e2e.process_support import (
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    daemon_process,
    shared_clock,
    simulator_settings,
    write_config,
)

BODY = f"""
[jobs]
name_prefix = "{PREFIX}"
max_days_per_job = 3

[http]
listen = "127.0.0.1:0"

[[exports]]
name = "messages-jan"
resource_type = "Messages"
start_day = "2026-01-01"
end_day = "2026-01-06"
"""
DEADLINE = 60.0


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
async def test_the_daemon_serves_metrics_while_it_works_and_stops_serving(
    tmp_path: Path,
) -> None:
    """Listening is logged before daemon.started (READY=1); the scrape shows the wanted days,
    a successful wanted pass and counted Twilio requests; after SIGTERM the port is closed."""
    clock = shared_clock(600.0)
    async with running_simulator(simulator_settings(clock)) as sim:
        config = write_config(tmp_path, sim.base_url, BODY)
        async with daemon_process(
            config, clock, tmp_path / "logs", environ={TOKEN_ENV: TOKEN}
        ) as daemon:
            events = await daemon.wait_for("daemon.started", within=DEADLINE)
            names = [e.get("event") for e in events]
            assert names.index("http.listening") < names.index("daemon.started")
            [listening] = daemon.named("http.listening")
            base = listening["urls"][0].rstrip("/")
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/livez") as response:
                    assert response.status == 200
                async with session.get(f"{base}/readyz") as response:
                    assert response.status == 200
                deadline = time.monotonic() + DEADLINE
                while True:
                    async with session.get(f"{base}/metrics") as response:
                        assert response.status == 200
                        found = _samples(await response.text())
                    wanted_ok = found.get(
                        (
                            "orchestrator_pass_last_success_timestamp_seconds",
                            frozenset({("pass", "wanted")}),
                        ),
                        0,
                    )
                    requests = sum(
                        v
                        for (n, _), v in found.items()
                        if n == "orchestrator_twilio_requests_total"
                    )
                    days = sum(v for (n, _), v in found.items() if n == "orchestrator_days")
                    if wanted_ok > 0 and requests > 0 and days == 6:
                        break
                    assert time.monotonic() < deadline, found
                    await asyncio.sleep(0.2)
                assert abs(wanted_ok - time.time()) < 600
                daemon.signal(signal.SIGTERM)
                assert await daemon.wait(DEADLINE) == 0
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with session.get(f"{base}/livez") as response:
                        pass
            assert daemon.named("http.stopped")
