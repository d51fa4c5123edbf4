"""A real ``orchestrator run`` process SIGKILLed in the middle of an S3 multipart upload.

Nothing appears at the final key (the upload is left incomplete: invisible, and removed by the
bucket's lifecycle rule), the day is not recorded archived, and after a restart the day is
archived once, with the simulator's bytes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from pathlib import Path

import pytest

from orchestrator.domain.model import DayKey, ResourceType
from orchestrator.simulator import running_simulator
from orchestrator.simulator.files import file_spec, measure
from orchestrator.store.engine import create_engine
from orchestrator.store.repository import Store
from tests.archive.s3_support import S3Bucket, is_part_upload, running_proxy
from tests.e2e.process_support import (
    ACCOUNT,
    PREFIX,
    TOKEN,
    TOKEN_ENV,
    DaemonProcess,
    shared_clock,
    simulator_settings,
    write_config,
)

SPEED = 200.0
DAY = dt.date(2026, 2, 1)
KEY = f"Calls/{DAY:%Y}/{DAY:%m}/{DAY.isoformat()}.json.gz"
BODY = f"""
[jobs]
name_prefix = "{PREFIX}"

[polling]
initial_delay = "20s"
max_delay = "1m"

[[exports]]
name = "calls"
resource_type = "Calls"
start_day = "{DAY.isoformat()}"
end_day = "{DAY.isoformat()}"

[archive]
"""


async def archived(database: Path) -> str | None:
    """The location recorded for the day, None while it is not archived."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        day = await Store(engine, ACCOUNT).get_day(DayKey(ResourceType.CALLS, DAY))
    finally:
        await engine.dispose()
    return day.archive.path if day is not None and day.archive is not None else None


@pytest.mark.slow
async def test_a_sigkill_mid_upload_leaves_nothing_and_a_restart_archives(
    tmp_path: Path,
) -> None:
    """SIGKILL while a part is in flight: no object, not archived; restarted: archived once."""
    bucket = S3Bucket.create()
    clock = shared_clock(SPEED)
    settings = simulator_settings(clock, day_target_bytes=6 * 1024 * 1024)
    async with running_simulator(settings) as sim, running_proxy() as proxy:
        proxy.add("hold", is_part_upload, times=1)
        body = BODY + bucket.via(proxy.base_url).archive_toml(tmp_path / "credentials")
        config = write_config(tmp_path, sim.base_url, body)
        database = tmp_path / "state" / "orchestrator.sqlite"
        environ = {TOKEN_ENV: TOKEN}
        first = await DaemonProcess.start(config, clock, tmp_path / "logs", environ=environ)
        try:
            await asyncio.wait_for(proxy.held.wait(), timeout=120)
            first.signal(signal.SIGKILL)
            assert await first.wait(within=30) == -signal.SIGKILL
        finally:
            await first.kill()
        assert bucket.head(KEY) is None
        assert [u["Key"] for u in bucket.incomplete_uploads()] == [bucket.full_key(KEY)]
        assert await archived(database) is None
        assert not first.named("archive.stored")
        proxy.release.set()

        second = await DaemonProcess.start(
            config, clock, tmp_path / "logs", exit_when_done=True, environ=environ
        )
        try:
            assert await second.wait(within=180) == 0, second.stderr.read_text()[-2000:]
        finally:
            await second.kill()
    truth = measure(file_spec(sim.settings, ResourceType.CALLS, DAY))
    assert await archived(database) == f"{bucket.url}/{KEY}"
    assert bucket.sha256(KEY) == truth.sha256
    assert len(second.named("archive.stored")) == 1
    # The killed run's upload stays incomplete (never visible) until the lifecycle rule.
    assert bucket.object_keys() == [bucket.full_key(KEY)]
