"""The shipped Prometheus alert rules: valid (`promtool check rules`) and doing what their unit
tests say (`promtool test rules`). Without promtool they skip, unless
ORCHESTRATOR_REQUIRE_PROMTOOL=1 (set by .ci/run), which turns a missing promtool into a failure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "orchestrator-alerts.yml"
RULE_TESTS = RULES_DIR / "orchestrator-alerts.test.yml"
# Every alert the rules file promises (issue 13), each of which the unit tests must exercise.
ALERTS = {
    "OrchestratorDayFilesExpiringSoon",
    "OrchestratorDayFilesAboutToBeLost",
    "OrchestratorPollStalled",
    "OrchestratorArchiveStalled",
    "OrchestratorTwilioCredentialsRejected",
    "OrchestratorDown",
    "OrchestratorQuotaExhausted",
}


@pytest.fixture
def promtool() -> str:
    """promtool's path; skip without it, or fail when ORCHESTRATOR_REQUIRE_PROMTOOL=1."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("ORCHESTRATOR_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool not on PATH and ORCHESTRATOR_REQUIRE_PROMTOOL=1")
        pytest.skip("promtool not on PATH (Debian: apt-get install prometheus)")
    return found


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args],
        capture_output=True,
        text=True,
        cwd=RULES_DIR,
        timeout=120,
        check=False,
    )


def test_promtool_check_rules(promtool: str) -> None:
    """`promtool check rules` accepts the file and finds every promised alert in it."""
    result = _run(promtool, "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout + result.stderr
    assert set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE)) == ALERTS


def test_promtool_test_rules(promtool: str) -> None:
    """`promtool test rules` passes, and the tests show every alert both firing and silent."""
    result = _run(promtool, "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    text = RULE_TESTS.read_text()
    # Each alert_rule_test entry: "alertname: X" then either "exp_alerts: []" or a list.
    entries = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", text)
    firing = {name for name, empty in entries if not empty}
    silent = {name for name, empty in entries if empty}
    assert firing == ALERTS
    assert silent == ALERTS


def test_rules_name_only_metrics_of_issue_13() -> None:
    """Every metric the rules read is one the daemon is specified to export (or Prometheus's up)."""
    known = {
        "up",
        "orchestrator_day_file_expiry_seconds",
        "orchestrator_days_at_risk",
        "orchestrator_pass_last_success_timestamp_seconds",
        "orchestrator_jobs",
        "orchestrator_twilio_credentials_ok",
        "orchestrator_quota_days_used",
        "orchestrator_quota_days_budget",
    }
    exprs = re.findall(r"expr: (?:\|\n)?((?:.+\n)+?)\s+for:", RULES.read_text())
    assert len(exprs) == len(ALERTS)
    used = {m for expr in exprs for m in re.findall(r"\b(orchestrator_\w+|up)\b", expr)}
    assert used == known
