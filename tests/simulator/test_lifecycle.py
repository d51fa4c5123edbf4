"""The job lifecycle on the wire: queue, running slots, day statuses, delete, expiry."""

from __future__ import annotations

import datetime as dt

import aiohttp

from orchestrator.domain.model import JOB_SID_PATTERN
from tests.simulator.conftest import Api, serve

CUSTOM_JOB_FIELDS = {
    "friendly_name",
    "resource_type",
    "start_day",
    "end_day",
    "webhook_url",
    "webhook_method",
    "email",
    "job_sid",
    "details",
    "job_queue_position",
    "estimated_completion_time",
}


async def test_create_answers_201_with_the_custom_job_shape(api: Api) -> None:
    """A create answers 201 with every ExportCustomJob field, snake_case, and a JS SID."""
    body = await api.create(
        "2024-03-01",
        "2024-03-02",
        "nightly",
        WebhookUrl="https://example.com/hook",
        WebhookMethod="POST",
        Email="ops@example.com",
    )
    assert set(body) == CUSTOM_JOB_FIELDS
    assert JOB_SID_PATTERN.fullmatch(body["job_sid"])
    assert body["friendly_name"] == "nightly"
    assert body["resource_type"] == "Messages"
    assert (body["start_day"], body["end_day"]) == ("2024-03-01", "2024-03-02")
    assert body["webhook_url"] == "https://example.com/hook"
    assert body["webhook_method"] == "POST"
    assert body["email"] == "ops@example.com"
    assert body["details"] == [
        {"status": "Submitted", "count": 2, "days": ["2024-03-01", "2024-03-02"]}
    ]


async def test_days_go_submitted_running_completed_and_reach_the_days_list(api: Api) -> None:
    """Each day passes Submitted -> Running -> Completed in turn; completed days are listed."""
    sid = (await api.create("2024-03-01", "2024-03-03"))["job_sid"]
    days = ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert await api.statuses(sid) == dict.fromkeys(days, "Submitted")
    api.advance(10)
    assert await api.statuses(sid) == {
        "2024-03-01": "Running",
        "2024-03-02": "Submitted",
        "2024-03-03": "Submitted",
    }
    api.advance(10)
    assert await api.statuses(sid) == {
        "2024-03-01": "Completed",
        "2024-03-02": "Running",
        "2024-03-03": "Submitted",
    }
    status, listed = await api.call("GET", "/v1/Exports/Messages/Days")
    assert status == 200
    assert [d["day"] for d in listed["days"]] == ["2024-03-01"]
    api.advance(3600)
    assert await api.statuses(sid) == dict.fromkeys(days, "Completed")
    status, listed = await api.call("GET", "/v1/Exports/Messages/Days")
    assert [d["day"] for d in listed["days"]] == days
    entry = listed["days"][0]
    assert set(entry) == {"day", "size", "resource_type", "create_date", "friendly_name"}
    assert entry["resource_type"] == "Messages"
    assert entry["friendly_name"] == "job"
    assert entry["create_date"] == "2024-03-10"
    assert entry["size"] > 0


async def test_fetch_job_has_url_and_the_job_shape(api: Api) -> None:
    """GET /v1/Exports/Jobs/{sid} answers the Job resource with its own url."""
    sid = (await api.create("2024-03-01", "2024-03-01"))["job_sid"]
    status, body = await api.job(sid)
    assert status == 200
    assert set(body) == CUSTOM_JOB_FIELDS | {"url"}
    assert body["url"] == f"{api.sim.base_url}/v1/Exports/Jobs/{sid}"


async def test_queue_positions_never_increase_and_running_jobs_are_limited(
    http: aiohttp.ClientSession,
) -> None:
    """With 2 slots and 5 jobs, at most 2 run at once and no queue position ever goes up."""
    async with serve(http, max_running_jobs=2) as api:
        sids = [
            (await api.create("2024-03-01", "2024-03-02", f"j{i}"))["job_sid"] for i in range(5)
        ]
        last: dict[str, int] = {}
        finished_order: list[str] = []
        for _ in range(40):
            status, body = await api.call("GET", "/v1/Exports/Messages/Jobs")
            assert status == 200
            running = 0
            for job in body["jobs"]:
                position = job["job_queue_position"]
                if position is not None:
                    position = int(position)
                    assert position <= last.get(job["job_sid"], position)
                    last[job["job_sid"]] = position
                statuses = {g["status"] for g in job["details"]}
                if position == 0:
                    running += 1
                if statuses <= {"Completed"} and job["job_sid"] not in finished_order:
                    finished_order.append(job["job_sid"])
                if "Running" in statuses:
                    assert position == 0
            assert running <= 2
            api.advance(5)
        assert finished_order[:2] == sids[:2] or set(finished_order[:2]) == set(sids[:2])
        assert set(finished_order) == set(sids)
        assert last[sids[4]] == 0


async def test_queued_jobs_report_positions_from_one(http: aiohttp.ClientSession) -> None:
    """Jobs waiting for a slot report 1, 2, ... in FIFO order; running ones report 0."""
    async with serve(http, max_running_jobs=1) as api:
        bodies = [await api.create("2024-03-01", "2024-03-01", f"j{i}") for i in range(3)]
        assert [b["job_queue_position"] for b in bodies] == ["0", "1", "2"]
        api.advance(20)  # the first job is done, the second starts
        positions = [(await api.job(b["job_sid"]))[1]["job_queue_position"] for b in bodies]
        assert positions == [None, "0", "1"]


