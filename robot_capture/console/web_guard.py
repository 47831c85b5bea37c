"""The web console's request guard: one pure ASGI middleware in front of every route.

A robot PC runs a browser, and any page open in it can send requests to the console on
127.0.0.1 (issue 23). Every HTTP request passes these checks in order; the first that fails
answers with JSON ``{"ok": false, "reply": <why>}`` and no route runs:

1. **Host** (403): the ``Host`` header must name this server (:func:`host_allowed`): a loopback
   alias, the bound address, this machine's names, or (off loopback) an IP literal. A DNS
   rebinding page reaches the socket under its own name and is refused, so it can read neither
   ``/api/state`` nor ``/events``.
2. **Origin** (403): when a browser sends ``Origin`` (every cross-origin request, every
   ``fetch`` POST), it must be this server's own origin (same host and port as ``Host``);
   ``null`` is refused. A page on another port of the same PC is another origin.
3. **Token** (401): in token mode the token must come as ``Authorization: Bearer``,
   ``?token=`` or the ``rc_console_token`` cookie (``SameSite=Strict``, ``HttpOnly``).
4. **CSRF** (403): every request that changes state (any method but GET/HEAD) carries the
   header ``X-RC-CSRF`` with a per-page token (:class:`PageTokens`: embedded in the page each time
   it is served, verified by HMAC). A cross-origin page cannot read it, and cannot send a custom
   header without a CORS preflight, which this server never grants. A request authenticated by
   ``Authorization: Bearer`` (a script, never sent by a browser on its own) needs no page token.
5. **Body** (413): at most ``max_body`` bytes (default 64 KiB: a label is <= 200 characters),
   counted as the body arrives, so an endless chunked POST is cut at the cap and never buffered.
6. **Event streams** (503): at most ``max_event_clients`` ``/events`` clients at once (default 16:
   a station has a few tablets); a client's slot is freed when its stream ends.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket

__all__ = ["CSRF_HEADER", "EventSlots", "MAX_BODY", "MAX_EVENT_CLIENTS", "PageTokens", "RequestGuard", "host_allowed",
           "machine_names"]

CSRF_HEADER = "x-rc-csrf"
MAX_BODY = 64 * 1024
MAX_EVENT_CLIENTS = 16
COOKIE = "rc_console_token"
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback", "localhost.localdomain"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost``-like names and loopback IP literals (``127.0.0.0/8``, ``::1``)."""
    h = host.lower().rstrip(".")
    if h in LOOPBACK_NAMES or h.endswith(".localhost"):  # *.localhost never leaves the machine (RFC 6761)
        return True
    ip = _ip(h)
    return bool(ip and ip.is_loopback)


def machine_names() -> set[str]:
    """This machine's names: hostname, its FQDN and its mDNS ``<hostname>.local`` (lower case)."""
    names = set()
    try:
        host = socket.gethostname()
        names |= {host, f"{host}.local", socket.getfqdn()}
    except OSError:
        pass
    return {n.lower().rstrip(".") for n in names if n}


def split_host(value: str) -> str:
    """``"Host"`` header value -> host name (lower case, no port; IPv6 keeps its brackets)."""
    v = value.strip().lower()
    if v.startswith("["):
        return v[: v.find("]") + 1] if "]" in v else v
    return v.rsplit(":", 1)[0] if v.count(":") == 1 else v


def host_allowed(host: str, bind: str, names=frozenset()) -> bool:
    """Whether ``host`` (a ``Host`` header's name, no port) may name a console bound to ``bind``.

    Loopback bind: loopback aliases and the bind address only. Other binds: also this
    machine's ``names`` and any IP literal (an IP is never a DNS rebinding: its origin is the
    address itself).
    """
    h = host.lower().rstrip(".")
    if not h:
        return False
    if is_loopback(h) or h == bind.lower().strip("[]") or h.strip("[]") == bind.lower().strip("[]"):
        return True
    if is_loopback(bind):
        return False
    return h in names or _ip(h) is not None


