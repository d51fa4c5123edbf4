"""The one place that builds the store, the client, the policies and the table of passes.

- ``open_settings_store(settings, migrate=...)``: the store of a configuration
  (``store.open.open_store`` over its database URL and account);
- ``client_settings`` / ``make_client``: the one client factory (the daemon builds a client at
  start-up and at every reload, over the process's one HTTP session);
- ``archive_target``: the one place an archive target is built from [archive] (a local
  directory or an obstore bucket); ``workflow_context`` puts it in the context;
- ``workflow_context``: what every workflow is given, from the settings (their ``policies``,
  built once at load, plus the job name prefix, the exports and where archived files go);
- ``PASSES``: the table of passes, in the order ``run_cycle`` runs them, each with its cadence
  (derived from the settings) and its first run. The daemon's Ticker, ``run_cycle`` and the
  benchmarks' burst harness all read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from orchestrator.archive.layout import ArchiveDestination, parse_archive_url
from orchestrator.archive.local import LocalTarget
from orchestrator.archive.target import ArchiveTarget
from orchestrator.clock import Clock
from orchestrator.config import ArchiveSettings, Settings, redaction_secrets
from orchestrator.errors import ConfigError, InvalidInput
from orchestrator.store.open import WaitForDatabase, open_store
from orchestrator.store.repository import Store
from orchestrator.twilio import BulkExportsClient, ClientSettings, new_http_session
from orchestrator.twilio.client import RequestObserver
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.cleanup import clean_up
from orchestrator.workflows.context import ApiHealth, WorkflowContext
from orchestrator.workflows.poll import poll_due_jobs
from orchestrator.workflows.submit import adopt_submitting_jobs, submit_planned_jobs
from orchestrator.workflows.wanted import record_wanted_days

# Simulated-time cadence of the passes that are not driven by a stored due time.
WANTED_EVERY = dt.timedelta(hours=1)
SUBMIT_EVERY = dt.timedelta(minutes=1)
ARCHIVE_EVERY = dt.timedelta(minutes=1)
# Real-time bound on the poll pass's interval: never sleep through a due poll for long.
MAX_POLL_REAL_INTERVAL = 15.0

Workflow = Callable[[WorkflowContext], Awaitable[object]]


# ---------------------------------------------------------------------------------- store


@contextlib.asynccontextmanager
async def open_settings_store(
    settings: Settings, *, migrate: bool, wait: WaitForDatabase | None = None
) -> AsyncIterator[Store]:
    """The store of ``settings`` (its database, its account), closed after.

    ``wait``: wait for a database that cannot be reached yet (``store.open``).
    """
    async with open_store(
        settings.state.database_url.get_secret_value(),
        settings.twilio.account_sid,
        migrate=migrate,
        wait=wait,
    ) as store:
        yield store


# --------------------------------------------------------------------------------- client


def client_settings(settings: Settings) -> ClientSettings:
    """The client's knobs from the [twilio] and [archive] sections."""
    return ClientSettings(
        base_url=settings.twilio.base_url,
        requests_per_second=settings.twilio.requests_per_second,
        max_concurrent_requests=settings.twilio.max_concurrent_requests,
        request_timeout=settings.twilio.request_timeout.total_seconds(),
        download_read_timeout=(
            settings.archive.download_read_timeout.total_seconds() if settings.archive else 60.0
        ),
        max_concurrent_downloads=(
            settings.archive.max_concurrent_downloads if settings.archive else 2
        ),
    )


def make_client(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    clock: Clock,
    observer: RequestObserver | None = None,
    gate: Callable[[], None] | None = None,
) -> BulkExportsClient:
    """A client for ``settings``' account over the process's ``session``; ``observer`` (the
    daemon's metrics) is told of every request attempt; ``gate`` (the daemon's leadership
    check) may stop any request from leaving."""
    return BulkExportsClient(
        settings.credentials,
        session=session,
        settings=client_settings(settings),
        clock=clock,
        observer=observer,
        gate=gate,
    )


# Secrets of the clouds' standard credential chains that obstore reads from the environment.
CLOUD_SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
)


def all_secrets(settings: Settings) -> list[str]:
    """Every form a secret may take in a log line (the raw value and its Basic encoding)."""
    found = [*redaction_secrets(settings), *settings.credentials.secret_values()]
    if settings.archive is not None and settings.archive.url is not None:
        found += settings.archive.secrets()
        found += [v for name in CLOUD_SECRET_VARIABLES if (v := os.environ.get(name, "").strip())]
    return found


# -------------------------------------------------------------------------------- archive


def archive_target(archive: ArchiveSettings, *, source: str = "") -> ArchiveTarget:
    """Where [archive] keeps day files: a local directory, or a bucket through obstore.

    ``ConfigError`` (naming ``archive.url``) when obstore refuses the options; nothing is
    sent over the network here (``archive.target.probe`` does that).
    """
    if archive.url is None:
        assert archive.directory is not None  # ArchiveSettings checked one of the two is given
        return LocalTarget(archive.directory)
    # Imported here: obstore loads only for an object-storage archive.
    from orchestrator.archive.object import ObjectStoreConfig, ObjectTarget

    config = ObjectStoreConfig(
        url=parse_archive_url(archive.url),
        endpoint=archive.endpoint,
        region=archive.region,
        allow_http=archive.allow_http,
        options=archive.object_options(),
    )
    try:
        return ObjectTarget(config)
    except InvalidInput as error:
        raise ConfigError(
            str(error).removeprefix(f"{error.field}: "), source=source, key="archive.url"
        ) from None


