"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Put structlog back as it was after each test.

    The CLI, the daemon and the demo configure process-wide logging onto the stream they were
    given; under pytest that is often a capture stream closed when its test ends, and a later
    test's log call would then fail with "I/O operation on closed file".
    """
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