class PageTokens:
    """Per-page CSRF tokens: ``<nonce>.<HMAC-SHA256(secret, nonce)>``, no server-side list.

    ``secret`` is random per server process: a page from before a restart is refused
    (the reply says to reload it).
    """

    def __init__(self):
        self._secret = secrets.token_bytes(32)

    def _mac(self, nonce: str) -> str:
        d = hmac.new(self._secret, nonce.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(d).decode()

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._mac(nonce)}"

    def valid(self, token: str) -> bool:
        nonce, _, mac = (token or "").partition(".")
        return bool(nonce and mac) and hmac.compare_digest(mac.encode(), self._mac(nonce).encode())


async def _reply(send, status: int, reply: str, headers=()) -> None:
    body = json.dumps({"ok": False, "reply": reply}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body})


def _token_given(headers: dict, query: str, token: str) -> tuple[bool, bool]:
    """-> (authenticated, by a Bearer header)."""
    from urllib.parse import parse_qs

    def ok(g):
        return bool(g) and hmac.compare_digest(g.encode(), token.encode())

    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and ok(auth[7:].strip()):
        return True, True
    if any(ok(v) for v in parse_qs(query).get("token", [])):
        return True, False
    from http.cookies import SimpleCookie

    try:
        jar = SimpleCookie(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no token
        return False, False
    return (COOKIE in jar and ok(jar[COOKIE].value)), False


class EventSlots:
    """The ``/events`` client count of one app (``app.state.event_slots``); ``limit``: the cap."""

    def __init__(self, limit: int = MAX_EVENT_CLIENTS):
        self.limit, self.open = limit, 0


class RequestGuard:
    """Pure ASGI middleware running the checks of the module docstring.

    Args:
        app: the Starlette app. bind: the address served (``--host``). token: "" = no token.
        tokens: the page tokens the page embeds. names: extra host names allowed
            (default: :func:`machine_names`). max_body: bytes. slots: the ``/events`` cap and count.
    """

    def __init__(self, app, bind: str = "127.0.0.1", token: str = "", tokens: PageTokens | None = None,
                 names=None, max_body: int = MAX_BODY, slots: EventSlots | None = None):
        self.app, self.bind, self.token = app, bind, token
        self.tokens = tokens or PageTokens()
        self.names = frozenset(machine_names() if names is None else names)
        self.max_body = max_body
        self.slots = slots or EventSlots()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not host_allowed(split_host(host), self.bind, self.names):
            await _reply(send, 403, f"403: Host {host[:80]!r} does not name this console "
                         "(open it by the address it was started on)")
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower().rstrip("/") not in (f"http://{host.lower()}", f"https://{host.lower()}"):
            await _reply(send, 403, f"403: cross-origin request from {origin[:80]!r} refused")
            return
        bearer = False
        if self.token:
            authed, bearer = _token_given(headers, scope.get("query_string", b"").decode("latin-1"), self.token)
            if not authed:
                await _reply(send, 401, "401: a token is required (?token=...)")
                return
        method = scope.get("method", "GET").upper()
        if method not in _SAFE_METHODS:
            if not bearer and not self.tokens.valid(headers.get(CSRF_HEADER, "")):
                await _reply(send, 403, "403: missing or stale page token (X-RC-CSRF): reload the page")
                return
            receive = await self._capped_body(receive, send, headers)
            if receive is None:
                return
        if scope.get("path") == "/events":
            await self._event_stream(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _capped_body(self, receive, send, headers):
        """Read the whole body (at most ``max_body`` bytes) -> a ``receive`` that replays it,
        or None after answering 413."""
        too_big = f"413: request body over {self.max_body} bytes"
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body:
            await _reply(send, 413, too_big, [(b"connection", b"close")])
            return None
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reply(send, 413, too_big, [(b"connection", b"close")])
                return None
            chunks.append(chunk)
            more = msg.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        return replayed

    async def _event_stream(self, scope, receive, send):
        slots = self.slots
        if slots.open >= slots.limit:
            await _reply(send, 503, f"503: {slots.open} consoles already follow this station (at most "
                         f"{slots.limit}); close one", [(b"retry-after", b"10")])
            return
        slots.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.open -= 1
