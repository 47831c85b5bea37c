"""The web console against hostile requests (issue 23), without DDS.

A browser on the robot PC may have any web page open. Each test sends what such a page (or
a DNS-rebinding name, or a greedy client) can send, and checks that the request is refused and
that nothing reached the recorder: cross-origin ``text/plain`` POSTs, a foreign ``Host``, a
foreign ``Origin`` with the token cookie, a forged or stale page token, an oversized and an
endless chunked body, and more ``/events`` clients than the cap.
"""
from __future__ import annotations

import socket
import time

import pytest
from _console_fake import FakeBridge, LiveServer, page_token

from robot_capture.console.commands import load_key_map
from robot_capture.console.web import build_app
from robot_capture.console.web_guard import MAX_BODY, MAX_EVENT_CLIENTS, host_allowed

ORIGIN = "http://127.0.0.1:8080"
TOKEN = "floor-token-123"


def _client(bridge, token="", base=ORIGIN, **kw):
    from starlette.testclient import TestClient

    return TestClient(build_app(bridge, load_key_map(), token=token, **kw), base_url=base)


def test_cross_site_posts_change_nothing():
    bridge = FakeBridge()
    c = _client(bridge)
    good = page_token(c.get("/").text)
    hostile = [  # what a page on another origin can send without a preflight, and a few more
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "text/plain"},                                  # an old browser: no Origin
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "null"},
        {"Content-Type": "text/plain", "Origin": "http://127.0.0.1:3000"},  # another port: another origin
        {"Content-Type": "application/json", "Origin": "http://evil.example", "X-RC-CSRF": good},
        {"Content-Type": "application/json", "X-RC-CSRF": "forged.token"},
        {"Content-Type": "application/json", "X-RC-CSRF": good + "x"},
    ]
    for h in hostile:
        for url in ("/api/command/start", "/api/command/discard_last", "/api/labels"):
            r = c.post(url, content=b'{"task": "pwned"}', headers=h)
            assert r.status_code == 403 and r.json()["ok"] is False, (h, url, r.status_code)
    assert bridge.calls == [] and bridge.labels == {}
    # a page from another console process (its own secret) is stale here
    other = page_token(_client(FakeBridge()).get("/").text)
    r = c.post("/api/command/start", headers={"X-RC-CSRF": other})
    assert r.status_code == 403 and "reload the page" in r.json()["reply"]
    # the page itself: same origin, its token in the header
    r = c.post("/api/labels", json={"task": "pour"}, headers={"Origin": ORIGIN, "X-RC-CSRF": good})
    assert r.status_code == 200 and bridge.labels == {"task": "pour"}
    assert c.post("/api/command/start", headers={"X-RC-CSRF": good}).status_code == 200
    assert bridge.calls == [("start", {})]


def test_foreign_host_cannot_read_state_or_events():
    """DNS rebinding: a hostile name resolving to 127.0.0.1 reaches the socket with its own Host."""
    c = _client(FakeBridge(), names=set())
    for host in ("evil.example:8080", "evil.example", "127.0.0.1.nip.io:8080", "", "localhost.evil.example"):
        for url in ("/api/state", "/events", "/"):
            r = c.get(url, headers={"Host": host})
            assert r.status_code == 403 and "does not name this console" in r.json()["reply"], (host, url)
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "app.localhost:8080"):
        assert c.get("/api/state", headers={"Host": host}).status_code == 200, host
    # a cross-origin read (fetch/EventSource sends Origin) is refused too
    assert c.get("/api/state", headers={"Origin": "http://evil.example"}).status_code == 403


def test_host_rules_per_bind():
    names = {"robot-pc", "robot-pc.local"}
    assert host_allowed("localhost", "127.0.0.1", names) and host_allowed("127.0.0.5", "127.0.0.1", names)
    assert not host_allowed("robot-pc", "127.0.0.1", names)  # loopback bind: loopback names only
    assert not host_allowed("192.168.1.5", "127.0.0.1", names)
    for h in ("robot-pc", "robot-pc.local", "192.168.1.5", "[fe80::1]", "localhost"):
        assert host_allowed(h, "0.0.0.0", names), h
    assert not host_allowed("evil.example", "0.0.0.0", names)
    assert host_allowed("console.floor", "console.floor", set())


