"""The console's HTTP routes: pages, the live event stream, two JSON reads, sign-in, health.

Every handler reads the caller's hub token and passes it through the Gateway; gRPC statuses map onto HTTP ones
(UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, UNAVAILABLE 503) with the hub's message and never
a traceback.
"""

from __future__ import annotations

import logging
import pathlib
import secrets
import time
from datetime import UTC, datetime, timedelta

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.common.timeconv import from_timestamp
from services.console import fleet, job_page, pasted, savings, submit_page, timeline_page
from services.console.gateway import Gateway
from services.console.layout import page, problem
from services.console.live import LiveStream
from services.console.metrics import ConsoleMetrics
from services.console.security import COOKIE, MAX_TOKEN_CHARS, CsrfGuard, caller_token
from services.console.settings import ConsoleSettings
from services.console.views import job_view

log = logging.getLogger("caspian.console")
STATIC = pathlib.Path(__file__).parent / "static"
HTTP_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

GATEWAY = web.AppKey("gateway", Gateway)
SETTINGS = web.AppKey("settings", ConsoleSettings)
CSRF = web.AppKey("csrf", CsrfGuard)
CYCLES = web.AppKey("cycles", savings.CycleLog)
METRICS = web.AppKey("metrics", ConsoleMetrics)


def _html(
    request: web.Request,
    title: str,
    body: str,
    *,
    active: str = "",
    status: int = 200,
    scripts: tuple[str, ...] = (),
) -> web.Response:
    token = caller_token(request)
    text = page(
        title,
        body,
        active=active,
        signed_in=bool(token),
        csrf=request.app[CSRF].token_for(token),
        scripts=scripts,
    )
    return web.Response(text=text, content_type="text/html", status=status)


@web.middleware
async def observe(request: web.Request, handler):
    """Count and time each request by its route's pattern (bounded labels)."""
    metrics = request.app[METRICS]
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.requests.labels(route, str(status)).inc()
        if route != "/events":
            metrics.duration.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        response = await handler(request)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        status = HTTP_STATUS.get(code, 502)
        hint = ' <a href="/login">Sign in</a> with a hub token.' if status == 401 else ""
        body = problem(f"{code.name}: {exc.details() or ''}") + (f"<p>{hint}</p>" if hint else "")
        response = _html(request, code.name, f"<h1>The hub refused</h1>{body}", status=status)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console request failed", extra={"path": request.path})
        response = _html(
            request, "Error", "<h1>Internal error</h1>" + problem("see the console's log"), status=500
        )
    response.headers.update(SECURITY_HEADERS)
    return response


async def _stats_or_none(request: web.Request):
    try:
        stats = await request.app[GATEWAY].stats(caller_token(request))
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise
        return None
    request.app[CYCLES].observe(stats)
    return stats


async def _zones(request: web.Request, clusters, stats) -> dict:
    settings = request.app[SETTINGS]
    now = from_timestamp(stats.now) if stats is not None and stats.HasField("now") else datetime.now(UTC)
    names = sorted({c.zone for c in clusters if c.zone})
    return await fleet.all_zones(
        request.app[GATEWAY],
        names,
        now,
        timedelta(hours=settings.history_hours),
        timedelta(seconds=settings.forecast_slot_seconds),
        settings.forecast_slots,
    )


async def fleet_page(request: web.Request) -> web.Response:
    stats = await _stats_or_none(request)
    clusters = await request.app[GATEWAY].clusters(caller_token(request))
    zones = await _zones(request, clusters, stats)
    return _html(
        request, "Fleet", fleet.render_fleet(stats, clusters, zones), active="/", scripts=("live.js",)
    )


async def timeline(request: web.Request) -> web.Response:
    stats = await _stats_or_none(request)
    clusters = await request.app[GATEWAY].clusters(caller_token(request))
    zones = await _zones(request, clusters, stats)
    now = from_timestamp(stats.now).timestamp() if stats is not None and stats.HasField("now") else None
    config = {
        "now": now if now is not None else datetime.now(UTC).timestamp(),
        "clusters": [{"name": c.name, "zone": c.zone} for c in clusters],
        "zones": {z: (view := v.as_json())["history"] + view["forecast"] for z, v in zones.items()},
    }
    body = timeline_page.render_timeline(config)
    return _html(request, "Timeline", body, active="/timeline", scripts=("timeline.js",))


async def job(request: web.Request) -> web.Response:
    token = caller_token(request)
    gateway = request.app[GATEWAY]
    aw = await gateway.app_wrapper(token, request.match_info["id"])
    clusters = {c.name: c.zone for c in await gateway.clusters(token)}
    stats = await _stats_or_none(request)
    history = await job_page.phase_history(gateway, token, aw.id)
    last = stats.last_cycle if stats is not None and stats.HasField("last_cycle") else None
    body = job_page.render_job(aw, history, clusters.get(aw.status.target_cluster, ""), last)
    return _html(request, aw.id, body, active="/timeline")


async def savings_page(request: web.Request) -> web.Response:
    stats = await _stats_or_none(request)
    app_wrappers = await request.app[GATEWAY].app_wrappers(caller_token(request))
    body = savings.render_savings(stats, app_wrappers, request.app[CYCLES])
    return _html(request, "Savings", body, active="/savings", scripts=("live.js",))


async def submit_form(request: web.Request) -> web.Response:
    form = submit_page.SubmitForm(nonce=secrets.token_hex(8))
    return _submit_response(request, form)


def _submit_response(request: web.Request, form: submit_page.SubmitForm, status: int = 200) -> web.Response:
    token = caller_token(request)
    body = submit_page.render_submit(form, csrf=request.app[CSRF].token_for(token), can_submit=bool(token))
    return _html(request, "Submit", body, active="/submit", status=status)


