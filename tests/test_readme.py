"""The README's Quickstart is what CI runs, and its commands name things that exist."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def _quickstart_commands() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_quickstart_has_two_one_line_commands() -> None:
    """Exactly two commands: one sets up and runs the demo, one sets up and runs the tests."""
    demo, tests = _quickstart_commands()
    assert demo.startswith("python3 -m venv .venv && ") and demo.endswith("orchestrator demo")
    assert tests.startswith("python3 -m venv .venv && ") and tests.endswith("pytest -q")


def test_ci_runs_the_readme_test_command_literally() -> None:
    """.ci/run contains the README's test command verbatim, and runs the demo."""
    _, tests = _quickstart_commands()
    assert any(line.startswith(tests) for line in CI.splitlines())
    assert ".venv/bin/orchestrator demo" in CI
    assert "ORCHESTRATOR_TEST_POSTGRES_URL" in CI


def test_readme_commands_exist() -> None:
    """Every `orchestrator <command>` the README shows is a real subcommand."""
    parser = build_parser()
    subparsers = next(
        a
        for a in parser._actions
        if a.dest == "command"  # argparse has no public accessor
    )
    known = set(getattr(subparsers, "choices", {}) or {})
    # Invocations: `orchestrator X`, $ orchestrator X, .../bin/orchestrator X.
    used = set(re.findall(r"(?:`|\$ |bin/)orchestrator ([a-z][a-z-]+)", README))
    assert {"demo", "status", "history", "retry", "migrate", "check-config"} <= used
    assert used <= known, used - known


def test_readme_keeps_its_sections() -> None:
    """Ops rely on these headings (and bench fills in the Benchmarks one)."""
    for heading in (
        "## Quickstart",
        "## Configuration",
        "## Running it under systemd",
        "## Operating it",
        "## Where state and archives live",
        "## Upgrading",
        "## PostgreSQL for several instances",
        "## Troubleshooting the Twilio errors you will meet",
        "## Benchmarks",
    ):
        assert heading in README
