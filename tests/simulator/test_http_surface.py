"""Auth, validation errors, 404s, paging and the minimal Export/Configuration resources."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from orchestrator.simulator import FaultSettings
from tests.simulator.conftest import API_KEY_SECRET, API_KEY_SID, Api, serve

AUTH_ERROR = {
    "code": 20003,
    "message": "Authenticate",
    "more_info": "https://www.twilio.com/docs/errors/20003",
    "status": 401,
    "detail": "Your AccountSid or AuthToken was incorrect.",
}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": aiohttp.encode_basic_auth("AC" + "a" * 32, "wrong")},
        {"Authorization": aiohttp.encode_basic_auth(API_KEY_SID, "wrong")},
        {"Authorization": aiohttp.encode_basic_auth("SK" + "9" * 32, API_KEY_SECRET)},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
    ],
    ids=["missing", "bad-token", "bad-key-secret", "unknown-key", "bearer", "garbage"],
)
async def test_bad_credentials_get_401_with_twilio_error(api: Api, headers: dict[str, str]) -> None:
    """Missing or wrong credentials answer 401 with Twilio's 20003 body."""
    status, body = await api.call("GET", "/v1/Exports/Messages/Jobs", headers=headers)
    assert (status, body) == (401, AUTH_ERROR)


async def test_api_key_credentials_are_accepted(api: Api) -> None:
    """An API key SID and its secret authenticate like the account SID and token."""
    headers = {"Authorization": aiohttp.encode_basic_auth(API_KEY_SID, API_KEY_SECRET)}
    status, _ = await api.call("GET", "/v1/Exports/Messages/Jobs", headers=headers)
    assert status == 200


async def test_auth_applies_to_unknown_v1_paths_and_not_to_inspection(api: Api) -> None:
    """Unknown /v1 paths still need auth; the inspection endpoint needs none."""
    assert (await api.call("GET", "/v1/Nope", headers={}))[0] == 401
    status, body = await api.call("GET", "/v1/Nope")
    assert status == 404 and body["code"] == 20404
    assert (await api.call("GET", "/_simulator/stats", headers={}))[0] == 200


VALID = {"StartDay": "2024-03-01", "EndDay": "2024-03-02", "FriendlyName": "x"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"StartDay": None}, "StartDay"),
        ({"EndDay": None}, "EndDay"),
        ({"FriendlyName": None}, "FriendlyName"),
        ({"FriendlyName": ""}, "FriendlyName"),
        ({"StartDay": "2024-3-1"}, "StartDay"),
        ({"StartDay": "2024-02-30"}, "StartDay"),
        ({"EndDay": "yesterday"}, "EndDay"),
        ({"StartDay": "2024-03-02", "EndDay": "2024-03-01"}, "after"),
        ({"EndDay": "2024-03-09"}, "2 days"),
        ({"WebhookUrl": "https://example.com/hook"}, "WebhookMethod"),
        ({"WebhookMethod": "POST"}, "WebhookUrl"),
        ({"WebhookUrl": "https://example.com/hook", "WebhookMethod": "PUT"}, "WebhookMethod"),
    ],
    ids=[
        "no-start",
        "no-end",
        "no-name",
        "empty-name",
        "short-start",
        "unreal-start",
        "word-end",
        "start-after-end",
        "end-too-recent",
        "url-without-method",
        "method-without-url",
        "bad-method",
    ],
)
async def test_create_validation_errors_answer_400(
    api: Api, change: dict[str, str | None], fragment: str
) -> None:
    """Each invalid create answers 400 with Twilio's error shape and a message naming it."""
    data = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    status, body = await api.call("POST", "/v1/Exports/Messages/Jobs", data=data)
    assert status == 400
    assert set(body) == {"code", "message", "more_info", "status", "detail"}
    assert body["status"] == 400
    assert fragment in body["message"]
    assert api.sim.stats()["jobs_created"] == 0