def test_token_mode_cookie_with_foreign_origin_is_refused():
    bridge = FakeBridge()
    c = _client(bridge, token=TOKEN, bind="0.0.0.0", names={"robot-pc"}, base="http://robot-pc:8080")
    r = c.get(f"/?token={TOKEN}")
    cookie = r.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie
    good = page_token(r.text)
    # the browser attaches the cookie to a request from a hostile page
    for h in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},
              {"Origin": "http://evil.example", "X-RC-CSRF": good}, {"Content-Type": "text/plain"}):
        assert c.post("/api/command/start", headers=h).status_code == 403, h
    assert bridge.calls == []
    assert c.post("/api/command/start", headers={"Origin": "http://robot-pc:8080", "X-RC-CSRF": good}).status_code == 200
    # a script with the Bearer header (never sent by a browser on its own) needs no page token
    c.cookies.clear()
    assert c.post("/api/command/stop", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert bridge.calls == [("start", {}), ("stop", {})]


def test_page_cannot_be_framed_and_scripts_are_pinned():
    r = _client(FakeBridge()).get("/")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
    nonce = csp.split("script-src 'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in r.text and r.headers["cache-control"] == "no-store"


def test_oversized_body_gets_413_and_sets_nothing():
    bridge = FakeBridge()
    c = _client(bridge)
    h = {"X-RC-CSRF": page_token(c.get("/").text), "Content-Type": "application/json"}
    big = b'{"task": "' + b"x" * MAX_BODY + b'"}'
    r = c.post("/api/labels", content=big, headers=h)
    assert r.status_code == 413 and "over 65536 bytes" in r.json()["reply"]
    r = c.post("/api/command/relabel", content=(b"y" * (MAX_BODY + 1) for _ in range(1)), headers=h)  # chunked
    assert r.status_code == 413
    assert bridge.labels == {} and bridge.calls == []
    assert c.post("/api/labels", json={"task": "x" * 150}, headers=h).status_code == 200  # a normal body passes


@pytest.fixture
def live():
    servers = []

    def make(bridge=None, **kw):
        s = LiveServer(build_app(bridge or FakeBridge(), load_key_map(), **kw))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _status(sock) -> int:
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/") else 0


def _get_state(srv) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{srv.url}/api/state", timeout=60) as r:
        return r.status


def test_endless_chunked_post_is_cut_at_the_cap(live):
    """A client that never ends its chunked body gets 413 once 64 KiB have arrived."""
    import urllib.request

    bridge = FakeBridge()
    srv = live(bridge)
    with urllib.request.urlopen(srv.url + "/", timeout=60) as r:
        token = page_token(r.read().decode())
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(f"POST /api/labels HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-RC-CSRF: {token}\r\n"
              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"%x\r\n%s\r\n" % (16384, b"z" * 16384)
    sent, answered = 0, b""
    s.setblocking(False)
    while sent < 64 * 1024 * 1024:  # 1000x the cap: an unbounded server would still be reading
        try:
            answered += s.recv(4096)
        except BlockingIOError:
            pass
        if answered:
            break
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    s.setblocking(True)
    s.settimeout(60)
    while b"\r\n" not in answered:
        more = s.recv(4096)
        if not more:
            break
        answered += more
    s.close()
    assert answered.startswith(b"HTTP/1.1 413"), (sent, answered[:200])
    assert sent < 64 * 1024 * 1024 and bridge.labels == {}
    assert _get_state(srv) == 200  # the server goes on


def test_event_streams_are_capped_per_station(live):
    srv = live()
    slots = srv.app.state.event_slots
    req = f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    socks = []
    try:
        for _ in range(MAX_EVENT_CLIENTS):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            s.sendall(req)
            assert _status(s) == 200
            socks.append(s)
        extra = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        extra.sendall(req)
        assert _status(extra) == 503  # beyond the cap
        extra.close()
        assert slots.open == MAX_EVENT_CLIENTS and _get_state(srv) == 200  # the state still answers
        socks.pop().close()  # a client leaves: its slot is freed
        end = time.monotonic() + 60
        while slots.open >= MAX_EVENT_CLIENTS and time.monotonic() < end:
            time.sleep(0.05)
        again = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        again.sendall(req)
        assert _status(again) == 200
        socks.append(again)
    finally:
        for s in socks:
            s.close()
