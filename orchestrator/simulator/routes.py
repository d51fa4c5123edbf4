"""The Bulk Exports v1 routes: same methods, paths, parameters and JSON shapes as Twilio's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator.domain.model import (
    ResourceType,
    is_job_sid,
    latest_eligible_day,
    parse_day,
)
from orchestrator.errors import InvalidInput
from orchestrator.simulator import keys
from orchestrator.simulator.downloads import signed_url
from orchestrator.simulator.engine import QuotaExceeded
from orchestrator.simulator.files import file_spec
from orchestrator.simulator.render import (
    PagingError,
    day_json,
    job_json,
    paginate,
    twilio_error,
)

# Twilio's codes: 20001 for a bad parameter, 20404 for an unknown resource.
INVALID_PARAMETER_CODE = 20001
NOT_FOUND_CODE = 20404
# A rejected create that would pass the daily requested-days quota. Not 429: retrying soon
# cannot help before the next UTC day.
QUOTA_ERROR_STATUS = 400
QUOTA_ERROR_CODE = 20400
MAX_JOBS_PAGE_SIZE = 1000
MAX_DAYS_PAGE_SIZE = 400
_WEBHOOK_METHODS = frozenset({"GET", "POST"})

routes = web.RouteTableDef()


def error_response(status: int, code: int, message: str, detail: str | None = None) -> web.Response:
    return web.json_response(twilio_error(status, code, message, detail), status=status)


def bad_request(message: str) -> web.Response:
    return error_response(400, INVALID_PARAMETER_CODE, message)


def not_found(request: web.Request) -> web.Response:
    return error_response(
        404, NOT_FOUND_CODE, f"The requested resource {request.path} was not found"
    )


def _resource_type(request: web.Request) -> ResourceType | None:
    try:
        return ResourceType.parse(request.match_info["ResourceType"])
    except InvalidInput:
        return None


def _origin(request: web.Request) -> str:
    return str(request.url.origin())


def _query(request: web.Request) -> dict[str, str]:
    return dict(request.query.items())


@routes.get("/v1/Exports/Jobs/{JobSid}")
async def fetch_job(request: web.Request) -> web.Response:
    engine = request.app[keys.ENGINE]
    sid = request.match_info["JobSid"]
    job = engine.job(sid) if is_job_sid(sid) else None
    if job is None:
        return not_found(request)
    view = engine.view(job)
    return web.json_response(job_json(view, url=f"{_origin(request)}/v1/Exports/Jobs/{sid}"))


@routes.delete("/v1/Exports/Jobs/{JobSid}")
async def delete_job(request: web.Request) -> web.Response:
    sid = request.match_info["JobSid"]
    if not is_job_sid(sid) or not request.app[keys.ENGINE].delete(sid):
        return not_found(request)
    return web.Response(status=204)


@routes.get("/v1/Exports/{ResourceType}")
async def fetch_export(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    base = f"{_origin(request)}/v1/Exports"
    return web.json_response(
        {
            "resource_type": resource_type.value,
            "url": f"{base}/{resource_type.value}",
            "links": {
                "days": f"{base}/{resource_type.value}/Days",
                "export_custom_jobs": f"{base}/{resource_type.value}/Jobs",
                "jobs": f"{base}/Jobs",
            },
        }
    )


def _configuration(request: web.Request, resource_type: ResourceType) -> dict[str, Any]:
    stored = request.app[keys.CONFIGURATION].setdefault(
        resource_type, {"enabled": False, "webhook_url": "", "webhook_method": ""}
    )
    return {
        **stored,
        "resource_type": resource_type.value,
        "url": f"{_origin(request)}/v1/Exports/{resource_type.value}/Configuration",
    }


@routes.get("/v1/Exports/{ResourceType}/Configuration")
async def fetch_configuration(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    return web.json_response(_configuration(request, resource_type))


@routes.post("/v1/Exports/{ResourceType}/Configuration")
async def update_configuration(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    form = await request.post()
    _configuration(request, resource_type)
    stored = request.app[keys.CONFIGURATION][resource_type]
    if "Enabled" in form:
        stored["enabled"] = str(form["Enabled"]).lower() == "true"
    for name, field in (("WebhookUrl", "webhook_url"), ("WebhookMethod", "webhook_method")):
        if name in form:
            stored[field] = str(form[name])
    return web.json_response(_configuration(request, resource_type))


@routes.post("/v1/Exports/{ResourceType}/Jobs")
async def create_job(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    form = await request.post()
    values: dict[str, str] = {k: v for k, v in form.items() if isinstance(v, str)}
    for name in ("StartDay", "EndDay", "FriendlyName"):
        if not values.get(name):
            return bad_request(f"Missing required parameter {name} in the post body")
    try:
        start_day = parse_day(values["StartDay"], field="StartDay")
        end_day = parse_day(values["EndDay"], field="EndDay")
    except InvalidInput as exc:
        return bad_request(f"Invalid parameter {exc.field}: must be a yyyy-mm-dd date")
    if start_day > end_day:
        return bad_request("StartDay must not be after EndDay")
    engine = request.app[keys.ENGINE]
    latest = latest_eligible_day(engine.now())
    if end_day > latest:
        return bad_request(
            f"EndDay must be at least 2 days before the current UTC day (latest {latest})"
        )
    webhook_url = values.get("WebhookUrl") or None
    webhook_method = values.get("WebhookMethod") or None
    if (webhook_url is None) != (webhook_method is None):
        return bad_request("WebhookUrl and WebhookMethod must be supplied together")
    if webhook_method is not None and webhook_method.upper() not in _WEBHOOK_METHODS:
        return bad_request("Invalid parameter WebhookMethod: must be GET or POST")
    try:
        job = engine.create(
            resource_type,
            start_day,
            end_day,
            values["FriendlyName"],
            webhook_url=webhook_url,
            webhook_method=webhook_method,
            email=values.get("Email") or None,
        )
    except QuotaExceeded as exc:
        return error_response(
            QUOTA_ERROR_STATUS,
            QUOTA_ERROR_CODE,
            f"Daily export limit exceeded: at most {exc.limit} days may be requested per UTC "
            f"day ({exc.used} already requested, {exc.requested} more asked); the limit "
            f"resets at {exc.resets_at:%Y-%m-%dT%H:%M:%SZ}",
        )
    view = engine.view(job)
    return web.json_response(job_json(view, empty_details=job.empty_details_on_create), status=201)


@routes.get("/v1/Exports/{ResourceType}/Jobs")
async def list_jobs(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    engine = request.app[keys.ENGINE]
    try:
        page = paginate(
            engine.jobs(resource_type),
            query=_query(request),
            page_url=f"{_origin(request)}{request.path}",
            key="jobs",
            default_size=request.app[keys.SETTINGS].default_page_size,
            max_size=MAX_JOBS_PAGE_SIZE,
        )
    except PagingError as exc:
        return error_response(400, exc.code, str(exc), exc.detail)
    jobs = [job_json(engine.view(job)) for job in page.items]
    return web.json_response({"jobs": jobs, "meta": page.meta})


@routes.get("/v1/Exports/{ResourceType}/Days")
async def list_days(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    app = request.app
    try:
        page = paginate(
            app[keys.ENGINE].completed_days(resource_type),
            query=_query(request),
            page_url=f"{_origin(request)}{request.path}",
            key="days",
            default_size=app[keys.SETTINGS].default_page_size,
            max_size=MAX_DAYS_PAGE_SIZE,
        )
    except PagingError as exc:
        return error_response(400, exc.code, str(exc), exc.detail)
    days = []
    for done in page.items:
        spec = file_spec(app[keys.SETTINGS], resource_type, done.day)
        facts = await app[keys.CATALOG].facts(spec)
        days.append(day_json(done, facts.size))
    return web.json_response({"days": days, "meta": page.meta})


@routes.get("/v1/Exports/{ResourceType}/Days/{Day}")
async def fetch_day(request: web.Request) -> web.Response:
    resource_type = _resource_type(request)
    if resource_type is None:
        return not_found(request)
    try:
        day = parse_day(request.match_info["Day"], field="Day")
    except InvalidInput:
        return not_found(request)
    app = request.app
    engine = app[keys.ENGINE]
    if engine.completed_day(resource_type, day) is None:
        return not_found(request)
    url = signed_url(
        _origin(request),
        app[keys.URL_SECRET],
        resource_type,
        day,
        engine.now(),
        app[keys.SETTINGS].download_url_ttl,
    )
    return web.json_response({"redirect_to": url}, status=307, headers={"Location": url})
