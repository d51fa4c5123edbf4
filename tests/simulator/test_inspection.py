"""The /_simulator inspection endpoint and seeded determinism across runs."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp

from tests.simulator.conftest import Api, serve


async def test_stats_count_requests_and_list_jobs(api: Api) -> None:
    """Stats count requests by route template and status and list every job created."""
    sid = (await api.create("2024-03-01", "2024-03-02", "alpha", Email="a@example.com"))["job_sid"]
    await api.job(sid)
    await api.job(sid)
    await api.call("DELETE", f"/v1/Exports/Jobs/{sid}")
    await api.call("GET", "/v1/Exports/Jobs/JS" + "f" * 32)
    status, stats = await api.call("GET", "/_simulator/stats", headers={})
    assert status == 200
    assert stats["requests"]["GET /v1/Exports/Jobs/{JobSid}"] == {"200": 2, "404": 1}
    assert stats["requests"]["DELETE /v1/Exports/Jobs/{JobSid}"] == {"204": 1}
    assert stats["jobs_created"] == 1
    assert stats["jobs"] == [
        {
            "job_sid": sid,
            "friendly_name": "alpha",
            "resource_type": "Messages",
            "start_day": "2024-03-01",
            "end_day": "2024-03-02",
            "deleted": True,
            "stuck": False,
        }
    ]


async def test_request_log_records_form_query_and_auth(api: Api) -> None:
    """Each logged request has method, path, route, query, form, content type, status, auth."""
    await api.create("2024-03-01", "2024-03-01", "beta")
    await api.call("GET", "/v1/Exports/Messages/Jobs?PageSize=5", headers={})
    _, stats = await api.call("GET", "/_simulator/stats", headers={})
    create, listing = stats["request_log"]
    assert create["method"] == "POST"
    assert create["path"] == "/v1/Exports/Messages/Jobs"
    assert create["route"] == "/v1/Exports/{ResourceType}/Jobs"
    assert create["form"] == {
        "StartDay": "2024-03-01",
        "EndDay": "2024-03-01",
        "FriendlyName": "beta",
    }
    assert create["content_type"] == "application/x-www-form-urlencoded"
    assert (create["status"], create["authorization"]) == (201, True)
    assert listing["query"] == {"PageSize": "5"}
    assert (listing["status"], listing["authorization"]) == (401, False)
    assert (await api.call("POST", "/_simulator/reset_log", headers={}))[0] == 204
    assert list(api.sim.recorder.requests) == []


async def test_advance_control_moves_a_manual_clock(api: Api) -> None:
    """POST /_simulator/advance moves the ManualClock by the given seconds."""
    before = api.clock.now()
    status, body = await api.call("POST", "/_simulator/advance", json={"seconds": 90}, headers={})
    assert status == 200
    assert (api.clock.now() - before).total_seconds() == 90
    assert body["now"] == api.clock.now().isoformat()


async def _run_scenario(http: aiohttp.ClientSession, seed: int) -> dict[str, Any]:
    async with serve(
        http, seed=seed, eta_noise=0.3, string_queue_position_fraction=0.5, day_seconds=(5, 30)
    ) as api:
        jobs = [await api.create("2024-03-01", "2024-03-03", f"j{i}") for i in range(3)]
        api.advance(45)
        listed = (await api.call("GET", "/v1/Exports/Messages/Jobs"))[1]["jobs"]
        api.advance(3600)
        _, days = await api.call("GET", "/v1/Exports/Messages/Days")
        _, redirect = await api.call(
            "GET", "/v1/Exports/Messages/Days/2024-03-02", allow_redirects=False
        )
        async with http.get(redirect["redirect_to"]) as resp:
            content = gzip.decompress(await resp.read())
        return {"created": jobs, "listed": listed, "days": days["days"], "content": content}


async def test_same_seed_same_answers_other_seed_differs(http: aiohttp.ClientSession) -> None:
    """Two runs with one seed give identical SIDs, statuses, ETAs and files; another seed not."""
    first = await _run_scenario(http, seed=7)
    second = await _run_scenario(http, seed=7)
    other = await _run_scenario(http, seed=8)
    assert first == second
    assert first["created"][0]["job_sid"] != other["created"][0]["job_sid"]
    assert first["content"] != other["content"]
