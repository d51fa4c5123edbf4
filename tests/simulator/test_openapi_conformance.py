"""Every kind of simulator answer checked against Twilio's official Bulk Exports OpenAPI spec.

Real requests go to a simulator on port 0; each (request, answer) pair is validated with
openapi-core. The validation is strict: a property the spec does not document, or a documented
one left out, fails the test. The spec documents no error answers at all (each operation lists
only its success status), so error bodies are checked against Twilio's documented error JSON
({code, message, more_info, status} and the newer detail) by a schema of our own below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.request.exceptions import RequestValidationError
from openapi_core.validation.response.exceptions import InvalidData
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.simulator.conftest import Api, serve

SPEC_PATH = Path(__file__).parent.parent / "data" / "twilio_bulkexports_v1.openapi.json"
# The spec's only server; the simulator's requests are matched as if they had gone there.
SPEC_SERVER = "https://bulkexports.twilio.com"
REQUEST_ID = re.compile(r"RQ[0-9a-f]{32}")

# Twilio's error JSON (https://www.twilio.com/docs/usage/twilios-response), with the detail
# the simulator now always sends.
TWILIO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "message", "more_info", "status", "detail"],
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string", "minLength": 1},
        "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "minLength": 1},
    },
}


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    """The spec, strict: undocumented properties forbidden, documented ones required."""
    config = Config(
        additional_properties_default_policy="forbid",
        response_properties_default_policy="required",
    )
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


@pytest.fixture(scope="module")
def open_spec() -> OpenAPI:
    """The spec as written, for the Export resource: its ``links`` is a free-form URL map
    (format uri-map, no properties listed), which the strict policy would reject whole."""
    return OpenAPI.from_file_path(str(SPEC_PATH))


@dataclass
class SentRequest:
    """An openapi-core request (its Request protocol) built from what the test sent."""

    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str
    host_url: str = SPEC_SERVER


@dataclass
class ReceivedResponse:
    """An openapi-core response (its Response protocol) built from what the simulator sent."""

    status_code: int
    data: bytes
    content_type: str
    headers: Headers


@dataclass
class Exchange:
    request: SentRequest
    response: ReceivedResponse
    json: Any


async def exchange(
    api: Api,
    method: str,
    target: str,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Exchange:
    """Send one request to the simulator (no redirect following) and keep both sides."""
    url = target if target.startswith("http") else api.sim.base_url + target
    sent_headers = dict(api.headers if headers is None else headers)
    body: bytes | None = None
    if form is not None:
        body = urlencode(form).encode()
        sent_headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with api.http.request(
        method, url, data=body, headers=sent_headers, allow_redirects=False
    ) as resp:
        data = await resp.read()
        response = ReceivedResponse(
            status_code=resp.status,
            data=data,
            content_type=resp.headers.get("Content-Type", ""),
            headers=Headers(list(resp.headers.items())),
        )
        parsed = await resp.json() if data and resp.content_type == "application/json" else None
    parts = urlsplit(url)
    request = SentRequest(
        path=parts.path,
        method=method.lower(),
        parameters=RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query)),
            header=Headers(list(sent_headers.items())),
        ),
        body=body,
        content_type=sent_headers.get("Content-Type", ""),
    )
    return Exchange(request=request, response=response, json=parsed)


def assert_conforms(spec: OpenAPI, ex: Exchange, status: int) -> None:
    """The request is one the spec allows and the answer is the spec's answer to it."""
    assert ex.response.status_code == status, ex.json
    spec.validate_request(ex.request)
    spec.validate_response(ex.request, ex.response)
    assert REQUEST_ID.fullmatch(ex.response.headers.get("Twilio-Request-Id", ""))


def assert_twilio_error(spec: OpenAPI, ex: Exchange, status: int, code: int) -> None:
    """An error answer: absent from the spec, and Twilio's documented error JSON."""
    assert ex.response.status_code == status, ex.json
    with pytest.raises(ResponseNotFound):
        spec.validate_response(ex.request, ex.response)
    assert ex.response.content_type.startswith("application/json")
    OAS30Validator(TWILIO_ERROR_SCHEMA).validate(ex.json)
    assert (ex.json["status"], ex.json["code"]) == (status, code)
    assert ex.json["more_info"].endswith(f"/{code}")
    assert REQUEST_ID.fullmatch(ex.response.headers.get("Twilio-Request-Id", ""))


