"""Deciding which HTTP fault, if any, hits a request: seeded fractions plus ``next N`` counters.

The decisions come from one seeded generator consumed in request order, so the same requests
meet the same faults on every run.
"""

from __future__ import annotations

import enum

from orchestrator.simulator import seeds
from orchestrator.simulator.settings import FaultSettings


class FaultKind(enum.StrEnum):
    DROP = "drop"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    SLOW = "slow"
    DROP_AFTER = "drop_after"
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_FILE = "truncated_file"


# Faults that answer before the request is processed, in the order they are tried.
BEFORE = (FaultKind.DROP, FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR)
# Faults that act on the answer of a processed request.
AFTER = (FaultKind.SLOW, FaultKind.DROP_AFTER, FaultKind.MALFORMED_JSON)


class FaultInjector:
    """The runtime fault state of one simulator: counters start from the settings."""

    def __init__(self, settings: FaultSettings, seed: int) -> None:
        self.settings = settings
        self._rand = seeds.rng(seed, "faults")
        self.pending: dict[FaultKind, int] = {
            FaultKind.DROP: settings.drop_next,
            FaultKind.RATE_LIMIT: settings.rate_limit_next,
            FaultKind.SERVER_ERROR: settings.server_error_next,
            FaultKind.SLOW: settings.slow_next,
            FaultKind.DROP_AFTER: settings.drop_after_next,
            FaultKind.MALFORMED_JSON: settings.malformed_json_next,
            FaultKind.TRUNCATED_FILE: settings.truncated_file_next,
        }
        self._fractions: dict[FaultKind, float] = {
            FaultKind.DROP: settings.drop_fraction,
            FaultKind.RATE_LIMIT: settings.rate_limit_fraction,
            FaultKind.SERVER_ERROR: settings.server_error_fraction,
            FaultKind.SLOW: settings.slow_fraction,
            FaultKind.DROP_AFTER: settings.drop_after_fraction,
            FaultKind.MALFORMED_JSON: settings.malformed_json_fraction,
            FaultKind.TRUNCATED_FILE: settings.truncated_file_fraction,
        }
        self.fired: dict[FaultKind, int] = dict.fromkeys(FaultKind, 0)

    def inject(self, kind: FaultKind, count: int = 1) -> None:
        """Make the next ``count`` eligible requests meet ``kind``."""
        if count < 0:
            raise ValueError("count must not be negative")
        self.pending[kind] += count

    def applies_to(self, route: str) -> bool:
        routes = self.settings.http_fault_routes
        return not routes or route in routes

    def fires(self, kind: FaultKind) -> bool:
        """Whether ``kind`` hits the request at hand; consumes a counter when it does."""
        if self.pending[kind] > 0:
            self.pending[kind] -= 1
            self.fired[kind] += 1
            return True
        fraction = self._fractions[kind]
        # Only draw when the fault is on, so enabling one fault leaves the others' draws alone.
        if fraction > 0 and self._rand.random() < fraction:
            self.fired[kind] += 1
            return True
        return False

    def html_server_error(self) -> bool:
        return self._rand.random() < self.settings.server_error_html_fraction

    def server_error_status(self) -> int:
        return 503 if self._rand.random() < 0.5 else 500
