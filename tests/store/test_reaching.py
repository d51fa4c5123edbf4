"""Reaching the database: what counts as "not there", waiting for it, and the reads the daemon
uses to wake its passes (the soonest end of a resubmit delay, a ping)."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
import sqlalchemy as sa

from orchestrator.domain.model import DayKey, ResourceType
from orchestrator.errors import StoreError
from orchestrator.store import Store
from orchestrator.store.engine import create_engine, shown_url, unavailable_reason
from orchestrator.store.open import open_store
from orchestrator.store.schema import days

from .conftest import ACCOUNT, NOW


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that is bound but not listening: every connect to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


async def test_a_refused_connect_is_unavailability_and_waited_for() -> None:
    """open_store(wait=) calls wait with the reason after each refused try, until it gives up."""
    sock, port = refused_port()
    reasons: list[str] = []

    class GiveUp(Exception):
        pass

    async def wait(reason: str) -> None:
        reasons.append(reason)
        if len(reasons) == 3:
            raise GiveUp

    try:
        with pytest.raises(GiveUp):
            async with open_store(
                f"postgresql+asyncpg://postgres:hunter2@127.0.0.1:{port}/test",
                ACCOUNT,
                migrate=True,
                wait=wait,
            ):
                pass
    finally:
        sock.close()
    assert len(reasons) == 3
    assert all("ConnectionRefusedError" in reason for reason in reasons)
    assert not any("hunter2" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (TimeoutError(), True),
        (StoreError("claim failed: UNIQUE constraint failed: jobs.job_sid"), False),
        (ValueError("not a database problem"), False),
    ],
)
def test_only_errors_of_reaching_count_as_unavailable(
    error: BaseException, unavailable: bool
) -> None:
    """Socket errors are "not there"; a constraint or any other error is not."""
    assert (unavailable_reason(error) is not None) is unavailable


def test_a_store_error_caused_by_a_dropped_connection_is_unavailable() -> None:
    """The cause chain is followed: a StoreError raised from a reset connection counts."""
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as reset:
            raise StoreError("poll failed") from reset
    except StoreError as error:
        reason = unavailable_reason(error)
    assert reason is not None and "ConnectionResetError" in reason


def test_a_url_is_shown_without_its_password() -> None:
    """shown_url masks the password and keeps the rest."""
    shown = shown_url("postgresql+asyncpg://orch:s3cret@db.example:5432/orch")
    assert "s3cret" not in shown
    assert shown == "postgresql+asyncpg://orch:***@db.example:5432/orch"


async def test_an_sql_error_is_not_unavailability(store: Store) -> None:
    """A reachable database answering an error (no such table) is not an outage."""
    engine = store._engine
    with pytest.raises(sa.exc.DBAPIError) as raised:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert unavailable_reason(raised.value) is None


async def test_ping_answers_on_a_reachable_database(store: Store) -> None:
    """ping() returns quietly when the database answers."""
    await store.ping()


async def test_ping_on_a_refused_port_raises_an_unavailable_error() -> None:
    """ping() through an engine whose server refuses raises what unavailable_reason knows."""
    sock, port = refused_port()
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    try:
        with pytest.raises(Exception) as raised:
            await Store(engine, ACCOUNT).ping()
        assert unavailable_reason(raised.value) is not None
    finally:
        sock.close()
        await engine.dispose()


async def test_earliest_pending_not_before_is_the_soonest_future_delay(store: Store) -> None:
    """Pending days in no job with a delay ending after ``after``: the soonest; else None."""
    keys = [DayKey(ResourceType.MESSAGES, dt.date(2024, 5, d)) for d in (1, 2, 3, 4)]
    await store.upsert_wanted_days(keys, NOW)
    assert await store.earliest_pending_not_before(NOW) is None
    delays = {1: None, 2: NOW + dt.timedelta(minutes=5), 3: NOW + dt.timedelta(minutes=2)}
    # One delay already over: nothing to wake up for.
    delays[4] = NOW - dt.timedelta(minutes=1)
    async with store._engine.begin() as conn:
        for day, not_before in delays.items():
            await conn.execute(
                days.update()
                .where(days.c.day == dt.date(2024, 5, day))
                .values(not_before=not_before)
            )
    assert await store.earliest_pending_not_before(NOW) == NOW + dt.timedelta(minutes=2)
    assert await store.earliest_pending_not_before(
        NOW + dt.timedelta(minutes=3)
    ) == NOW + dt.timedelta(minutes=5)
    assert await store.earliest_pending_not_before(NOW + dt.timedelta(minutes=5)) is None


async def test_a_refused_connection_is_a_store_error_that_still_reads_as_an_outage() -> None:
    """The socket's own error on connect becomes a StoreError whose cause says 'unreachable'."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    try:
        with pytest.raises(StoreError) as caught:
            await Store(engine, "AC" + "0" * 32).list_jobs()
    finally:
        await engine.dispose()
    assert isinstance(caught.value.__cause__, OSError)
    assert unavailable_reason(caught.value) is not None
