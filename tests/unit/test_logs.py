"""Log set-up: JSON lines with stable event names, and secrets never printed."""

from __future__ import annotations

import io
import json

import structlog

from orchestrator.logs import REDACTED, SecretRedactor, configure_logging, get_logger

TOKEN = "tok_9f8e7d6c5b4a"


def test_redactor_scrubs_values_nested_and_in_exceptions() -> None:
    """Every occurrence of a secret becomes [REDACTED], however deep."""
    redactor = SecretRedactor([TOKEN])
    event = redactor(
        None,
        "info",
        {
            "event": "x.y",
            "url": f"https://u:{TOKEN}@host/",
            "nested": {"list": [TOKEN, 3, None]},
            "error": ValueError(f"bad {TOKEN}"),
        },
    )
    assert TOKEN not in repr(event)
    assert event["url"] == f"https://u:{REDACTED}@host/"
    assert event["nested"]["list"] == [REDACTED, 3, None]


def test_redactor_drops_secret_keys_and_swaps_secrets_on_replace() -> None:
    """Values under secret-named keys are dropped; replace() swaps the known secrets."""
    redactor = SecretRedactor(["old-secret-1"])
    assert redactor(None, "info", {"auth_token": "anything"})["auth_token"] == REDACTED
    redactor.replace(["new-secret-2"])
    assert redactor(None, "info", {"a": "old-secret-1 new-secret-2"})["a"] == (
        f"old-secret-1 {REDACTED}"
    )
    assert "new-secret-2" not in repr(redactor)


def test_json_lines_carry_event_name_and_no_secret() -> None:
    """Off a TTY each event is one JSON line with its dotted name; the token never appears."""
    out = io.StringIO()
    configure_logging(redactor=SecretRedactor([TOKEN]), stream=out)
    try:
        log = get_logger("test")
        log.info("job.submitted", job_sid="JS1", note=f"token={TOKEN}")
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("job.failed")
        log.debug("hidden.by_level")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["job.submitted", "job.failed"]
    assert lines[0]["job_sid"] == "JS1" and lines[0]["level"] == "info"
    assert "RuntimeError" in lines[1]["exception"]
