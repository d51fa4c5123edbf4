"""structlog set-up: JSON lines off a TTY (for journald), console on a TTY, secret redaction.

Every log call is an event with a stable dotted name and key-values, e.g.
``log.info("job.submitted", resource_type="Messages", job_sid="JS...", days=31)``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
# Values under these keys are never logged, whatever they hold.
_SECRET_KEYS = frozenset({"auth_token", "api_key_secret", "password", "secret", "authorization"})
# Secrets shorter than this are not substring-replaced (they would mangle ordinary words).
_MIN_SECRET_LENGTH = 6


class SecretRedactor:
    """A structlog processor that removes known secrets from every value of every event.

    It holds the secrets currently in use; ``replace`` swaps them on config reload.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.replace(secrets)

    def replace(self, secrets: Iterable[str]) -> None:
        kept = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first so a secret that contains another is removed whole.
        self._secrets = tuple(sorted(kept, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, BaseException):
            return self.redact(repr(value))
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact(str(value))

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key.lower() in _SECRET_KEYS:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict

    def __repr__(self) -> str:
        return f"SecretRedactor(<{len(self._secrets)} secrets>)"


def _redact_rendered(redactor: SecretRedactor) -> Any:
    # Formatted exceptions are rendered into text by format_exc_info; scrub the final string
    # too, so a secret inside a traceback frame's repr cannot slip through.
    def processor(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        for key in ("exception", "stack"):
            if isinstance(event_dict.get(key), str):
                event_dict[key] = redactor.redact(event_dict[key])
        return event_dict

    return processor


def configure_logging(
    *,
    redactor: SecretRedactor,
    level: str = "info",
    json: bool | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process. ``json=None`` picks JSON unless ``stream`` is a TTY."""
    out = stream if stream is not None else sys.stdout
    if json is None:
        json = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        redactor,
    ]
    if json:
        processors += [structlog.processors.format_exc_info, _redact_rendered(redactor)]
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to ``module=name``; events carry their own dotted names.

    Binding is lazy: the logger follows whatever ``configure_logging`` set, even if it was
    created at import time before that.
    """
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(module=name)
    return logger
