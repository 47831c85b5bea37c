"""``robot-capture xr``'s web app (Starlette, as the console): the headset page and its pose WebSocket.

Routes:

* ``GET /``: the page (``static/index.html``; plain files, no build step), strict CSP;
  ``GET /static/*``: its script and style; ``GET /cert.pem``: the station's public certificate (to
  install it on a Vision Pro); ``GET /emulator/*``: only when the app is built with
  ``emulator_dir`` (tests: the WebXR emulation runtime the page loads when its URL asks for it).
* ``WS /ws``: the pose protocol (:mod:`robot_capture.xr.protocol`). The station sends ``hello``
  (or ``refused`` and closes), a ``ping`` every ``ping_interval_s`` (the clock round trips), the
  ``tally`` whenever it changes, and one ``error`` per refused message.

Access, as the web console (``console/web_guard.py``): HTTP requests pass
:class:`~robot_capture.console.web_guard.RequestGuard` (Host, Origin, token: 403/401). The
WebSocket handshake, which that guard passes through, gets the same checks here: a foreign
``Host`` or ``Origin`` is closed before the handshake completes (HTTP 403); a missing or wrong
token completes it only to send ``refused`` (the page shows why) and close with 1008.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from robot_capture.console.web_guard import RequestGuard, _token_given, host_allowed, split_host
from robot_capture.xr.session import Refused

__all__ = ["STATIC_DIR", "build_app", "tally"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: uvicorn's frame cap: a flood far beyond the protocol's own limit is cut by the server itself
#: (the protocol answers anything over ``MAX_MESSAGE_BYTES`` with a reply)
WS_MAX_SIZE = 1024 * 1024


def tally(state: dict) -> dict:
    """The station state (``RecorderBridge.latest()``) -> the page's ``tally`` message.

    ``tally`` green (ready) / red (recording) / amber (not ready); ``text`` in words: the
    episode and seconds when recording, the reasons when not ready; ``verdict``: the last
    episode's verdict word (pass/warn/fail) or "".
    """
    st = state or {}
    colour = st.get("tally") or "amber"
    if colour == "red":
        text = f"REC {st.get('episode', '')}"
    elif colour == "green":
        text = "ready"
    else:
        reasons = st.get("reasons") or ["station not ready"]
        text = "not ready: " + "; ".join(str(r) for r in reasons[:3])
    last = st.get("last") or {}
    verdict = str(last.get("verdict") or "").split(":", 1)[0].strip()
    return {"type": "tally", "tally": colour, "text": text[:300], "elapsed_s": float(st.get("elapsed_s") or 0.0),
            "verdict": verdict}


def _page_headers() -> dict:
    return {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}


def build_app(hub, state=None, token: str = "", bind: str = "127.0.0.1", names=None, cert: Path | None = None,
              emulator_dir: Path | None = None, ping_interval_s: float = 1.0, tally_interval_s: float = 0.25):
    """The Starlette app.

    Args:
        hub: :class:`~robot_capture.xr.session.XrHub`. state: () -> station state dict (tally source).
        token: console token ("" = none: loopback only, see ``console.web.check_bind``). bind: served address.
        names: host names allowed besides loopback and ``bind`` (default: this machine's).
        cert: the public certificate served at ``/cert.pem``. emulator_dir: tests only (see module docstring).
        ping_interval_s, tally_interval_s: clock round trip and tally check periods (s).
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles

    from robot_capture.console.web_guard import COOKIE, machine_names

    state = state or (lambda: {})
    allowed_names = frozenset(machine_names() if names is None else names)

    async def page(request):
        resp = FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_page_headers())
        if token and request.query_params.get("token"):
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return resp

    async def cert_pem(_request):
        if cert is None or not Path(cert).is_file():
            return Response("no certificate (plain HTTP)", status_code=404)
        return FileResponse(cert, media_type="application/x-x509-ca-cert")

    async def favicon(_request):
        return Response(status_code=204)

    def _handshake_problem(ws) -> tuple[str, bool]:
        """-> (why, before accept?) or ("", False) when the socket may drive."""
        headers = {k.lower(): v for k, v in ws.headers.items()}
        host = headers.get("host", "")
        if not host_allowed(split_host(host), bind, allowed_names):
            return f"Host {host[:80]!r} does not name this station", True
        origin = headers.get("origin")
        if origin is not None and origin.lower().rstrip("/") not in (f"http://{host.lower()}", f"https://{host.lower()}"):
            return f"cross-origin WebSocket from {origin[:80]!r} refused", True
        if token and not _token_given(headers, ws.scope.get("query_string", b"").decode("latin-1"), token)[0]:
            return "a token is required: open the page as https://<station>:<port>/?token=...", False
        return "", False

    async def pose_socket(ws):
        why, early = _handshake_problem(ws)
        if why and early:
            await ws.close(code=1008)
            return
        await ws.accept()
        if why:
            await ws.send_text(json.dumps({"type": "refused", "reason": why}))
            await ws.close(code=1008)
            return
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        try:
            conn = hub.connect(peer)
        except Refused as exc:
            await ws.send_text(json.dumps({"type": "refused", "reason": str(exc)}))
            await ws.close(code=1008)
            return
        lock = asyncio.Lock()

        async def send(msg: dict):
            async with lock:
                await ws.send_text(json.dumps(msg))

        async def station_side():
            last_tally, next_ping = None, 0.0
            loop = asyncio.get_running_loop()
            while True:
                if conn.closed:
                    await send({"type": "refused", "reason": conn.closed})
                    await ws.close(code=1008)
                    return
                now = loop.time()
                if now >= next_ping:
                    await send(conn.ping())
                    next_ping = now + ping_interval_s
                t = tally(state())
                if t != last_tally:
                    await send(t)
                    last_tally = t
                await asyncio.sleep(tally_interval_s)

        why_closed = "connection closed"
        side = asyncio.create_task(station_side())
        try:
            await send({"type": "hello", "role": "driver", "protocol": 1})
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    why_closed = f"connection closed (code {msg.get('code', 1006)})"
                    break
                receive_ns = time.time_ns()
                text = msg.get("text") if msg.get("text") is not None else msg.get("bytes", b"")
                for reply in conn.handle(text, receive_ns):
                    await send(reply)
        except Exception as exc:  # noqa: BLE001 - a broken socket is a drop, never a server crash
            why_closed = f"connection lost ({type(exc).__name__})"
        finally:
            side.cancel()
            hub.disconnect(conn, why_closed)

    routes = [Route("/", page), Route("/cert.pem", cert_pem), Route("/favicon.ico", favicon),
              Mount("/static", app=StaticFiles(directory=STATIC_DIR)), WebSocketRoute("/ws", pose_socket)]
    if emulator_dir is not None:
        routes.append(Mount("/emulator", app=StaticFiles(directory=emulator_dir)))
    return Starlette(routes=routes, middleware=[Middleware(RequestGuard, bind=bind, token=token, names=names)])
