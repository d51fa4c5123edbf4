"""The client against a scripted fake server: what goes over the wire and what comes back."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import aiohttp
import pytest
import stamina
from structlog.testing import capture_logs

from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.errors import (
    AmbiguousCreateError,
    ApiError,
    AuthenticationError,
    BadRequest,
    InvalidInput,
    MalformedResponse,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from orchestrator.twilio import (
    BulkExportsClient,
    ClientSettings,
    Credentials,
    DeleteOutcome,
    RequestNotSent,
)
from tests.contract.conftest import ClientFactory
from tests.contract.fakes import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    JOB_SID,
    NOW,
    OTHER_JOB_SID,
    SECRETS,
    FakeServer,
    FixedClock,
    drop,
    hang,
    job_json,
    reply,
)

JOBS = "/v1/Exports/Messages/Jobs"
JOB = f"/v1/Exports/Jobs/{JOB_SID}"
D1 = dt.date(2024, 1, 1)
D2 = dt.date(2024, 1, 2)


def assert_no_secret(*values: object) -> None:
    for value in values:
        for secret in SECRETS:
            assert secret not in repr(value)
            assert secret not in str(value)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


# --------------------------------------------------------------------------- create


async def test_create_job_sends_spec_form_and_parses_answer(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """create_job POSTs form-encoded PascalCase fields with Basic auth and returns a RemoteJob."""
    fake.on("POST", JOBS, reply(201, job_json(details=[{"status": "Submitted", "days": []}])))
    client = make_client()
    job = await client.create_job(
        ResourceType.MESSAGES,
        D1,
        "2024-01-02",
        "orch-Messages-20240101-20240102-a1",
        webhook_url="https://hooks.example.com/bulk",
        webhook_method="post",
        email="ops@example.com",
    )
    assert job.job_sid == JOB_SID
    assert job.resource_type is ResourceType.MESSAGES
    assert (job.start_day, job.end_day) == (D1, D2)
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == JOBS
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.form == {
        "StartDay": "2024-01-01",
        "EndDay": "2024-01-02",
        "FriendlyName": "orch-Messages-20240101-20240102-a1",
        "WebhookUrl": "https://hooks.example.com/bulk",
        "WebhookMethod": "POST",
        "Email": "ops@example.com",
    }
    assert request.query == {}
    assert request.authorization == basic(ACCOUNT_SID, AUTH_TOKEN)


async def test_api_key_credentials_authenticate_with_the_key_sid(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """With an API key the Basic-auth user is the SK SID and the password its secret."""
    fake.on("GET", JOB, reply(200, job_json()))
    creds = Credentials.from_api_key(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET)
    client = make_client(creds=creds)
    await client.fetch_job(JOB_SID)
    assert fake.requests[0].authorization == basic(API_KEY_SID, API_KEY_SECRET)
    assert client.account_sid == ACCOUNT_SID


async def test_create_job_omits_optional_fields(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """Without webhook or email only the three required fields are sent."""
    fake.on("POST", "/v1/Exports/Calls/Jobs", reply(201, job_json(resource_type="Calls")))
    await make_client().create_job("Calls", D1, D1, "n")
    assert set(fake.requests[0].form) == {"StartDay", "EndDay", "FriendlyName"}


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("messages", D1, D1, "n"), {}, "resource_type"),
        (("Sms", D1, D1, "n"), {}, "resource_type"),
        ((ResourceType.MESSAGES, "2024-1-01", D1, "n"), {}, "start_day"),
        ((ResourceType.MESSAGES, D1, "2024-02-30", "n"), {}, "end_day"),
        ((ResourceType.MESSAGES, D1, "../../etc", "n"), {}, "end_day"),
        ((ResourceType.MESSAGES, dt.datetime(2024, 1, 1), D1, "n"), {}, "start_day"),
        ((ResourceType.MESSAGES, D2, D1, "n"), {}, "start_day"),
        # NOW is 2024-03-10: the last eligible end day is 2024-03-08.
        ((ResourceType.MESSAGES, D1, dt.date(2024, 3, 9), "n"), {}, "end_day"),
        ((ResourceType.MESSAGES, D1, D1, ""), {}, "friendly_name"),
        ((ResourceType.MESSAGES, D1, D1, "a\nb"), {}, "friendly_name"),
        (
            (ResourceType.MESSAGES, D1, D1, "n"),
            {"webhook_url": "https://x.example"},
            "webhook_method",
        ),
        ((ResourceType.MESSAGES, D1, D1, "n"), {"webhook_method": "POST"}, "webhook_url"),
        (
            (ResourceType.MESSAGES, D1, D1, "n"),
            {"webhook_url": "ftp://x.example", "webhook_method": "POST"},
            "webhook_url",
        ),
        (
            (ResourceType.MESSAGES, D1, D1, "n"),
            {"webhook_url": "https://x.example", "webhook_method": "PUT"},
            "webhook_method",
        ),
        ((ResourceType.MESSAGES, D1, D1, "n"), {"email": "not-an-address"}, "email"),
    ],
)
async def test_bad_create_input_raises_and_sends_nothing(
    fake: FakeServer,
    make_client: ClientFactory,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    field: str,
) -> None:
    """Each invalid create argument raises InvalidInput naming it; the server sees nothing."""
    with pytest.raises(InvalidInput) as caught:
        await make_client().create_job(*args, **kwargs)
    assert caught.value.field == field
    assert fake.requests == []


async def test_last_eligible_end_day_is_accepted(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """An end day exactly two days before today (UTC) is sent."""
    fake.on("POST", JOBS, reply(201, job_json()))
    await make_client().create_job(ResourceType.MESSAGES, D1, dt.date(2024, 3, 8), "n")
    assert fake.requests[0].form["EndDay"] == "2024-03-08"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.fetch_job("JS123"),
        lambda c: c.fetch_job("js" + "0" * 32),
        lambda c: c.delete_job("JS" + "g" * 32),
        lambda c: c.delete_job(JOB_SID + "/../x"),
        lambda c: c.list_jobs("Faxes"),
        lambda c: c.list_days("calls"),
        lambda c: c.resolve_day_url("Messages", "2024-13-01"),
        lambda c: c.resolve_day_url("Messages", "../2024-01-01"),
    ],
)
async def test_bad_input_of_other_calls_sends_nothing(
    fake: FakeServer, make_client: ClientFactory, call: Any
) -> None:
    """Invalid SIDs, resource types and day strings raise InvalidInput before any request."""
    with pytest.raises(InvalidInput):
        await call(make_client())
    assert fake.requests == []


# --------------------------------------------------------------------------- fetch / parse


async def test_fetch_job_parses_quirks_on_the_wire(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """Upper-case statuses, {} entries, a string queue position and a naive ETA all parse."""
    details = [
        {"status": "COMPLETED", "count": 1, "days": ["2024-01-01"]},
        {},
        {"status": "Running", "count": 1, "days": ["2024-01-02"]},
    ]
    fake.on(
        "GET",
        JOB,
        reply(
            200,
            job_json(
                details=details,
                job_queue_position="3",
                estimated_completion_time="2024-03-10T13:30:00.547",
            ),
        ),
    )
    job = await make_client().fetch_job(JOB_SID)
    assert job.day_statuses() == {D1: DayStatus.COMPLETED, D2: DayStatus.RUNNING}
    assert job.job_queue_position == 3
    assert job.estimated_completion_time == dt.datetime(
        2024, 3, 10, 13, 30, 0, 547000, tzinfo=dt.UTC
    )
    assert fake.requests[0].method == "GET"
    assert fake.requests[0].query == {}


async def test_unknown_status_kept_and_logged_once(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """An unknown status becomes UNKNOWN with its text kept, logged once per distinct string."""
    details = [{"status": "Exploded", "days": ["2024-01-01"]}]
    fake.on("GET", JOB, reply(200, job_json(details=details)))
    client = make_client()
    with capture_logs() as logs:
        first = await client.fetch_job(JOB_SID)
        await client.fetch_job(JOB_SID)
    assert first.details[0].status is DayStatus.UNKNOWN
    assert first.details[0].raw_status == "Exploded"
    unknown = [e for e in logs if e["event"] == "twilio.unknown_status"]
    assert len(unknown) == 1
    assert unknown[0]["value"] == "Exploded"
    assert unknown[0]["job_sid"] == JOB_SID


async def test_unparseable_eta_is_none_and_logged(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """An ETA that is no timestamp becomes None and is logged, the job still parses."""
    fake.on("GET", JOB, reply(200, job_json(estimated_completion_time="soonish")))
    with capture_logs() as logs:
        job = await make_client().fetch_job(JOB_SID)
    assert job.estimated_completion_time is None
    assert any(
        e["event"] == "twilio.unparseable_field" and e["field"] == "estimated_completion_time"
        for e in logs
    )


@pytest.mark.parametrize(
    "handler",
    [
        reply(200, text="<html>hello</html>", content_type="text/html"),
        reply(200, text="{not json"),
        reply(200, {"friendly_name": "x"}),
        reply(200, job_json(job_sid=OTHER_JOB_SID)),
        reply(200, job_json(details=[{"status": "Completed", "days": ["2024-02-31"]}])),
        reply(200, job_json(details="Completed")),
        reply(200, [job_json()]),
    ],
)
async def test_malformed_fetch_answers_raise_malformed_response(
    fake: FakeServer, make_client: ClientFactory, handler: Any
) -> None:
    """Non-JSON, a missing/other job_sid, a bad day or details of the wrong shape: malformed."""
    fake.on("GET", JOB, handler)
    with pytest.raises(MalformedResponse) as caught:
        await make_client().fetch_job(JOB_SID)
    assert fake.count() == 1  # a malformed answer is not retried
    assert_no_secret(caught.value)


# --------------------------------------------------------------------------- lists


def page(key: str, items: list[Any], next_url: str | None) -> dict[str, Any]:
    return {"meta": {"key": key, "page_size": 2, "next_page_url": next_url}, key: items}


async def test_list_jobs_follows_every_page(fake: FakeServer, make_client: ClientFactory) -> None:
    """list_jobs follows meta.next_page_url to the end, sending PageSize and the page token."""
    host = "https://bulkexports.twilio.com"
    pages = [
        reply(
            200,
            page(
                "jobs",
                [job_json(), job_json(OTHER_JOB_SID)],
                f"{host}{JOBS}?PageSize=2&Page=1&PageToken=PT1",
            ),
        ),
        reply(
            200,
            page("jobs", [job_json("JS" + "1" * 32)], f"{JOBS}?PageSize=2&Page=2&PageToken=PT2"),
        ),
        reply(200, page("jobs", [], None)),
    ]
    fake.on("GET", JOBS, *pages)
    jobs = await make_client(page_size=2).list_jobs(ResourceType.MESSAGES)
    assert [j.job_sid for j in jobs] == [JOB_SID, OTHER_JOB_SID, "JS" + "1" * 32]
    assert [r.query for r in fake.requests] == [
        {"PageSize": "2"},
        {"PageSize": "2", "Page": "1", "PageToken": "PT1"},
        {"PageSize": "2", "Page": "2", "PageToken": "PT2"},
    ]
    # The absolute next_page_url named Twilio's host; credentials still only went to ours.
    assert all(r.authorization for r in fake.requests)


async def test_list_jobs_without_page_size_sends_no_query(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """By default the first page is asked for without parameters (Twilio's page size)."""
    fake.on("GET", JOBS, reply(200, page("jobs", [], None)))
    assert await make_client().list_jobs("Messages") == []
    assert fake.requests[0].query == {}


@pytest.mark.parametrize(
    "next_url",
    [f"{JOBS}?Page=0", "https://evil.example.com/steal?x=1"],
)
async def test_list_jobs_rejects_looping_or_foreign_next_pages(
    fake: FakeServer, make_client: ClientFactory, next_url: str
) -> None:
    """A next page that repeats itself or is not a Bulk Exports path is malformed."""
    fake.on("GET", JOBS, reply(200, page("jobs", [], next_url)))
    with pytest.raises(MalformedResponse):
        await make_client().list_jobs("Messages")
    assert fake.count() <= 2


async def test_list_days_parses_all_pages(fake: FakeServer, make_client: ClientFactory) -> None:
    """list_days returns RemoteDays from every page, sizes as ints."""
    path = "/v1/Exports/Calls/Days"
    day = {
        "day": "2024-01-01",
        "size": 100,
        "resource_type": "Calls",
        "create_date": "2024-01-03",
        "friendly_name": "n",
    }
    fake.on(
        "GET",
        path,
        reply(200, page("days", [day], f"{path}?Page=1&PageToken=X")),
        reply(200, page("days", [{**day, "day": "2024-01-02", "size": "7"}], None)),
    )
    days = await make_client().list_days(ResourceType.CALLS)
    assert [(d.day, d.size, d.resource_type) for d in days] == [
        (D1, 100, ResourceType.CALLS),
        (D2, 7, ResourceType.CALLS),
    ]


async def test_list_days_rejects_a_bad_day_string(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A day string that is not yyyy-mm-dd never leaves the client: MalformedResponse."""
    fake.on("GET", "/v1/Exports/Calls/Days", reply(200, page("days", [{"day": "../x"}], None)))
    with pytest.raises(MalformedResponse):
        await make_client().list_days("Calls")


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (reply(204), DeleteOutcome.DELETED),
        (
            reply(404, {"code": 20404, "message": "not found", "status": 404}),
            DeleteOutcome.ALREADY_GONE,
        ),
    ],
)
async def test_delete_job_outcomes(
    fake: FakeServer, make_client: ClientFactory, handler: Any, outcome: DeleteOutcome
) -> None:
    """DELETE answers 204 -> DELETED, 404 -> ALREADY_GONE (not raised)."""
    fake.on("DELETE", JOB, handler)
    assert await make_client().delete_job(JOB_SID) is outcome
    assert [(r.method, r.path) for r in fake.requests] == [("DELETE", JOB)]


async def test_delete_retried_after_5xx_then_gone(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A DELETE is idempotent: a 503 is retried and a following 404 means ALREADY_GONE."""
    fake.on("DELETE", JOB, reply(503, {"code": 20503, "message": "down"}), reply(404))
    assert await make_client().delete_job(JOB_SID) is DeleteOutcome.ALREADY_GONE
    assert fake.count("DELETE") == 2


# --------------------------------------------------------------------------- day URL


async def test_resolve_day_url_does_not_follow_the_redirect(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """The 307 is not followed: the URL comes back and the file host sees no request."""
    file_url = f"{fake.base_url}/bucket/AC/Messages/2024-01-01.json.gz?X-Amz-Signature=abc"
    fake.on(
        "GET",
        "/v1/Exports/Messages/Days/2024-01-01",
        reply(307, {"redirect_to": file_url}, headers={"Location": file_url}),
    )
    url = await make_client().resolve_day_url(ResourceType.MESSAGES, D1)
    assert url == file_url
    assert [r.path for r in fake.requests] == ["/v1/Exports/Messages/Days/2024-01-01"]


async def test_resolve_day_url_falls_back_to_location(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """Without a JSON body the Location header gives the URL."""
    fake.on(
        "GET",
        "/v1/Exports/Calls/Days/2024-01-02",
        reply(
            307,
            text="Redirecting",
            content_type="text/plain",
            headers={"Location": "https://s3.example.com/f.gz?sig=1"},
        ),
    )
    assert (
        await make_client().resolve_day_url("Calls", "2024-01-02")
        == "https://s3.example.com/f.gz?sig=1"
    )


async def test_resolve_day_url_404_raises_not_found(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A day Twilio has no file for is NotFound."""
    fake.on(
        "GET", "/v1/Exports/Calls/Days/2024-01-02", reply(404, {"code": 20404, "message": "nope"})
    )
    with pytest.raises(NotFound):
        await make_client().resolve_day_url("Calls", D2)


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "handler", "error", "code", "message_part"),
    [
        (
            400,
            reply(
                400,
                {
                    "code": 20001,
                    "message": "Invalid StartDay",
                    "more_info": "https://www.twilio.com/docs/errors/20001",
                    "status": 400,
                },
            ),
            BadRequest,
            20001,
            "Invalid StartDay",
        ),
        (
            401,
            reply(401, {"code": 20003, "message": "Authenticate", "status": 401}),
            AuthenticationError,
            20003,
            "Authenticate",
        ),
        (
            403,
            reply(403, {"code": 20003, "message": "Forbidden"}),
            AuthenticationError,
            20003,
            "Forbidden",
        ),
        (
            404,
            reply(404, {"code": 20404, "message": "The requested resource was not found"}),
            NotFound,
            20404,
            "not found",
        ),
        (
            429,
            reply(429, {"code": 20429, "message": "Too Many Requests"}),
            RateLimited,
            20429,
            "Too Many",
        ),
        (
            400,
            reply(400, {"code": 20429, "message": "Too many concurrent requests"}),
            RateLimited,
            20429,
            "concurrent",
        ),
        (
            409,
            reply(
                409,
                {
                    "type": "https://www.twilio.com/docs/errors/54301",
                    "title": "Conflict",
                    "status": 409,
                    "code": 54301,
                    "detail": "Job exists",
                },
                content_type="application/problem+json",
            ),
            ApiError,
            54301,
            "Conflict: Job exists",
        ),
        (
            500,
            reply(
                500,
                {"type": "about:blank", "title": "Internal Server Error", "status": 500},
                content_type="application/problem+json",
            ),
            ServerError,
            None,
            "Internal Server Error",
        ),
        (
            502,
            reply(
                502,
                text="<html><head><title>502 Bad Gateway</title></head>"
                "<body><h1>bad</h1></body></html>",
                content_type="text/html",
            ),
            ServerError,
            None,
            "502 Bad Gateway",
        ),
        (503, reply(503, text=""), ServerError, None, "Service Unavailable"),
    ],
)
async def test_error_answers_map_to_the_error_tree(
    fake: FakeServer,
    make_client: ClientFactory,
    status: int,
    handler: Any,
    error: type[ApiError],
    code: int | None,
    message_part: str,
) -> None:
    """Twilio JSON, RFC 9457 and HTML bodies become the right ApiError with code and message."""
    fake.on("GET", JOB, handler)
    with pytest.raises(error) as caught:
        await make_client(max_attempts=1).fetch_job(JOB_SID)
    exc = caught.value
    assert type(exc) is error
    assert exc.status == status
    assert exc.code == code
    assert message_part in exc.message
    assert "<" not in exc.message
    assert_no_secret(exc)


async def test_html_body_echoing_credentials_is_scrubbed(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A proxy page that echoes the Authorization header leaks neither token nor its encoding."""
    encoded = basic(ACCOUNT_SID, AUTH_TOKEN)
    fake.on(
        "GET",
        JOB,
        reply(
            502,
            text=f"<p>bad upstream; you sent {encoded} / {AUTH_TOKEN}</p>",
            content_type="text/html",
        ),
    )
    with pytest.raises(ServerError) as caught:
        await make_client(max_attempts=1).fetch_job(JOB_SID)
    assert_no_secret(caught.value)
    assert encoded.split()[1] not in str(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried(
    fake: FakeServer, make_client: ClientFactory, status: int
) -> None:
    """400/401/403/404 are raised after exactly one request."""
    fake.on(
        "GET",
        JOB,
        reply(status, {"code": 20003 if status in (401, 403) else 20001, "message": "no"}),
    )
    with pytest.raises(ApiError):
        await make_client(max_attempts=5).fetch_job(JOB_SID)
    assert fake.count() == 1


# --------------------------------------------------------------------------- retries


async def test_server_errors_retried_up_to_max_attempts(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A GET that keeps failing with 500 is tried max_attempts times, then ServerError."""
    fake.on("GET", JOB, reply(500, {"code": 20500, "message": "boom"}))
    with capture_logs() as logs, pytest.raises(ServerError):
        await make_client(max_attempts=4).fetch_job(JOB_SID)
    assert fake.count() == 4
    retried = [e for e in logs if e["event"] == "twilio.request_retried"]
    assert [e["attempt"] for e in retried] == [1, 2, 3]
    [gave_up] = [e for e in logs if e["event"] == "twilio.request_gave_up"]
    assert (gave_up["attempts"], gave_up["reason"], gave_up["status"]) == (
        4,
        "attempts_exhausted",
        500,
    )
    assert {(e["method"], e["route"]) for e in retried} == {("GET", "/v1/Exports/Jobs/{JobSid}")}


async def test_retry_stops_when_retry_timeout_would_pass(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A Retry-After longer than retry_timeout ends the retries early."""
    fake.on(
        "GET",
        JOB,
        reply(429, {"code": 20429, "message": "slow down"}, headers={"Retry-After": "50"}),
    )
    with pytest.raises(RateLimited) as caught:
        await make_client(max_attempts=5, retry_timeout=10.0, max_retry_after=60.0).fetch_job(
            JOB_SID
        )
    assert caught.value.retry_after == 50.0
    assert fake.count() == 1


async def test_transient_failures_then_success(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A dropped connection and a 502 on a GET are retried until the answer comes."""
    fake.on(
        "GET",
        JOB,
        drop(),
        reply(502, text="bad gateway", content_type="text/plain"),
        reply(200, job_json()),
    )
    job = await make_client(max_attempts=3).fetch_job(JOB_SID)
    assert job.job_sid == JOB_SID
    assert fake.count() == 3


async def test_get_timeout_is_a_transport_error_after_retries(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """An API call that gets no answer within request_timeout is retried, then TransportError."""
    fake.on("GET", JOB, hang())
    # Long enough for each attempt to reach the server on a loaded machine (a new connection
    # per attempt); the handler never answers, so each still times out.
    client = make_client(max_attempts=2, request_timeout=0.3, connect_timeout=0.3)
    with pytest.raises(TransportError) as caught:
        await client.fetch_job(JOB_SID)
    assert not isinstance(caught.value, RequestNotSent)
    assert fake.count() == 2


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [("7", 7.0), ("Sun, 10 Mar 2024 12:00:30 GMT", 30.0), ("500", 60.0), (None, None)],
)
async def test_rate_limited_waits_for_retry_after(
    fake: FakeServer,
    make_client: ClientFactory,
    retry_after: str | None,
    expected_wait: float | None,
) -> None:
    """A 429 is retried after Retry-After (seconds or HTTP-date, capped), else after backoff."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    fake.on(
        "GET",
        JOB,
        reply(429, {"code": 20429, "message": "Too Many Requests"}, headers=headers),
        reply(200, job_json()),
    )
    client = make_client(max_retry_after=60.0, wait_initial=0.25, wait_jitter=0.0)
    with capture_logs() as logs:
        await client.fetch_job(JOB_SID)
    [retried] = [e for e in logs if e["event"] == "twilio.request_retried"]
    assert retried["wait"] == (expected_wait if expected_wait is not None else 0.25)
    assert retried["reason"] == "rate_limited"
    assert fake.count() == 2


async def test_retry_after_is_really_slept_outside_test_mode(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """With stamina's test mode off the client sleeps the server's Retry-After before retrying."""
    fake.on(
        "GET",
        JOB,
        reply(429, {"code": 20429, "message": "busy"}, headers={"Retry-After": "0.05"}),
        reply(200, job_json()),
    )
    client = make_client(wait_initial=0.0, wait_jitter=0.0)
    loop = asyncio.get_running_loop()
    with stamina.set_testing(False):
        started = loop.time()
        await client.fetch_job(JOB_SID)
        elapsed = loop.time() - started
    # It waited at least Retry-After; the upper bound only catches a wait of another order.
    assert 0.05 <= elapsed < 10.0
    assert fake.count() == 2


# --------------------------------------------------------------------------- ambiguous create


@pytest.mark.parametrize(
    "handler",
    [
        reply(500, {"code": 20500, "message": "Internal error"}),
        reply(503, text="<html>Service Unavailable</html>", content_type="text/html"),
        drop(),
        hang(),
        reply(201, text="{truncated", content_type="application/json"),
    ],
)
async def test_ambiguous_create_is_not_retried(
    fake: FakeServer, make_client: ClientFactory, handler: Any
) -> None:
    """A create POST that may have reached Twilio raises AmbiguousCreateError after one try."""
    fake.on("POST", JOBS, handler)
    client = make_client(max_attempts=5, request_timeout=0.2, connect_timeout=0.1)
    with pytest.raises(AmbiguousCreateError) as caught:
        await client.create_job(ResourceType.MESSAGES, D1, D2, "orch-Messages-a1")
    assert caught.value.friendly_name == "orch-Messages-a1"
    assert fake.count("POST") == 1
    assert_no_secret(caught.value)


async def test_rate_limited_create_is_retried(fake: FakeServer, make_client: ClientFactory) -> None:
    """A 429 on POST was never processed: it is retried and the job is created once."""
    fake.on(
        "POST",
        JOBS,
        reply(429, {"code": 20429, "message": "Too Many Requests"}),
        reply(201, job_json()),
    )
    job = await make_client().create_job(ResourceType.MESSAGES, D1, D2, "n")
    assert job.job_sid == JOB_SID
    assert fake.count("POST") == 2


async def test_create_bad_request_is_raised_not_ambiguous(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """A 400 on create is a plain BadRequest, tried once."""
    fake.on("POST", JOBS, reply(400, {"code": 20001, "message": "EndDay too late"}))
    with pytest.raises(BadRequest):
        await make_client().create_job(ResourceType.MESSAGES, D1, D2, "n")
    assert fake.count() == 1


async def test_connection_refused_is_not_ambiguous(
    credentials: Credentials, session: aiohttp.ClientSession
) -> None:
    """A create that could not even connect raises RequestNotSent (retried), not ambiguity."""
    probe = FakeServer()
    await probe.start()
    dead_url = probe.base_url
    await probe.close()  # nothing listens there any more
    client = BulkExportsClient(
        credentials,
        session=session,
        settings=ClientSettings(base_url=dead_url, max_attempts=2),
        clock=FixedClock(NOW),
    )
    with capture_logs() as logs, pytest.raises(RequestNotSent) as caught:
        await client.create_job(ResourceType.MESSAGES, D1, D2, "n")
    assert [e["reason"] for e in logs if e["event"] == "twilio.request_retried"] == ["not_sent"]
    assert_no_secret(caught.value)


# --------------------------------------------------------------------------- limits


async def test_concurrency_cap_is_held(fake: FakeServer, make_client: ClientFactory) -> None:
    """With max_concurrent_requests=3 the server never sees more than 3 requests at once."""
    fake.on("GET", JOB, reply(200, job_json(), delay=0.01))
    client = make_client(max_concurrent_requests=3)
    await asyncio.gather(*(client.fetch_job(JOB_SID) for _ in range(12)))
    assert fake.count() == 12
    assert fake.max_in_flight == 3


async def test_requests_per_second_limit_is_held(
    fake: FakeServer, make_client: ClientFactory
) -> None:
    """Beyond the first second's burst, requests go out no faster than requests_per_second."""
    fake.on("GET", JOB, reply(200, job_json()))
    client = make_client(requests_per_second=100.0, max_concurrent_requests=50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(client.fetch_job(JOB_SID) for _ in range(115)))
    # 100 go at once (the bucket's capacity), the other 15 need ~0.15 s more.
    assert loop.time() - started >= 0.12
    assert fake.count() == 115


# --------------------------------------------------------------------------- sessions, reprs


async def test_session_with_auth_is_refused(credentials: Credentials) -> None:
    """A session carrying an Authorization header would leak it to the file host: refused."""
    async with aiohttp.ClientSession(headers={"Authorization": "Basic dTpw"}) as session:
        with pytest.raises(InvalidInput) as caught:
            BulkExportsClient(credentials, session=session)
    assert caught.value.field == "session"


async def test_client_made_session_is_closed(fake: FakeServer, credentials: Credentials) -> None:
    """Without a session the client makes one and closes it on exit."""
    fake.on("GET", JOB, reply(200, job_json()))
    async with BulkExportsClient(
        credentials, settings=ClientSettings(base_url=fake.base_url)
    ) as client:
        await client.fetch_job(JOB_SID)
        session = client._session
    assert session is not None and session.closed
    with pytest.raises(RuntimeError):
        await client.fetch_job(JOB_SID)


async def test_reprs_never_show_secrets(make_client: ClientFactory) -> None:
    """Client, credentials and settings reprs show SIDs and URLs but no secret."""
    client = make_client()
    creds = Credentials.from_api_key(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET)
    assert_no_secret(client, client.settings, creds, make_client(creds=creds))
    assert ACCOUNT_SID in repr(client)
