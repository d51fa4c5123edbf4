"""Operator commands import only what they use: cheap start-up (bench/startup_bench.py measures)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from orchestrator.cli import build_parser

HEAVY = ("pydantic", "sqlalchemy", "alembic", "aiohttp", "structlog", "orchestrator.simulator")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY modules loaded once ``code`` ran in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import sys
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return eval(done.stdout.strip().splitlines()[-1])


def test_help_loads_no_heavy_library() -> None:
    """Building the parser and printing the help loads no pydantic, SQLAlchemy, aiohttp or
    simulator."""
    loaded = _loaded_after(
        """
        from orchestrator.cli import build_parser
        build_parser().format_help()
        """
    )
    assert loaded == []


def test_simulator_options_arrive_when_that_command_is_parsed() -> None:
    """The simulator's options are there when the simulator command is parsed."""
    args = build_parser().parse_args(["simulator", "--port", "0", "--seed", "3"])
    assert (args.command, args.simulator_port, args.simulator_seed) == ("simulator", 0, 3)


def test_simulator_help_lists_its_options() -> None:
    """``orchestrator simulator --help`` shows the simulator's own flags."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert "--max-running-jobs" in done.stdout and "--port" in done.stdout
