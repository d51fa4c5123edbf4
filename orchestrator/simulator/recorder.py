"""What the simulator was asked and what it answered, for tests of clients (never the daemon)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    route: str
    query: tuple[tuple[str, str], ...]
    form: tuple[tuple[str, str], ...]
    content_type: str
    # None when the connection was dropped without an answer.
    status: int | None
    authorization: bool
    fault: str | None
    at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": dict(self.query),
            "query_pairs": [list(p) for p in self.query],
            "form": dict(self.form),
            "form_pairs": [list(p) for p in self.form],
            "content_type": self.content_type,
            "status": self.status,
            "authorization": self.authorization,
            "fault": self.fault,
            "at": self.at,
        }


@dataclass(slots=True)
class Recorder:
    # Oldest entries fall off past ``limit`` so a long demo does not grow without bound.
    limit: int = 100_000
    requests: collections.deque[RecordedRequest] = field(default_factory=collections.deque)
    counts: collections.defaultdict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )

    def record(self, entry: RecordedRequest) -> None:
        self.requests.append(entry)
        while len(self.requests) > self.limit:
            self.requests.popleft()
        status = "dropped" if entry.status is None else str(entry.status)
        self.counts[f"{entry.method} {entry.route}"][status] += 1

    def clear(self) -> None:
        self.requests.clear()
        self.counts.clear()

    def count(self, method: str, route: str, status: int | None = None) -> int:
        """Requests recorded for ``method route`` (optionally with one status)."""
        by_status = self.counts.get(f"{method} {route}", collections.Counter())
        if status is None:
            return sum(by_status.values())
        return by_status[str(status)]

    def counts_json(self) -> dict[str, dict[str, int]]:
        return {key: dict(sorted(c.items())) for key, c in sorted(self.counts.items())}
