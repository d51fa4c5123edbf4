"""The one wiring: the table of passes, the workflow context and the daemon's schedule."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any, cast

from orchestrator.clock import ScaledClock
from orchestrator.config import Settings, load_settings
from orchestrator.daemon import Daemon
from orchestrator.scheduling import Ticker
from orchestrator.store.repository import Store
from orchestrator.twilio import BulkExportsClient
from orchestrator.wiring import PASSES, pass_spec, workflow_context
from orchestrator.workflows.context import ApiHealth

ACCOUNT = "AC" + "4" * 32
TOKEN_ENV = "WIRING_TOKEN"


def _settings(tmp_path: Path, extra: str = "") -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "{TOKEN_ENV}"

            [state]
            directory = "{tmp_path / "state"}"

            [jobs]
            name_prefix = "orch-wire"

            [polling]
            initial_delay = "40s"

            [cleanup]
            interval = "20m"
            orphan_interval = "3h"

            [[exports]]
            name = "messages"
            resource_type = "Messages"
            last_days = 3
            """
        )
        + textwrap.dedent(extra)
    )
    return load_settings(path, environ={TOKEN_ENV: "x" * 32})


def test_the_passes_in_cycle_order() -> None:
    """run_cycle's order, archive before cleanup; the plain cleanup pass is not in a cycle."""
    assert [s.name for s in PASSES] == ["wanted", "submit", "poll", "archive", "cleanup", "orphans"]
    assert [s.name for s in PASSES if s.in_cycle] == [
        "wanted",
        "submit",
        "poll",
        "archive",
        "orphans",
    ]


def test_cadences_come_from_the_settings(tmp_path: Path) -> None:
    """Poll every initial_delay / 2, cleanup and orphans at their configured intervals."""
    settings = _settings(tmp_path)
    every = {spec.name: spec.every(settings) for spec in PASSES}
    assert every == {
        "wanted": dt.timedelta(hours=1),
        "submit": dt.timedelta(minutes=1),
        "poll": dt.timedelta(seconds=20),
        "archive": dt.timedelta(minutes=1),
        "cleanup": dt.timedelta(minutes=20),
        "orphans": dt.timedelta(hours=3),
    }


def test_workflow_context_carries_the_policies_not_the_settings(tmp_path: Path) -> None:
    """The context holds the settings' one Policies value, the prefix, exports and archive."""
    settings = _settings(tmp_path, f'[archive]\ndirectory = "{tmp_path / "files"}"\n')
    ctx = workflow_context(
        settings,
        store=cast(Store, None),
        client=cast(BulkExportsClient, None),
        clock=ScaledClock(1.0),
        health=ApiHealth(),
        rand=lambda: 0.5,
    )
    assert ctx.policies is settings.policies
    assert ctx.policies.poll.initial == dt.timedelta(seconds=40)
    assert ctx.policies.cleanup.archive_enabled
    assert ctx.name_prefix == "orch-wire"
    assert ctx.exports == settings.export_specs()
    assert ctx.archive is not None and ctx.archive.directory == tmp_path / "files"
    assert not hasattr(ctx, "config")


class _RecordingTicker:
    def __init__(self) -> None:
        self.calls: dict[str, tuple[float, float]] = {}

    def every(self, name: str, seconds: float, run: Any, *, first_in: float = 0.0) -> None:
        self.calls[name] = (seconds, first_in)


def test_the_daemon_schedules_the_table_in_real_seconds(tmp_path: Path) -> None:
    """Intervals scaled by the clock (poll capped at 15 s), first runs as the table says."""
    settings = _settings(tmp_path)
    daemon = Daemon(tmp_path / "config.toml", clock=ScaledClock(10.0), environ={})
    ticker = _RecordingTicker()
    daemon._schedule(cast(Ticker, ticker), settings)
    assert ticker.calls == {
        "wanted": (360.0, 0.0),
        "submit": (6.0, 0.0),
        "poll": (2.0, 1.0),
        "archive": (6.0, 1.0),
        "cleanup": (120.0, 0.0),
        "orphans": (1080.0, 0.0),
    }
    slow = _RecordingTicker()
    Daemon(tmp_path / "config.toml", clock=ScaledClock(1.0), environ={})._schedule(
        cast(Ticker, slow), settings
    )
    assert slow.calls["poll"] == (15.0, 7.5)
    assert pass_spec("poll").max_real_interval == 15.0
