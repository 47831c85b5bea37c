"""The web console app without DDS: a fake bridge, Starlette's TestClient (httpx).

Token guard (401 before any route, nothing changes), bind rules, label checks, command
replies (200/404/409), SSE framing, and the page showing labels as text only.
"""
from __future__ import annotations

import json

import pytest
from _console_fake import FakeBridge, page_token

from robot_capture.console.commands import load_key_map
from robot_capture.console.web import WebConfigError, build_app, check_bind, check_label


@pytest.fixture
def app_client():
    from starlette.testclient import TestClient

    bridge = FakeBridge()
    return bridge, lambda token="": TestClient(build_app(bridge, load_key_map(), token=token),
                                               base_url="http://127.0.0.1:8080")


def _csrf(c, path="/"):
    return {"X-RC-CSRF": page_token(c.get(path).text)}


def test_token_guard_refuses_before_any_route(app_client):
    bridge, make = app_client
    c = make("floor-token-123")
    for method, url in (("get", "/"), ("get", "/api/state"), ("post", "/api/command/start"),
                        ("post", "/api/labels"), ("get", "/events")):
        r = getattr(c, method)(url, **({"json": {"task": "x"}} if method == "post" else {}))
        assert r.status_code == 401, (url, r.status_code)
    assert r.json()["ok"] is False and bridge.calls == [] and bridge.labels == {}
    assert c.get("/api/state", headers={"Authorization": "Bearer floor-token-123"}).status_code == 200
    r = c.get("/?token=floor-token-123")
    cookie = r.headers.get("set-cookie", "")
    assert r.status_code == 200 and "rc_console_token" in cookie and "samesite=strict" in cookie.lower(), cookie
    # the cookie now carries the token; a POST also needs the page's token
    assert c.post("/api/command/start", headers={"X-RC-CSRF": page_token(r.text)}).status_code == 200
    assert bridge.calls == [("start", {})]


def test_commands_labels_and_page(app_client):
    bridge, make = app_client
    c = make()
    c.headers.update(_csrf(c))
    assert c.post("/api/command/toggle").json() == {"ok": True, "reply": "/out/20260101-000000_x_0000"}
    r = c.post("/api/command/strat")
    assert r.status_code == 404 and "did you mean 'start'" in r.json()["reply"]
    r = c.post("/api/command/discard")
    assert r.status_code == 409 and "no episode is recording" in r.json()["reply"]
    r = c.post("/api/command/relabel", json={"success": "false", "notes": "dropped"})
    assert r.status_code == 200 and bridge.calls[-1] == ("relabel", {"success": "false", "notes": "dropped"})
    for bad, why in (({"task": "a\x00b"}, "control characters"), ({"task": "x" * 201}, "at most 200"),
                     ({"tsk": "x"}, "unknown label"), ({"task": 3}, "must be text")):
        r = c.post("/api/labels", json=bad)
        assert r.status_code == 400 and why in r.json()["reply"], (bad, r.json())
    assert c.post("/api/labels", content=b"not json").status_code == 400
    assert bridge.labels == {}  # nothing was set by the refused requests
    assert c.post("/api/labels", json={"task": "<b>pour</b> ../x"}).status_code == 200
    assert bridge.labels == {"task": "<b>pour</b> ../x"}
    page = c.get("/").text
    assert 'id="tally"' in page and "textContent" in page and "innerHTML" not in page
    assert json.dumps(" ")[1:-1] in page and '"u": "discard_last"' in page  # the key map's shortcuts


def test_bind_rules():
    check_bind("127.0.0.1", "")
    check_bind("::1", "")
    check_bind("localhost", "")
    with pytest.raises(WebConfigError, match="give --token"):
        check_bind("0.0.0.0", "")
    with pytest.raises(WebConfigError, match="at least 8"):
        check_bind("192.168.1.5", "short")
    check_bind("0.0.0.0", "long-enough-token")
    assert check_label("task", "  pour water ") == "pour water"
