"""The simulator's command-line flags and serving from them."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt

import aiohttp
import pytest

from orchestrator.clock import ScaledClock, SystemClock
from orchestrator.domain.model import ResourceType
from orchestrator.simulator import DEFAULT_API_KEY_SECRET, DEFAULT_API_KEY_SID
from orchestrator.simulator.cli_args import add_arguments, serve_from_args, settings_from_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_build_settings() -> None:
    """Flags map onto SimulatorSettings and FaultSettings."""
    args = _parse(
        "--seed", "3",
        "--speed", "100",
        "--clock-start", "2024-03-10T00:00:00",
        "--rate-limit-fraction", "0.25",
        "--retry-after", "none",
        "--stuck-first-jobs", "2",
        "--fail-first-attempt-day", "Calls:2024-03-01",
        "--daily-day-quota", "366",
        "--day-seconds", "1,2",
        "--api-key", "SK" + "5" * 32 + ":s3cret",
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.seed == 3
    assert isinstance(settings.clock, ScaledClock) and settings.clock.speed == 100
    assert settings.clock.start == dt.datetime(2024, 3, 10, tzinfo=dt.UTC)
    assert settings.faults.rate_limit_fraction == 0.25
    assert settings.faults.retry_after_seconds is None
    assert settings.faults.stuck_first_jobs == 2
    assert settings.faults.fail_first_attempt_days == {(ResourceType.CALLS, dt.date(2024, 3, 1))}
    assert settings.faults.daily_day_quota == 366
    assert settings.day_seconds == (1.0, 2.0)
    assert settings.api_keys["SK" + "5" * 32] == "s3cret"
    assert settings.api_keys[DEFAULT_API_KEY_SID] == DEFAULT_API_KEY_SECRET


def test_defaults_use_the_wall_clock() -> None:
    """Without --speed or --clock-start the simulator runs on the system clock."""
    assert isinstance(settings_from_args(_parse()).clock, SystemClock)


def test_bad_flag_values_are_refused() -> None:
    """A fraction above 1 or a malformed day is an argparse error."""
    with pytest.raises(SystemExit):
        _parse("--drop-fraction", "2")
    with pytest.raises(SystemExit):
        _parse("--always-fail-day", "Messages:2024-02-30")


async def test_serve_from_args_prints_url_and_serves_until_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """serve_from_args prints where it listens and answers until its task is cancelled."""
    task = asyncio.create_task(serve_from_args(_parse("--port", "0")))
    out = ""
    for _ in range(100):
        await asyncio.sleep(0.01)
        out += capsys.readouterr().out
        if "listening on" in out:
            break
    base_url = out.split("listening on ")[1].split()[0]
    assert "simulator-auth-token" in out
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/_simulator/stats") as resp:
        assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_every_flag_has_a_help_text_that_names_its_default() -> None:
    """`orchestrator simulator --help` explains every flag and shows its default."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = [action for action in parser._actions if action.dest != "help"]
    assert len(flags) >= 30
    undocumented = [
        action.option_strings[0]
        for action in flags
        if not action.help or "(default: " not in action.help or action.metavar is None
    ]
    assert undocumented == []
    text = parser.format_help()
    for action in flags:
        assert action.option_strings[0] in text
    assert "(default: 8765)" in text and "(default: unlimited)" in text
