"""Start-up of operator commands: CPU of ``orchestrator --help`` and ``orchestrator status``
against a bare ``python -c pass``, side by side in one run.

Each command runs several times as a child process, interleaved (bare, help, status, bare, ...),
so a busy machine slows all three alike; the CPU of each child (user + system) comes from
``os.wait4``. The median of the runs is reported, and its ratio to the bare interpreter's.
``status`` reads a small SQLite database prepared beforehand (migrated, a month of wanted days),
as an operator's would be. Targets: ``--help`` within 6x a bare start, ``status`` within 12x.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HELP_TARGET = 6.0
STATUS_TARGET = 12.0
ACCOUNT = "AC" + "5" * 32
TOKEN_ENV = "BENCH_STARTUP_TOKEN"


def child_cpu_seconds(argv: list[str], *, env: dict[str, str] | None = None) -> float:
    """User + system CPU seconds of one child process running ``argv`` (it must exit 0)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, close_fds=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    # wait4 reaped it: tell Popen, so it does not wait again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


def write_config(directory: Path) -> Path:
    """A config with its state under ``directory`` (status never reads the secret)."""
    path = directory / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "{TOKEN_ENV}"

            [state]
            directory = "{directory / "state"}"

            [[exports]]
            name = "messages"
            resource_type = "Messages"
            last_days = 30
            """
        )
    )
    return path


async def prepare_database(config: Path) -> None:
    """Migrate the config's database and record its wanted days (a small, used database)."""
    from orchestrator.config import load_config_file
    from orchestrator.domain.model import DayKey, ResourceType
    from orchestrator.store.open import open_store

    file = load_config_file(config)
    now = dt.datetime.now(dt.UTC)
    keys = [DayKey(ResourceType.MESSAGES, now.date() - dt.timedelta(days=n)) for n in range(2, 32)]
    async with open_store(
        file.state.database_url.get_secret_value(), file.twilio.account_sid, migrate=True
    ) as store:
        await store.upsert_wanted_days(keys, now)


def run(runs: int = 7) -> dict[str, Any]:
    """Median child CPU of each command over ``runs`` interleaved runs, and the ratios."""
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="orch-startup-") as tmp:
        config = write_config(Path(tmp))
        asyncio.run(prepare_database(config))
        # Without PYTHONDONTWRITEBYTECODE (set on some CI machines): an installed package has
        # its bytecode compiled, and a start that compiles every module measures the compiler.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ORCHESTRATOR_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        commands = {
            "bare": [python, "-c", "pass"],
            "help": [python, "-m", "orchestrator", "--help"],
            "status": [python, "-m", "orchestrator", "status", "--config", str(config)],
        }
        # One unmeasured run each: the first run pays for writing bytecode caches.
        for argv in commands.values():
            child_cpu_seconds(argv, env=env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(child_cpu_seconds(argv, env=env))
    median = {name: statistics.median(values) for name, values in samples.items()}
    bare = median["bare"]
    help_ratio = median["help"] / bare if bare > 0 else float("nan")
    status_ratio = median["status"] / bare if bare > 0 else float("nan")
    return {
        "runs": runs,
        "bare_cpu_s": bare,
        "help_cpu_s": median["help"],
        "status_cpu_s": median["status"],
        "help_ratio": help_ratio,
        "status_ratio": status_ratio,
        "help_target": HELP_TARGET,
        "status_target": STATUS_TARGET,
        "help_target_met": help_ratio <= HELP_TARGET,
        "status_target_met": status_ratio <= STATUS_TARGET,
        "samples": samples,
    }


if __name__ == "__main__":
    figures = run()
    for name in ("bare", "help", "status"):
        print(f"{name:7s} {figures[f'{name}_cpu_s']:.3f} CPU s")
    print(f"help/bare {figures['help_ratio']:.1f}x, status/bare {figures['status_ratio']:.1f}x")
