"""structlog set-up: JSON lines off a TTY (for journald), console on a TTY, secret redaction.

Every log call is an event with a stable dotted name and key-values, e.g.
``log.info("job.submitted", resource_type="Messages", job_sid="JS...", days=31)``.

Under systemd each JSON line starts with its sd-daemon(3) priority (``<3>{"event": ...}``):
journald (``SyslogLevelPrefix=yes``, the default, set explicitly in the unit) stores the line at
that PRIORITY= and strips the prefix, so ``journalctl -p warning`` filters by level and
``journalctl -o cat | jq`` still sees bare JSON. The "journal" format is chosen when the config
says so, or for "auto" when ``$JOURNAL_STREAM`` names the very stream we write to (see
``choose_format``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal, TextIO

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


LogFormat = Literal["json", "console", "journal"]
# What [logging] format may say (config.py's LoggingSettings.format).
ConfiguredFormat = Literal["auto", "json", "console", "journal"]

# sd-daemon(3) prefixes (SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG) by structlog level name,
# as Python's SysLogHandler maps them; structlog's add_log_level already turned "exception" into
# "error" and "warn" into "warning". Any other level is stored as info.
SD_PRIORITIES = {"critical": "<2>", "error": "<3>", "warning": "<4>", "info": "<6>", "debug": "<7>"}
_DEFAULT_PRIORITY = SD_PRIORITIES["info"]


def choose_format(
    configured: ConfiguredFormat,
    environ: Mapping[str, str],
    *,
    isatty: bool,
    stream_id: tuple[int, int] | None,
) -> LogFormat:
    """What ``[logging] format`` means for a stream; pure (the caller looks at the stream).

    "json", "console" and "journal" are taken as they are. "auto" is "console" on a terminal;
    otherwise "journal" when ``$JOURNAL_STREAM`` ("<device>:<inode>", set by systemd when
    stdout/stderr is connected to the journal) equals ``stream_id``, the (st_dev, st_ino) of the
    stream we write to, else "json". Comparing, not merely testing that the variable is set, is
    what systemd.exec(5) asks for: the variable is inherited by anything a service starts (a
    terminal emulator run as a user service passes it to every shell), whose output may well go
    to a pipe or a file instead.
    """
    if configured != "auto":
        return configured
    if isatty:
        return "console"
    if stream_id is not None and _journal_stream(environ.get("JOURNAL_STREAM")) == stream_id:
        return "journal"
    return "json"


def _journal_stream(value: str | None) -> tuple[int, int] | None:
    device, sep, inode = (value or "").partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return None
    return int(device), int(inode)


def stream_identity(stream: TextIO) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file behind ``stream``, or None when it has none (StringIO)."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both; a closed stream: ValueError
        return None
    return st.st_dev, st.st_ino


def detect_format(
    configured: ConfiguredFormat, environ: Mapping[str, str], stream: TextIO | None = None
) -> LogFormat:
    """``choose_format`` for ``stream`` (default stdout), looking at the stream itself."""
    out = stream if stream is not None else sys.stdout
    return choose_format(configured, environ, isatty=out.isatty(), stream_id=stream_identity(out))


class JournalRenderer:
    """JSON lines, each prefixed with its sd-daemon priority for journald to store and strip."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer()

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        prefix = SD_PRIORITIES.get(str(event_dict.get("level", "")), _DEFAULT_PRIORITY)
        line = self._json(logger, method_name, event_dict)
        return prefix + (line.decode() if isinstance(line, bytes) else line)


def configure_logging(
    *,
    redactor: SecretRedactor,
    level: str = "info",
    json: bool | None = None,
    journal: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the process. ``json=None`` picks JSON unless ``stream`` is a TTY;
    ``journal=True`` means JSON lines with sd-daemon priority prefixes (whatever ``json`` says)."""
    out = stream if stream is not None else sys.stdout
    if journal:
        json = True
    elif json is None:
        json = not out.isatty()
    renderer: Any = (
        JournalRenderer()
        if journal
        else structlog.processors.JSONRenderer()
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


# ---------------------------------------------------------------------------------- crashes


def _traceback_of(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def log_unexpected(event: str, exc: BaseException, **fields: Any) -> None:
    """One critical event for an exception nobody expected: ``error`` (type and message) and the
    whole ``traceback`` as one string field, so the stream stays one JSON object per line (the
    redactor scrubs both, like any value)."""
    get_logger("orchestrator").critical(
        event, error=f"{type(exc).__name__}: {exc}", traceback=_traceback_of(exc), **fields
    )


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An asyncio exception handler (``loop.set_exception_handler``) that logs through structlog:
    ``asyncio.unhandled_exception`` with asyncio's message, the task or future when named, and
    the traceback as a field, instead of asyncio's plain-text report on stderr."""
    fields: dict[str, Any] = {"message": str(context.get("message", ""))}
    for key in ("task", "future", "handle"):
        if context.get(key) is not None:
            fields[key] = repr(context[key])[:300]
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        fields["error"] = f"{type(exc).__name__}: {exc}"
        fields["traceback"] = _traceback_of(exc)
    get_logger("orchestrator").error("asyncio.unhandled_exception", **fields)
