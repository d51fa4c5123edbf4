"""The operator commands at their edges: no database is never an empty one, retry selects in
SQL, check-config --connect, and asyncio's own error reports as JSON log lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import io
import json
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.cli import EX_NOPERM, EX_OK, EX_UNAVAILABLE, _logging_loop_errors, main
from orchestrator.clock import ManualClock
from orchestrator.logs import SecretRedactor, configure_logging, loop_exception_handler
from orchestrator.simulator import SimulatorSettings, running_simulator
from tests.integration.test_cli import config_path, seed  # noqa: F401

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

NO_DB = "has the daemon run with this config?"


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["history", "Messages", "2026-01-01"],
        ["retry", "--day", "2026-01-01"],
        ["retry", "--from", "0001-01-01", "--to", "9999-12-31"],
        ["verify-archive"],
    ],
)
def test_read_commands_never_create_a_database(
    config_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """On a config whose database does not exist: one line saying so, exit 69, nothing made."""
    code = main([command[0], "--config", str(config_path), *command[1:]])

    out, err = capsys.readouterr()
    database = config_path.parent / "state" / "orchestrator.sqlite"
    assert code == EX_UNAVAILABLE
    assert out == ""
    assert err == f"orchestrator: no database at {database}: {NO_DB}\n"
    assert not (config_path.parent / "state").exists()


def test_an_unreachable_postgresql_is_one_line_and_69(
    config_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """status on a PostgreSQL URL nobody answers: one line naming it (password hidden), 69."""
    url = "postgresql+asyncpg://orch:s3cret-pw@127.0.0.1:9/orchestrator"
    text = config_path.read_text().replace("[state]\n", f'[state]\ndatabase_url = "{url}"\n')
    config_path.write_text(text)

    code = main(["status", "--config", str(config_path)])

    err = capsys.readouterr().err
    assert code == EX_UNAVAILABLE
    assert len(err.splitlines()) == 1, err
    assert "127.0.0.1:9/orchestrator" in err and "s3cret-pw" not in err


def test_retry_over_all_of_time_is_one_sql_range_and_says_why_nothing_returned(
    config_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """retry --from 0001-01-01 --to 9999-12-31 returns the GaveUp day at once; run again, it
    says what the selected days are instead."""
    seed(config_path, capsys)
    argv = ["retry", "--config", str(config_path), "--from", "0001-01-01", "--to", "9999-12-31"]

    started = time.monotonic()
    assert main(argv) == EX_OK
    elapsed = time.monotonic() - started

    assert capsys.readouterr().out == (
        "Messages 2026-01-02: Pending\n1 day(s) returned to Pending\n"
    )
    # Generous for a busy machine; enumerating the calendar took minutes and gigabytes.
    assert elapsed < 20, elapsed
    assert main(argv) == EX_OK
    assert capsys.readouterr().out == (
        "0 day(s) returned to Pending: 2 Pending, 1 Completed, none GaveUp\n"
    )
    assert main([*argv[:3], "--from", "2020-01-01", "--to", "2020-12-31"]) == EX_OK
    assert capsys.readouterr().out == (
        "0 day(s) returned to Pending: no stored day in the selection\n"
    )


def test_loop_exception_handler_logs_one_json_line() -> None:
    """asyncio's report of an exception nobody retrieved becomes one JSON event with the
    traceback as a field, through the handler the CLI installs on its loop."""
    stream = io.StringIO()
    configure_logging(redactor=SecretRedactor(), json=True, stream=stream)

    async def fails() -> None:
        raise ValueError("nobody awaited me")

    async def command() -> int:
        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task.done()
        del task
        gc.collect()
        return 0

    assert asyncio.run(_logging_loop_errors(command())) == 0

    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "asyncio.unhandled_exception"
    assert record["level"] == "error"
    assert "ValueError: nobody awaited me" in record["traceback"]
    assert "never retrieved" in record["message"]


def test_loop_exception_handler_without_an_exception() -> None:
    """A report with only a message (no exception) is still one JSON event."""
    stream = io.StringIO()
    configure_logging(redactor=SecretRedactor(), json=True, stream=stream)
    loop = asyncio.new_event_loop()
    try:
        loop_exception_handler(loop, {"message": "something odd"})
    finally:
        loop.close()
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "something odd"


# --------------------------------------------------------------------- check-config --connect

ACCOUNT = "AC" + "2" * 32
TOKEN = "connect-test-token-5c1e"


def _connect_config(tmp_path: Path, base_url: str, database_url: str | None = None) -> Path:
    state = tmp_path / "state"
    lines = f'database_url = "{database_url}"' if database_url else ""
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "CONNECT_TEST_TOKEN"
            base_url = "{base_url}"
            request_timeout = "5s"

            [state]
            directory = "{state}"
            {lines}

            [[exports]]
            name = "messages"
            resource_type = "Messages"
            last_days = 3
            """
        )
    )
    return path


async def _check(path: Path, token: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["CONNECT_TEST_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "check-config",
        "--connect",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    settings = SimulatorSettings(
        account_sid=ACCOUNT, auth_token=TOKEN, seed=1, clock=ManualClock(START)
    )
    async with running_simulator(settings) as running:
        yield running.base_url


async def test_connect_ok_checks_the_database_and_twilio_and_creates_nothing(
    tmp_path: Path, sim_url: str
) -> None:
    """Both checks pass: an OK line for each after the plan; no database file was made."""
    code, out, err = await _check(_connect_config(tmp_path, sim_url), TOKEN)
    assert (code, err) == (EX_OK, "")
    lines = out.splitlines()
    assert lines[0].endswith(": OK")
    database = tmp_path / "state" / "orchestrator.sqlite"
    assert f"database: OK ({database} does not exist yet; run creates it)" in lines
    assert f"twilio: OK ({sim_url} accepted the auth_token of {ACCOUNT})" in lines
    assert not (tmp_path / "state").exists()


async def test_connect_with_a_wrong_token_exits_77_with_one_line(
    tmp_path: Path, sim_url: str
) -> None:
    """Twilio rejects the credentials: one stderr line naming the twilio check, exit 77."""
    code, out, err = await _check(_connect_config(tmp_path, sim_url), "wrong-token-000000")
    assert code == EX_NOPERM
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("orchestrator: check-config --connect: twilio: ")
    assert "rejected" in line and "wrong-token-000000" not in line


async def test_connect_to_nothing_exits_69_with_one_line_per_failed_check(
    tmp_path: Path,
) -> None:
    """An API and a database nobody answers: one line each, naming them, exit 69."""
    url = "postgresql+asyncpg://orch:pw-never-shown@127.0.0.1:9/orchestrator"
    code, out, err = await _check(_connect_config(tmp_path, "http://127.0.0.1:9", url), TOKEN)
    assert code == EX_UNAVAILABLE
    assert out == ""
    database, twilio = err.splitlines()
    assert database.startswith("orchestrator: check-config --connect: database: ")
    assert "127.0.0.1:9/orchestrator" in database and "pw-never-shown" not in database
    assert twilio.startswith("orchestrator: check-config --connect: twilio: ")


def test_a_database_newer_than_this_version_is_one_line(
    config_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database migrated by a newer version: one line saying so (not an Alembic traceback)."""
    import sqlite3

    assert main(["migrate", "--config", str(config_path)]) == EX_OK
    database = config_path.parent / "state" / "orchestrator.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    capsys.readouterr()

    assert main(["status", "--config", str(config_path)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("orchestrator: the database is at schema 9999, newer than this")
    assert len(err.splitlines()) == 1
