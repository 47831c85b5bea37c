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
token (:func:`check_bind`). Every request first passes
:class:`~robot_capture.console.web_guard.RequestGuard` (Host, Origin, token, a per-page CSRF
token on every POST, 64 KiB bodies, at most 16 ``/events`` clients): see that module for the
checks and their answers (403, 401, 413, 503). The page is served with a strict
Content-Security-Policy (``frame-ancestors 'none'``: no hostile page can frame it). The web
process drives the recorder only through a
:class:`~robot_capture.console.bridge.RecorderBridge` (rclpy services and topics).
"""
from __future__ import annotations

import asyncio
import json
import secrets
import unicodedata

from robot_capture.console.commands import COMMANDS, CommandError, check_command
from robot_capture.console.web_guard import (COOKIE, MAX_BODY, MAX_EVENT_CLIENTS, EventSlots, PageTokens,
                                             RequestGuard, is_loopback)

__all__ = ["WebConfigError", "build_app", "check_bind", "check_label", "serve", "LABEL_MAX"]

LABEL_MAX = 200


class WebConfigError(ValueError):
    """A bind address that needs a token, or a token that is too short."""


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


def build_app(bridge, key_map, token: str = "", reply_timeout_s: float = 20.0, bind: str = "127.0.0.1",
              names=None, max_body: int = MAX_BODY, max_event_clients: int = MAX_EVENT_CLIENTS):
    """The Starlette app behind a :class:`~robot_capture.console.web_guard.RequestGuard`.

    ``token``: required on every request when non-empty. ``bind``: the address served (the
    Host check). ``names``: host names allowed besides loopback and the bind address (default:
    this machine's names). ``max_body`` (bytes), ``max_event_clients``: see ``web_guard``.
    ``app.state.event_slots.open``: the number of open ``/events`` streams.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from robot_capture.console.page import render_page

    tokens, slots = PageTokens(), EventSlots(max_event_clients)

    async def wait(fut):
        return await asyncio.wait_for(asyncio.wrap_future(fut), reply_timeout_s)

    async def page(request: Request):
        nonce = secrets.token_urlsafe(12)
        resp = HTMLResponse(render_page(key_map, bridge.recorder, csrf=tokens.issue(), nonce=nonce), headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                                       "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                                       "frame-ancestors 'none'"})
        if token and request.query_params.get("token"):
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    async def state(_request: Request):
        return JSONResponse(bridge.latest())

    async def events(request: Request):
        async def stream():
            seen, last_sent, last_state = -1, 0.0, None
            loop = asyncio.get_running_loop()
            while not await request.is_disconnected():
                s = bridge.latest()
                now = loop.time()
                if bridge.version != seen or now - last_sent > 2.0 or s.get("state") != last_state:
                    seen, last_sent, last_state = bridge.version, now, s.get("state")
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
    app = Starlette(routes=routes, middleware=[Middleware(
        RequestGuard, bind=bind, token=token, tokens=tokens, names=names, max_body=max_body, slots=slots)])
    app.state.tokens, app.state.event_slots = tokens, slots
    return app


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
    app = build_app(bridge, key_map, token=token if token else "", bind=host)
    print(f"console: http://{host}:{port}/ -> {bridge.recorder}"
          + (" (token required)" if token else ""), flush=True)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)).run()
    return 0


__all__ += ["COMMANDS"]