async def test_latest_eligible_end_day_is_accepted(api: Api) -> None:
    """EndDay exactly two days before the simulated UTC day is accepted."""
    await api.create("2024-03-08", "2024-03-08")


async def test_json_body_is_not_a_form(api: Api) -> None:
    """A JSON body is not read as form fields: the create fails as missing parameters."""
    url = f"{api.sim.base_url}/v1/Exports/Messages/Jobs"
    async with api.http.post(url, json=VALID, headers=api.headers) as resp:
        assert resp.status == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/Exports/Texts/Jobs"),
        ("POST", "/v1/Exports/messages/Jobs"),
        ("GET", "/v1/Exports/Texts/Days"),
        ("GET", "/v1/Exports/Texts"),
        ("GET", "/v1/Exports/Jobs/JS" + "0" * 32),
        ("DELETE", "/v1/Exports/Jobs/JS" + "0" * 32),
        ("GET", "/v1/Exports/Jobs/not-a-sid"),
        ("GET", "/v1/Exports/Messages/Days/2024-03-01"),
        ("GET", "/v1/Exports/Messages/Days/March"),
    ],
)
async def test_unknown_things_answer_404_json(api: Api, method: str, path: str) -> None:
    """Unknown resource types, SIDs and days answer 404 with Twilio's error JSON."""
    status, body = await api.call(method, path, data=VALID if method == "POST" else None)
    assert status == 404
    assert body["code"] == 20404 and body["status"] == 404


async def test_job_list_pages_follow_next_page_url(http: aiohttp.ClientSession) -> None:
    """Five jobs at PageSize=2 come back over three pages linked by next_page_url."""
    async with serve(http) as api:
        sids = [
            (await api.create("2024-03-01", "2024-03-01", f"j{i}"))["job_sid"] for i in range(5)
        ]
        seen: list[str] = []
        metas: list[dict[str, Any]] = []
        url: str | None = "/v1/Exports/Messages/Jobs?PageSize=2"
        while url is not None:
            status, body = await api.call("GET", url)
            assert status == 200
            seen += [job["job_sid"] for job in body["jobs"]]
            metas.append(body["meta"])
            url = body["meta"]["next_page_url"]
        assert seen == sids
        assert [m["page"] for m in metas] == [0, 1, 2]
        assert all(m["page_size"] == 2 and m["key"] == "jobs" for m in metas)
        assert metas[0]["previous_page_url"] is None
        assert metas[1]["previous_page_url"] is not None
        assert metas[1]["next_page_url"].startswith(api.sim.base_url + "/v1/Exports/Messages/Jobs?")
        assert metas[0]["first_page_url"].endswith("PageSize=2&Page=0")
        status, body = await api.call("GET", metas[2]["previous_page_url"])
        assert [j["job_sid"] for j in body["jobs"]] == sids[2:4]
        status, body = await api.call("GET", "/v1/Exports/Messages/Jobs?PageSize=2&Page=1")
        assert [j["job_sid"] for j in body["jobs"]] == sids[2:4]


async def test_days_list_pages(http: aiohttp.ClientSession) -> None:
    """The Days list pages like the Jobs list, with key 'days'."""
    async with serve(http) as api:
        await api.create("2024-03-01", "2024-03-05")
        api.advance(3600)
        days: list[str] = []
        url: str | None = "/v1/Exports/Messages/Days?PageSize=2"
        while url is not None:
            _, body = await api.call("GET", url)
            assert body["meta"]["key"] == "days"
            days += [d["day"] for d in body["days"]]
            url = body["meta"]["next_page_url"]
        assert days == [f"2024-03-0{i}" for i in range(1, 6)]


@pytest.mark.parametrize("query", ["PageSize=0", "PageSize=abc", "Page=-1", "PageToken=zzz"])
async def test_bad_paging_parameters_answer_400(api: Api, query: str) -> None:
    """Malformed paging parameters answer 400."""
    status, body = await api.call("GET", f"/v1/Exports/Messages/Jobs?{query}")
    assert status == 400 and body["code"] == 20001