async def test_delete_running_job_shows_running_to_be_deleted_then_404(api: Api) -> None:
    """DELETE of a running job answers 204; it lingers as RunningToBeDeleted, then 404s."""
    sid = (await api.create("2024-03-01", "2024-03-03"))["job_sid"]
    api.advance(25)  # day 1 completed, day 2 running, day 3 submitted
    status, body = await api.call("DELETE", f"/v1/Exports/Jobs/{sid}")
    assert (status, body) == (204, None)
    assert await api.statuses(sid) == {
        "2024-03-01": "Completed",
        "2024-03-02": "RunningToBeDeleted",
        "2024-03-03": "DeletedByUserRequest",
    }
    api.advance(dt.timedelta(minutes=5).total_seconds())
    status, body = await api.job(sid)
    assert status == 404
    assert body["code"] == 20404
    _, listed = await api.call("GET", "/v1/Exports/Messages/Jobs")
    assert listed["jobs"] == []
    _, days = await api.call("GET", "/v1/Exports/Messages/Days")
    assert [d["day"] for d in days["days"]] == ["2024-03-01"]


async def test_delete_finished_job_is_gone_at_once(api: Api) -> None:
    """A finished job's DELETE answers 204 and the job 404s immediately."""
    sid = (await api.create("2024-03-01", "2024-03-01"))["job_sid"]
    api.advance(3600)
    assert (await api.call("DELETE", f"/v1/Exports/Jobs/{sid}"))[0] == 204
    assert (await api.job(sid))[0] == 404
    assert (await api.call("DELETE", f"/v1/Exports/Jobs/{sid}"))[0] == 404


async def test_deleting_a_running_job_frees_its_slot(http: aiohttp.ClientSession) -> None:
    """The next queued job starts as soon as a running one is deleted."""
    async with serve(http, max_running_jobs=1) as api:
        first = (await api.create("2024-03-01", "2024-03-05", "a"))["job_sid"]
        second = (await api.create("2024-03-01", "2024-03-01", "b"))["job_sid"]
        assert (await api.job(second))[1]["job_queue_position"] == "1"
        await api.call("DELETE", f"/v1/Exports/Jobs/{first}")
        assert (await api.job(second))[1]["job_queue_position"] == "0"


async def test_finished_jobs_drop_off_after_the_ttl(api: Api) -> None:
    """A finished job is listed for 7 simulated days, then 404s and leaves the list."""
    sid = (await api.create("2024-03-01", "2024-03-01"))["job_sid"]
    api.advance(20)
    assert (await api.job(sid))[0] == 200
    api.advance(dt.timedelta(days=6, hours=23).total_seconds())
    assert (await api.job(sid))[0] == 200
    api.advance(dt.timedelta(hours=2).total_seconds())
    assert (await api.job(sid))[0] == 404
    _, listed = await api.call("GET", "/v1/Exports/Messages/Jobs")
    assert listed["jobs"] == []


async def test_day_files_expire_after_the_file_ttl(api: Api) -> None:
    """A completed day leaves the Days list (and 404s) seven simulated days after it is made."""
    await api.create("2024-03-01", "2024-03-01")
    api.advance(20)
    assert (await api.call("GET", "/v1/Exports/Messages/Days/2024-03-01", allow_redirects=False))[
        0
    ] == 307
    api.advance(dt.timedelta(days=7).total_seconds())
    status, _ = await api.call("GET", "/v1/Exports/Messages/Days/2024-03-01")
    assert status == 404
    _, listed = await api.call("GET", "/v1/Exports/Messages/Days")
    assert listed["days"] == []


async def test_estimated_completion_time_is_naive_and_close(api: Api) -> None:
    """The ETA is a naive timestamp with milliseconds, near the real end without noise."""
    body = await api.create("2024-03-01", "2024-03-03")
    eta = body["estimated_completion_time"]
    assert eta == "2024-03-10T12:00:40.000"
    parsed = dt.datetime.fromisoformat(eta)
    assert parsed.tzinfo is None


async def test_eta_noise_varies_between_reads(http: aiohttp.ClientSession) -> None:
    """With noise on, two reads of the same job usually give different estimates."""
    async with serve(http, eta_noise=0.3) as api:
        sid = (await api.create("2024-02-27", "2024-03-07"))["job_sid"]
        etas = {(await api.job(sid))[1]["estimated_completion_time"] for _ in range(5)}
        assert len(etas) > 1
        for eta in etas:
            when = dt.datetime.fromisoformat(eta)
            # Ten days plus start-up is 110 s; +-30 % stays within [77, 143] s.
            assert (
                dt.timedelta(seconds=76)
                <= when - dt.datetime(2024, 3, 10, 12)
                <= dt.timedelta(seconds=144)
            )


async def test_rendering_quirks_upper_case_and_string_positions(
    http: aiohttp.ClientSession,
) -> None:
    """Seeded quirks: statuses upper-cased and queue positions rendered as strings."""
    async with serve(
        http, upper_case_status_fraction=1.0, string_queue_position_fraction=1.0
    ) as api:
        body = await api.create("2024-03-01", "2024-03-01")
        assert body["job_queue_position"] == "0"
        api.advance(60)
        _, job = await api.job(body["job_sid"])
        assert job["details"][0]["status"] == "COMPLETED"


async def test_empty_details_on_create_quirk(http: aiohttp.ClientSession) -> None:
    """A seeded fraction of create answers carries details [] or [{}] (the spec's example)."""
    async with serve(http, empty_details_on_create_fraction=1.0) as api:
        first = await api.create("2024-03-01", "2024-03-01")
        second = await api.create("2024-03-01", "2024-03-01")
        assert [first["details"], second["details"]] == [[], [{}]]
        assert (await api.statuses(first["job_sid"])) == {"2024-03-01": "Submitted"}
