"""The scrape benchmark runs end to end at a tiny size, so it cannot rot; figures not asserted."""

from __future__ import annotations

from bench import scrape_bench


async def test_scrape_bench_times_scrapes_over_http() -> None:
    """A small scale state is built and scraped; the figures and the verdict are produced."""
    result = await scrape_bench.run(job_count=8, days_per_job=2, scrapes=2)
    assert result["scrapes"] == 2
    assert result["answer_bytes"] > 0
    for key in ("median_ms", "p95_ms", "max_ms"):
        assert result["scrape"][key] > 0
        assert result["snapshot"][key] > 0
    assert "target p95 < 100 ms" in scrape_bench.render(result)