async def test_export_and_configuration_resources(api: Api) -> None:
    """GET Export and GET/POST Configuration answer their documented shapes."""
    status, body = await api.call("GET", "/v1/Exports/Calls")
    assert status == 200
    assert body["links"]["jobs"] == f"{api.sim.base_url}/v1/Exports/Jobs"
    status, body = await api.call(
        "POST", "/v1/Exports/Calls/Configuration", data={"Enabled": "true"}
    )
    assert status == 200 and body["enabled"] is True
    status, body = await api.call("GET", "/v1/Exports/Calls/Configuration")
    assert body["enabled"] is True and body["resource_type"] == "Calls"


@pytest.mark.parametrize(
    ("path", "maximum"),
    [("/v1/Exports/Messages/Jobs", 1000), ("/v1/Exports/Messages/Days", 400)],
    ids=["jobs", "days"],
)
async def test_page_size_above_the_spec_maximum_answers_400(
    api: Api, path: str, maximum: int
) -> None:
    """PageSize up to the spec's maximum is served; one above it answers 400 with code 20007."""
    status, body = await api.call("GET", f"{path}?PageSize={maximum}")
    assert status == 200 and body["meta"]["page_size"] == maximum
    status, body = await api.call("GET", f"{path}?PageSize={maximum + 1}")
    assert status == 400
    assert body["code"] == 20007 and body["status"] == 400
    assert str(maximum) in body["message"] and str(maximum) in body["detail"]


async def test_default_page_size_is_kept_within_the_days_maximum(
    http: aiohttp.ClientSession,
) -> None:
    """A default page size above the Days maximum is served as 400, not refused."""
    async with serve(http, default_page_size=1000) as api:
        status, body = await api.call("GET", "/v1/Exports/Messages/Days")
        assert status == 200 and body["meta"]["page_size"] == 400


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/v1/Exports/Messages/Jobs", None, 200),
        ("GET", "/v1/Exports/Messages/Jobs", {}, 401),
        ("GET", "/v1/Exports/Jobs/JS" + "0" * 32, None, 404),
        ("GET", "/v1/Exports/Messages/Jobs?PageSize=0", None, 400),
        ("PUT", "/v1/Exports/Messages/Jobs", None, 405),
        ("GET", "/v1/Nope", None, 404),
    ],
    ids=["ok", "unauthorized", "unknown-job", "bad-paging", "bad-method", "unknown-path"],
)
async def test_every_api_answer_carries_a_twilio_request_id(
    api: Api, method: str, path: str, headers: dict[str, str] | None, expected: int
) -> None:
    """Every /v1 answer, errors included, has a Twilio-Request-Id of RQ and 32 hex digits."""
    ids = []
    for _ in range(2):
        async with api.http.request(
            method, api.sim.base_url + path, headers=api.headers if headers is None else headers
        ) as resp:
            assert resp.status == expected
            ids.append(resp.headers.get("Twilio-Request-Id", ""))
    assert all(re.fullmatch(r"RQ[0-9a-f]{32}", rid) for rid in ids), ids
    assert ids[0] != ids[1]


async def test_injected_faults_carry_a_twilio_request_id(http: aiohttp.ClientSession) -> None:
    """A 429 and a 5xx injected before processing (the 5xx as proxy HTML) carry a request id."""
    faults = FaultSettings(rate_limit_next=1, server_error_next=1, server_error_html_fraction=1.0)
    async with serve(http, faults=faults) as api:
        seen = []
        for _ in range(2):
            url = api.sim.base_url + "/v1/Exports/Messages/Jobs"
            async with api.http.get(url, headers=api.headers) as resp:
                seen.append((resp.status, resp.headers.get("Twilio-Request-Id", "")))
        assert seen[0][0] == 429 and seen[1][0] in (500, 503)
        assert all(re.fullmatch(r"RQ[0-9a-f]{32}", rid) for _, rid in seen), seen