def _job_sids(body: Any) -> Iterator[str]:
    for job in body["jobs"]:
        yield job["job_sid"]


QUIRKS = {
    "plain": {},
    # Upper-case statuses and details [] / [{}] on create: the spec allows both readings.
    "quirks": {"upper_case_status_fraction": 1.0, "empty_details_on_create_fraction": 1.0},
}


@pytest.mark.parametrize("overrides", QUIRKS.values(), ids=QUIRKS.keys())
async def test_success_answers_conform_to_the_spec(
    spec: OpenAPI, open_spec: OpenAPI, http: aiohttp.ClientSession, overrides: dict[str, float]
) -> None:
    """Create, fetch, both lists, the 307 day answer, delete and the Export resources conform."""
    async with serve(http, max_running_jobs=1, **overrides) as api:
        created = []
        for i, (start, end) in enumerate(
            [
                ("2024-03-01", "2024-03-02"),
                ("2024-03-03", "2024-03-03"),
                ("2024-03-04", "2024-03-04"),
            ]
        ):
            ex = await exchange(
                api,
                "POST",
                "/v1/Exports/Messages/Jobs",
                form={"StartDay": start, "EndDay": end, "FriendlyName": f"job {i}"},
            )
            assert_conforms(spec, ex, 201)
            created.append(ex.json)
        # One running ("0"), two queued ("1", "2"): the spec's string positions.
        assert [job["job_queue_position"] for job in created] == ["0", "1", "2"]
        webhook = await exchange(
            api,
            "POST",
            "/v1/Exports/Calls/Jobs",
            form={
                "StartDay": "2024-03-01",
                "EndDay": "2024-03-01",
                "FriendlyName": "with webhook",
                "WebhookUrl": "https://example.com/hook",
                "WebhookMethod": "POST",
                "Email": "ops@example.com",
            },
        )
        assert_conforms(spec, webhook, 201)

        api.advance(35)  # 10 s start-up + 2 days of 10 s: the first job is done, the second runs
        for job in created:
            ex = await exchange(api, "GET", f"/v1/Exports/Jobs/{job['job_sid']}")
            assert_conforms(spec, ex, 200)
        finished = await exchange(api, "GET", f"/v1/Exports/Jobs/{created[0]['job_sid']}")
        assert finished.json["job_queue_position"] is None

        ex = await exchange(api, "GET", "/v1/Exports/Messages/Jobs?PageSize=2")
        assert_conforms(spec, ex, 200)
        sids = list(_job_sids(ex.json))
        assert ex.json["meta"]["next_page_url"] is not None
        ex = await exchange(api, "GET", ex.json["meta"]["next_page_url"])
        assert_conforms(spec, ex, 200)
        assert ex.json["meta"]["previous_page_url"] is not None
        assert sids + list(_job_sids(ex.json)) == [job["job_sid"] for job in created]
        ex = await exchange(api, "GET", "/v1/Exports/Messages/Jobs?PageSize=1000&Page=0")
        assert_conforms(spec, ex, 200)

        ex = await exchange(api, "GET", "/v1/Exports/Messages/Days?PageSize=1")
        assert_conforms(spec, ex, 200)
        assert [day["day"] for day in ex.json["days"]] == ["2024-03-01"]
        ex = await exchange(api, "GET", ex.json["meta"]["next_page_url"])
        assert_conforms(spec, ex, 200)
        ex = await exchange(api, "GET", "/v1/Exports/Messages/Days?PageSize=400")
        assert_conforms(spec, ex, 200)
        assert [day["day"] for day in ex.json["days"]] == ["2024-03-01", "2024-03-02"]
        ex = await exchange(api, "GET", "/v1/Exports/Calls/Days")
        assert_conforms(spec, ex, 200)

        ex = await exchange(api, "GET", "/v1/Exports/Messages/Days/2024-03-01")
        assert_conforms(spec, ex, 307)
        assert ex.response.headers["Location"] == ex.json["redirect_to"]

        for sid in (created[0]["job_sid"], created[1]["job_sid"]):  # finished, then running
            ex = await exchange(api, "DELETE", f"/v1/Exports/Jobs/{sid}")
            assert_conforms(spec, ex, 204)
            assert ex.response.data == b""

        ex = await exchange(api, "GET", "/v1/Exports/Messages")
        assert_conforms(open_spec, ex, 200)
        assert set(ex.json) == {"resource_type", "url", "links"}
        ex = await exchange(api, "GET", "/v1/Exports/Messages/Configuration")
        assert_conforms(spec, ex, 200)
        ex = await exchange(
            api,
            "POST",
            "/v1/Exports/Messages/Configuration",
            form={"Enabled": "true", "WebhookUrl": "https://example.com/h", "WebhookMethod": "GET"},
        )
        assert_conforms(spec, ex, 200)


