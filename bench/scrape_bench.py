"""Scrape: ``GET /metrics`` against the scale database (10,000 jobs, 300,000 days, SQLite).

    python -m bench.scrape_bench [--jobs N] [--days-per-job M] [--scrapes K] [--json-out PATH]

The state is ``bench.scale_bench``'s (its builder: the wanted days through the store, the
jobs and their claims by direct SQL), with one export per resource type covering all of that
type's days, so each scrape counts every day by export and status. The app is served on a
loopback port and scraped over HTTP like Prometheus does, ``--scrapes`` times after one warm-up;
reported: median, p95 and max wall milliseconds per scrape (target: under 100 ms), the same for
``Store.metrics_snapshot`` alone, and the size of an answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bench.harness import ACCOUNT, PREFIX, TOKEN, TOKEN_ENV, quiet_logs, write_config
from bench.scale_bench import FIRST_DAY, NOW, TYPES, _build, poll_context
from orchestrator.config import load_settings
from orchestrator.domain.observed import export_ranges
from orchestrator.domain.plan import budget_window
from orchestrator.http import Sources, make_app
from orchestrator.metrics import Metrics
from orchestrator.store import Store, create_engine, upgrade_to_head
from orchestrator.wiring import PASSES

TARGET_MS = 100.0


def _body(job_count: int, days_per_job: int) -> str:
    per_type = -(-job_count // len(TYPES))
    last = FIRST_DAY + dt.timedelta(days=per_type * days_per_job - 1)
    exports = "".join(
        f"""
    [[exports]]
    name = "all-{rtype.value.lower()}"
    resource_type = "{rtype.value}"
    start_day = {FIRST_DAY.isoformat()}
    end_day = {last.isoformat()}
    """
        for rtype in TYPES
    )
    return f"""
    [jobs]
    name_prefix = "{PREFIX}"
    {exports}"""


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": p95 * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def run(job_count: int = 10_000, days_per_job: int = 30, scrapes: int = 20) -> dict[str, Any]:
    """Build the scale state, then time ``scrapes`` scrapes over HTTP and as bare reads."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_logs())
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-scrape-")))
        path = write_config(
            directory, "http://127.0.0.1:9", _body(job_count, days_per_job), archive=False
        )
        settings = load_settings(path, environ={TOKEN_ENV: TOKEN})
        settings.state.directory.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.state.database_url.get_secret_value())
        try:
            await upgrade_to_head(engine)
            store = Store(engine, ACCOUNT)
            began = time.perf_counter()
            built = await _build(store, engine, job_count, days_per_job)
            build_s = time.perf_counter() - began
            # The client is never called: a scrape reads the store and the metrics only.
            ctx = poll_context(store, None, settings)  # type: ignore[arg-type]
            metrics = Metrics(passes=[spec.name for spec in PASSES])
            app = make_app(Sources(store=store, metrics=metrics, context=lambda: ctx))
            server = TestServer(app, host="127.0.0.1", port=0)
            await server.start_server()
            try:
                url = str(server.make_url("/metrics"))
                http_times: list[float] = []
                size = 0
                async with aiohttp.ClientSession() as session:
                    for n in range(scrapes + 1):
                        started = time.perf_counter()
                        async with session.get(url) as response:
                            body = await response.read()
                            assert response.status == 200, response.status
                        if n:  # the first one warms the statement caches
                            http_times.append(time.perf_counter() - started)
                        size = len(body)
                ranges = export_ranges(ctx.exports, NOW)
                read_times: list[float] = []
                for _ in range(scrapes):
                    started = time.perf_counter()
                    await store.metrics_snapshot(NOW, ranges, budget_since=budget_window(NOW)[0])
                    read_times.append(time.perf_counter() - started)
            finally:
                await server.close()
        finally:
            await engine.dispose()
    scrape = _ms(http_times)
    return {
        "jobs": job_count,
        "days": built["days"],
        "exports": len(TYPES),
        "scrapes": scrapes,
        "build_s": build_s,
        "scrape": scrape,
        "snapshot": _ms(read_times),
        "answer_bytes": size,
        "target_ms": TARGET_MS,
        "met": scrape["p95_ms"] < TARGET_MS,
    }


def render(figures: dict[str, Any]) -> str:
    scrape, snap = figures["scrape"], figures["snapshot"]
    verdict = "met" if figures["met"] else "MISSED"
    return (
        f"Scrape: GET /metrics over {figures['jobs']:,} jobs, {figures['days']:,} days "
        f"(SQLite, {figures['exports']} exports), {figures['scrapes']} scrapes\n"
        f"   HTTP median {scrape['median_ms']:.1f} ms, p95 {scrape['p95_ms']:.1f} ms, "
        f"max {scrape['max_ms']:.1f} ms; store read alone median {snap['median_ms']:.1f} ms; "
        f"answer {figures['answer_bytes']:,} bytes\n"
        f"   target p95 < {figures['target_ms']:.0f} ms: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--days-per-job", type=int, default=30)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs, args.days_per_job, args.scrapes))
    print(render(result))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
