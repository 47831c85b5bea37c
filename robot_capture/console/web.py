"""``robot-capture console --web``: the floor tablet's page (Starlette + uvicorn, server-sent events).

Routes (JSON unless said otherwise):

* ``GET /``: the page (``page.py``); ``GET /events``: ``text/event-stream``, one ``data:`` line
  with the recorder's state JSON whenever it changes (and every 2 s);
  ``GET /api/state``: the same state once.
* ``POST /api/command/<command>``: run one console command (``robot_capture.console.commands``);
  body (optional, JSON) ``{"success", "task", "operator", "scene", "notes"}`` for ``relabel``.
  200 ``{"ok": true, "reply"}``; 409 ``{"ok": false, "reply"}`` when the recorder refused
  (not ready, nothing to discard, ...); 404 for an unknown command.
* ``POST /api/labels``: ``{"task", "operator", "scene", "notes"}`` for the next episode. Each
  value is checked (:func:`check_label`): 400 with the reason, nothing set, for control
  characters or more than ``LABEL_MAX`` characters. Angle brackets, slashes and dots are
  accepted: the page shows labels as text only and the bag directory uses a slug.

Access: ``127.0.0.1``/``::1``/``localhost`` by default. Any other bind address needs a
token (:func:`check_bind`); then every request must carry it (``Authorization: Bearer``,
``?token=`` or the ``rc_console_token`` cookie the page sets): without it, 401 and nothing
changes. The web process drives the recorder only through a
:class:`~robot_capture.console.bridge.RecorderBridge` (rclpy services and topics).
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import unicodedata

from robot_capture.console.commands import COMMANDS, CommandError, check_command

__all__ = ["WebConfigError", "build_app", "check_bind", "check_label", "serve", "LABEL_MAX"]

LABEL_MAX = 200
COOKIE = "rc_console_token"
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


class WebConfigError(ValueError):
    """A bind address that needs a token, or a token that is too short."""


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str) -> None:
    """Raises WebConfigError when ``host`` is not loopback and no usable token is given."""
    if is_loopback(host):
        return
    if not token:
        raise WebConfigError(f"--host {host} is reachable from other machines: give --token "
                             "(or ROBOT_CAPTURE_CONSOLE_TOKEN); without one only 127.0.0.1 is allowed")
    if len(token) < 8:
        raise WebConfigError("--token must be at least 8 characters")


def check_label(name: str, value) -> str:
    """A label from the web form -> the value to set. Raises ValueError naming the problem."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: must be text")
    if len(value) > LABEL_MAX:
        raise ValueError(f"{name}: {len(value)} characters, at most {LABEL_MAX}")
    bad = [ch for ch in value if unicodedata.category(ch)[0] == "C"]
    if bad:
        raise ValueError(f"{name}: control characters are not allowed ({', '.join(repr(c) for c in bad[:3])})")
    return value.strip()


def build_app(bridge, key_map, token: str = "", reply_timeout_s: float = 20.0):
    """The Starlette app. ``token``: required on every request when non-empty."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from robot_capture.console.page import render_page

    class TokenGuard:
        """Pure ASGI middleware: a request without the token gets 401 before any route runs."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and token and not _has_token(Request(scope), token):
                await JSONResponse({"ok": False, "reply": "401: a token is required (?token=...)"},
                                   status_code=401)(scope, receive, send)
                return
            await self.app(scope, receive, send)

    async def wait(fut):
        return await asyncio.wait_for(asyncio.wrap_future(fut), reply_timeout_s)

    async def page(request: Request):
        resp = HTMLResponse(render_page(key_map, bridge.recorder))
        if token and request.query_params.get("token"):
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    async def state(_request: Request):
        return JSONResponse(bridge.latest())

    async def events(request: Request):
        async def stream():
            seen, last_sent = -1, 0.0
            loop = asyncio.get_running_loop()
            while not await request.is_disconnected():
                s = bridge.latest()
                now = loop.time()
                if bridge.version != seen or now - last_sent > 2.0 or s.get("state") == "offline":
                    seen, last_sent = bridge.version, now
                    yield f"data: {json.dumps(s)}\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def command(request: Request):
        name = request.path_params["name"]
        try:
            cmd = check_command(name)
        except CommandError as exc:
            return JSONResponse({"ok": False, "reply": str(exc)}, status_code=404)
        labels = {}
        if cmd == "relabel":
            try:
                body = await _json_body(request)
                labels = {k: check_label(k, body[k]) for k in ("task", "operator", "scene", "notes", "success")
                          if body.get(k) not in (None, "")}
            except ValueError as exc:
                return JSONResponse({"ok": False, "reply": str(exc)}, status_code=400)
        try:
            reply = await wait(bridge.command(cmd, **labels))
        except Exception as exc:  # noqa: BLE001 - a refusal is a reply
            return JSONResponse({"ok": False, "reply": str(exc)}, status_code=409)
        return JSONResponse({"ok": True, "reply": reply if cmd != "status" else json.loads(reply)})

    async def labels(request: Request):
        try:
            body = await _json_body(request)
            unknown = sorted(set(body) - {"task", "operator", "scene", "notes"})
            if unknown:
                raise ValueError(f"unknown label(s) {', '.join(unknown)}; labels: task, operator, scene, notes")
            values = {k: check_label(k, v) for k, v in body.items()}
        except ValueError as exc:
            return JSONResponse({"ok": False, "reply": str(exc)}, status_code=400)
        if not values:
            return JSONResponse({"ok": False, "reply": "nothing to set"}, status_code=400)
        try:
            await wait(bridge.set_labels(**values))
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"ok": False, "reply": str(exc)}, status_code=409)
        return JSONResponse({"ok": True, "reply": ", ".join(f"{k}={v}" for k, v in values.items())})

    async def favicon(_request: Request):
        return Response(status_code=204)

    routes = [Route("/", page), Route("/api/state", state), Route("/events", events),
              Route("/api/command/{name}", command, methods=["POST"]), Route("/api/labels", labels, methods=["POST"]),
              Route("/favicon.ico", favicon)]
    return Starlette(routes=routes, middleware=[Middleware(TokenGuard)])


def _has_token(request, token: str) -> bool:
    auth = request.headers.get("authorization", "")
    given = [auth[7:] if auth.lower().startswith("bearer ") else "", request.query_params.get("token", ""),
             request.cookies.get(COOKIE, "")]
    return any(g and hmac.compare_digest(g.encode(), token.encode()) for g in given)


async def _json_body(request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValueError("body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def serve(bridge, key_map, host: str = "127.0.0.1", port: int = 8080, token: str = "") -> int:
    """Serve until Ctrl-C/SIGTERM. Raises WebConfigError (see :func:`check_bind`)."""
    import uvicorn

    check_bind(host, token)
    app = build_app(bridge, key_map, token=token if token else "")
    print(f"console: http://{host}:{port}/ -> {bridge.recorder}"
          + (" (token required)" if token else ""), flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)).run()
    return 0


__all__ += ["COMMANDS"]