async def test_error_answers_are_twilio_error_json(spec: OpenAPI, api: Api) -> None:
    """401, 404 and each kind of 400 are Twilio's error JSON; the spec documents none of them."""
    jobs = "/v1/Exports/Messages/Jobs"
    ex = await exchange(api, "GET", jobs, headers={})
    assert_twilio_error(spec, ex, 401, 20003)
    assert ex.json["detail"] == "Your AccountSid or AuthToken was incorrect."
    assert ex.response.headers["WWW-Authenticate"].startswith("Basic")
    wrong = {"Authorization": aiohttp.encode_basic_auth(api.sim.settings.account_sid, "nope")}
    assert_twilio_error(spec, await exchange(api, "GET", jobs, headers=wrong), 401, 20003)

    for method, path in [
        ("GET", "/v1/Exports/Jobs/JS" + "0" * 32),
        ("DELETE", "/v1/Exports/Jobs/JS" + "0" * 32),
        ("GET", "/v1/Exports/Messages/Days/2024-03-01"),
        ("GET", "/v1/Exports/Texts/Jobs"),
    ]:
        assert_twilio_error(spec, await exchange(api, method, path), 404, 20404)

    missing = {"StartDay": "2024-03-01", "EndDay": "2024-03-01"}
    ex = await exchange(api, "POST", jobs, form=missing)
    assert_twilio_error(spec, ex, 400, 20001)
    assert "FriendlyName" in ex.json["message"]
    too_recent = {"StartDay": "2024-03-01", "EndDay": "2024-03-09", "FriendlyName": "x"}
    assert_twilio_error(spec, await exchange(api, "POST", jobs, form=too_recent), 400, 20001)
    assert_twilio_error(spec, await exchange(api, "GET", f"{jobs}?PageToken=zzz"), 400, 20001)


@pytest.mark.parametrize(
    ("path", "maximum"),
    [("/v1/Exports/Messages/Jobs", 1000), ("/v1/Exports/Messages/Days", 400)],
    ids=["jobs", "days"],
)
async def test_page_size_beyond_the_spec_is_refused_like_the_spec_refuses_it(
    spec: OpenAPI, api: Api, path: str, maximum: int
) -> None:
    """A PageSize the spec forbids is refused by the simulator too: 400, code 20007."""
    ex = await exchange(api, "GET", f"{path}?PageSize={maximum + 1}")
    with pytest.raises(RequestValidationError):
        spec.validate_request(ex.request)
    assert_twilio_error(spec, ex, 400, 20007)
    assert f"maximum page size is {maximum}" in ex.json["detail"]
    ex = await exchange(api, "GET", f"{path}?PageSize=0")
    with pytest.raises(RequestValidationError):
        spec.validate_request(ex.request)
    assert_twilio_error(spec, ex, 400, 20001)


async def test_a_numeric_queue_position_would_fail_the_spec(
    spec: OpenAPI, http: aiohttp.ClientSession
) -> None:
    """The off-spec quirk (a JSON number position) is caught by the strict validation."""
    async with serve(http, string_queue_position_fraction=0.0) as api:
        ex = await exchange(
            api,
            "POST",
            "/v1/Exports/Messages/Jobs",
            form={"StartDay": "2024-03-01", "EndDay": "2024-03-01", "FriendlyName": "n"},
        )
        assert ex.json["job_queue_position"] == 0
        with pytest.raises(InvalidData, match="is not of type 'string'"):
            spec.validate_response(ex.request, ex.response)