async def submit_post(request: web.Request) -> web.Response:
    token = caller_token(request)
    data = await request.post()
    refused = request.app[CSRF].check(request, str(data.get("csrf", "")), token)
    if refused is not None:
        return _html(request, "Refused", "<h1>Refused</h1>" + problem(refused), status=403)
    text = str(data.get("spec", ""))
    upload = data.get("upload")
    if isinstance(upload, web.FileField):
        content = upload.file.read(pasted.MAX_BYTES + 1)
        if content:
            text = content.decode("utf-8", errors="replace")
    nonce = str(data.get("nonce", "")) or secrets.token_hex(8)
    form = submit_page.SubmitForm(text=text, nonce=nonce)
    action = str(data.get("action", "preview"))
    gateway = request.app[GATEWAY]
    try:
        items = pasted.read_items(text)
        now = datetime.now(UTC)
        if pasted.relative_times(items):
            stats = await gateway.stats(token)
            now = from_timestamp(stats.now) if stats.HasField("now") else now
        app_wrappers = pasted.app_wrappers(items, now)
    except pasted.PastedSpecError as exc:
        form.error = exc.error
        return _submit_response(request, form, status=400)
    names = [aw.name or aw.id or f"item {i}" for i, aw in enumerate(app_wrappers)]
    try:
        if action == "submit":
            if not token:
                return _submit_response(request, form, status=403)
            for i, aw in enumerate(app_wrappers):
                response = await gateway.submit(token, aw, f"console-{nonce}-{i}")
                result = response.app_wrapper
                form.submitted.append((result.id, response.created, job_view(result)["phase"]))
            form.nonce = secrets.token_hex(8)
        else:
            for name, aw in zip(names, app_wrappers, strict=True):
                form.previews.append((name, await gateway.preview(token, aw)))
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE):
            raise
        form.rpc_error = f"{exc.code().name}: {exc.details() or ''}"
        return _submit_response(request, form, status=HTTP_STATUS.get(exc.code(), 502))
    return _submit_response(request, form)


async def login_form(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    csrf = request.app[CSRF].token_for("")
    note = problem(message) if message else ""
    body = f"""<h1>Sign in</h1>{note}
<p>Paste your hub bearer token. The console passes it to the hub with every call and keeps it only in an
HttpOnly cookie in this browser: the hub decides what you see (your tenant's jobs, or all with the admin role).</p>
<form method="post" action="/login"><input type="hidden" name="csrf" value="{csrf}">
<label for="token">Token</label> <input type="password" id="token" name="token" size="40" autocomplete="off">
<div class="actions"><button type="submit" id="login-button">Sign in</button></div></form>"""
    return _html(request, "Sign in", body, status=status)


async def login_post(request: web.Request) -> web.Response:
    data = await request.post()
    refused = request.app[CSRF].check(request, str(data.get("csrf", "")), "")
    if refused is not None:
        return await login_form(request, refused, 403)
    token = str(data.get("token", "")).strip()
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isprintable():
        return await login_form(request, "a token is needed", 400)
    try:
        await request.app[GATEWAY].stats(token)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return await login_form(request, "the hub does not know this token", 401)
        raise
    response = web.HTTPSeeOther("/timeline")
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=request.app[SETTINGS].secure_cookies, path="/"
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    data = await request.post()
    refused = request.app[CSRF].check(request, str(data.get("csrf", "")), caller_token(request))
    if refused is not None:
        return _html(request, "Refused", "<h1>Refused</h1>" + problem(refused), status=403)
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


async def events(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            **SECURITY_HEADERS,
        }
    )
    await response.prepare(request)
    stream = LiveStream(
        request.app[GATEWAY],
        caller_token(request),
        batch_seconds=settings.batch_seconds,
        batch_max_jobs=settings.batch_max_jobs,
        clock_seconds=settings.clock_seconds,
        observe=request.app[CYCLES].observe,
    )
    await stream.run(response, jobs=request.query.get("jobs", "1") != "0")
    return response


async def api_jobs(request: web.Request) -> web.Response:
    app_wrappers = await request.app[GATEWAY].app_wrappers(
        caller_token(request), request.query.get("tenant", "")
    )
    return web.json_response([job_view(aw) for aw in app_wrappers])


async def api_zones(request: web.Request) -> web.Response:
    stats = await _stats_or_none(request)
    clusters = await request.app[GATEWAY].clusters(caller_token(request))
    zones = await _zones(request, clusters, stats)
    return web.json_response({z: v.as_json() for z, v in zones.items()})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "serving"})


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=300"})


def build_app(
    settings: ConsoleSettings,
    gateway: Gateway,
    csrf: CsrfGuard | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    app = web.Application(middlewares=[observe, errors], client_max_size=pasted.MAX_BYTES + 64 * 1024)
    app[METRICS] = ConsoleMetrics.create(registry)
    app[GATEWAY] = gateway
    app[SETTINGS] = settings
    app[CSRF] = csrf or CsrfGuard()
    app[CYCLES] = savings.CycleLog()
    app.add_routes(
        [
            web.get("/", fleet_page),
            web.get("/timeline", timeline),
            web.get("/jobs/{id}", job),
            web.get("/savings", savings_page),
            web.get("/submit", submit_form),
            web.post("/submit", submit_post),
            web.get("/login", login_form),
            web.post("/login", login_post),
            web.post("/logout", logout),
            web.get("/events", events),
            web.get("/api/jobs", api_jobs),
            web.get("/api/zones", api_zones),
            web.get("/healthz", health),
            web.get("/metrics", metrics),
            web.get("/static/{name}", static),
        ]
    )

    async def close(_app: web.Application) -> None:
        await gateway.close()

    app.on_cleanup.append(close)
    return app