def archive_destination(settings: Settings) -> ArchiveDestination | None:
    """The archive pass's destination, its target built; None when archiving is off."""
    destination = settings.archive_destination()
    if destination is None or settings.archive is None:
        return None
    return dataclasses.replace(
        destination, target=archive_target(settings.archive, source=settings.source)
    )


# -------------------------------------------------------------------------------- context


def workflow_context(
    settings: Settings,
    *,
    store: Store,
    client: BulkExportsClient,
    clock: Clock,
    health: ApiHealth,
    rand: Callable[[], float],
) -> WorkflowContext:
    """What the workflows are given for ``settings``: its policies, never the file's shape."""
    return WorkflowContext(
        store=store,
        client=client,
        clock=clock,
        policies=settings.policies,
        name_prefix=settings.jobs.name_prefix,
        exports=settings.export_specs(),
        archive=archive_destination(settings),
        health=health,
        random=rand,
    )


@contextlib.asynccontextmanager
async def open_workflow_context(
    settings: Settings, *, clock: Clock, rand: Callable[[], float]
) -> AsyncIterator[WorkflowContext]:
    """A context on its own: the store (migrated) and a client for ``settings``, closed after.

    For driving the passes outside ``orchestrator run`` (``run_cycle``: the end-to-end tests,
    the benchmarks). The daemon builds its own from the same parts, since a reload replaces
    the client.
    """
    async with (
        open_settings_store(settings, migrate=True) as store,
        new_http_session(client_settings(settings)) as session,
    ):
        client = make_client(settings, session=session, clock=clock)
        try:
            yield workflow_context(
                settings, store=store, client=client, clock=clock, health=ApiHealth(), rand=rand
            )
        finally:
            await client.aclose()


# --------------------------------------------------------------------------------- passes


async def submit_pass(ctx: WorkflowContext) -> object:
    """Adopt jobs whose create may have reached Twilio, then plan and submit new ones."""
    await adopt_submitting_jobs(ctx)
    return await submit_planned_jobs(ctx)


async def archive_pass(ctx: WorkflowContext) -> object:
    """Archive the due days' files under the context's retry policy (a no-op when off)."""
    return await archive_due_days(ctx, policy=ctx.policies.archive_retry)


async def orphan_pass(ctx: WorkflowContext) -> object:
    """Cleanup, also looking on Twilio for jobs of ours the store never recorded."""
    return await clean_up(ctx, sweep_orphans=True)


@dataclass(frozen=True, slots=True)
class PassSpec:
    """One pass of the daemon: what it runs and how often."""

    name: str
    run: Workflow
    # The interval in simulated time, from the settings.
    every: Callable[[Settings], dt.timedelta]
    # The first run comes after this share of the interval...
    first_in: float = 0.0
    # ... plus this many real seconds (the daemon's Ticker only; a burst has no real time).
    first_delay_seconds: float = 0.0
    # The interval in real seconds is at most this.
    max_real_interval: float | None = None
    # Part of ``run_cycle`` (the plain cleanup pass is not: the orphan sweep includes it).
    in_cycle: bool = True
    # Deletes jobs: the daemon never runs two such passes at once (they would delete one
    # finished job twice).
    deletes_jobs: bool = False


# In run_cycle's order. Archive runs before cleanup, so a job can be deleted in the same cycle
# its files are stored.
PASSES: tuple[PassSpec, ...] = (
    PassSpec("wanted", record_wanted_days, lambda s: WANTED_EVERY),
    PassSpec("submit", submit_pass, lambda s: SUBMIT_EVERY),
    PassSpec(
        "poll",
        poll_due_jobs,
        lambda s: s.poll_policy().initial / 2,
        first_in=0.5,
        max_real_interval=MAX_POLL_REAL_INTERVAL,
    ),
    # Always scheduled: a no-op without [archive], and a reload may turn archiving on.
    PassSpec("archive", archive_pass, lambda s: ARCHIVE_EVERY, first_delay_seconds=1.0),
    PassSpec("cleanup", clean_up, lambda s: s.cleanup.interval, in_cycle=False, deletes_jobs=True),
    PassSpec("orphans", orphan_pass, lambda s: s.cleanup.orphan_interval, deletes_jobs=True),
)


def pass_spec(name: str) -> PassSpec:
    """The entry of ``PASSES`` called ``name``."""
    for spec in PASSES:
        if spec.name == name:
            return spec
    raise KeyError(name)


async def run_cycle(ctx: WorkflowContext) -> None:
    """Every pass once, in order: the burst mode tests and ``--exit-when-done`` build on."""
    for spec in PASSES:
        if spec.in_cycle:
            await spec.run(ctx)
