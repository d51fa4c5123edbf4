"""``check-config --connect``: what the configuration points at answers, before ``run`` needs it.

``CONNECT_CHECKS`` is a list of named async checks, run in order by ``run_checks``. Each takes
the loaded ``Settings``, reads only (nothing is created, migrated or written), and returns a
short note for the ``NAME: OK (note)`` line, or raises ``CheckFailed`` carrying the exit code:

- ``EX_UNAVAILABLE`` (69): the database or the API did not answer, or answered unusably;
- ``EX_NOPERM`` (77): Twilio rejected the credentials.

Another check (an archive destination, say) is one more entry in ``CONNECT_CHECKS``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from orchestrator.errors import AuthenticationError, OrchestratorError

if TYPE_CHECKING:
    from orchestrator.config import Settings

EX_UNAVAILABLE = 69
EX_NOPERM = 77
# The probe's own bounds: an operator waits for the answer, so fail fast rather than retry long.
PROBE_ATTEMPTS = 2
PROBE_SECONDS = 30.0


class CheckFailed(OrchestratorError):
    """A ``--connect`` check failed; ``exit_code`` says how (69 unreachable, 77 rejected)."""

    def __init__(self, name: str, message: str, *, exit_code: int = EX_UNAVAILABLE) -> None:
        self.name = name
        self.exit_code = exit_code
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True, slots=True)
class ConnectCheck:
    """One named check: ``run(settings)`` returns the note of its OK line or raises."""

    name: str
    run: Callable[[Settings], Awaitable[str]]


async def check_database(settings: Settings) -> str:
    """The database answers a read (nothing created or migrated); its schema revision."""
    from orchestrator.store.open import SCHEMA_HEAD, probe_url

    try:
        probe = await probe_url(settings.state.database_url.get_secret_value())
    except OrchestratorError as exc:
        raise CheckFailed("database", str(exc)) from None
    if not probe.exists:
        return f"{probe.where} does not exist yet; run creates it"
    if probe.revision is None:
        return f"{probe.where} answers; no schema yet, run creates it"
    if probe.revision != SCHEMA_HEAD:
        return f"{probe.where} answers; schema {probe.revision}, run migrates it to {SCHEMA_HEAD}"
    return f"{probe.where} answers; schema {probe.revision}"


async def check_twilio(settings: Settings) -> str:
    """One authenticated read of the Bulk Exports API: a one-job page of the Jobs list."""
    from orchestrator.twilio import BulkExportsClient, new_http_session
    from orchestrator.wiring import client_settings

    knobs = dataclasses.replace(
        client_settings(settings),
        max_attempts=PROBE_ATTEMPTS,
        retry_timeout=min(PROBE_SECONDS, client_settings(settings).retry_timeout),
    )
    shown = f"{settings.credentials.method} of {settings.twilio.account_sid}"
    try:
        async with new_http_session(knobs) as session:
            client = BulkExportsClient(settings.credentials, session=session, settings=knobs)
            await client.probe()
    except AuthenticationError as exc:
        raise CheckFailed(
            "twilio",
            f"{settings.twilio.base_url} rejected the {shown}: {exc}",
            exit_code=EX_NOPERM,
        ) from None
    except OrchestratorError as exc:
        raise CheckFailed("twilio", f"{settings.twilio.base_url}: {exc}") from None
    return f"{settings.twilio.base_url} accepted the {shown}"


async def check_archive(settings: Settings) -> str:
    """An object-storage archive takes a probe object: written, read back and removed."""
    archive = settings.archive
    if archive is None:
        return "off"
    if archive.url is None:
        # A local directory was checked at load (writable, or creatable by this user).
        return f"{archive.directory} (a local directory, checked at load)"
    from orchestrator.archive.target import probe
    from orchestrator.wiring import archive_target

    try:
        result = await probe(archive_target(archive, source=settings.source))
    except OrchestratorError as exc:
        raise CheckFailed("archive", str(exc)) from None
    return f"{result.url} took a probe object ({result.key}): written, read back, removed"


CONNECT_CHECKS: tuple[ConnectCheck, ...] = (
    ConnectCheck("database", check_database),
    ConnectCheck("twilio", check_twilio),
    ConnectCheck("archive", check_archive),
)


async def run_checks(
    settings: Settings, out: TextIO, err: TextIO, checks: Sequence[ConnectCheck] = CONNECT_CHECKS
) -> int:
    """Run every check in order: ``NAME: OK (note)`` on ``out`` for each that passes, one
    ``orchestrator: check-config --connect: NAME: why`` line on ``err`` for each that fails.
    Returns 0, or the exit code of the first failure."""
    code = 0
    for check in checks:
        try:
            note = await asyncio.wait_for(check.run(settings), timeout=PROBE_SECONDS * 2)
        except TimeoutError:
            failure = CheckFailed(check.name, f"no answer within {PROBE_SECONDS * 2:g} s")
        except CheckFailed as exc:
            failure = exc
        else:
            print(f"{check.name}: OK ({note})", file=out)
            continue
        print(f"orchestrator: check-config --connect: {failure}", file=err)
        code = code or failure.exit_code
    return code
