"""The headset server (Starlette app) without DDS: page, pose WebSocket, token, one driver, drops, tally."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from _xr_frames import frame  # noqa: E402
from robot_capture.xr.server import build_app, tally  # noqa: E402
from robot_capture.xr.session import XrHub  # noqa: E402

BASE = "http://127.0.0.1"


def recv(ws, kind: str, limit: int = 50) -> dict:
    """The next message of type ``kind`` (others are skipped; a bound, not a time)."""
    for _ in range(limit):
        m = json.loads(ws.receive_text())
        if m["type"] == kind:
            return m
    raise AssertionError(f"no {kind!r} message in {limit}")


def synced(ws) -> None:
    ping = recv(ws, "ping")
    ws.send_text(json.dumps({"type": "pong", "id": ping["id"], "t1": ping["t0"], "t2": ping["t0"]}))


def ws_url(client, path="/ws") -> str:
    """The TestClient's WebSocket URL ignores its base_url: name the host (the Host check reads it)."""
    return str(client.base_url).replace("http", "ws", 1).rstrip("/") + path


def make(state=None, **kw):
    out = []
    hub = XrHub(out.append, state=state, takeover=kw.pop("takeover", False))
    app = build_app(hub, state=state, ping_interval_s=0.05, tally_interval_s=0.02, **kw)
    return hub, out, TestClient(app, base_url=kw.get("bind") and f"http://{kw['bind']}" or BASE)


def test_page_and_assets_are_served_with_a_strict_policy():
    _hub, _out, client = make()
    r = client.get("/")
    assert r.status_code == 200 and "xr.js" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "immersive-vr" in client.get("/static/xr.js").text
    assert client.get("/emulator/iwer.module.js").status_code == 404  # only a test build serves it


def test_frames_are_published_bad_ones_answered_and_held():
    hub, out, client = make()
    with client.websocket_connect(ws_url(client, "/ws")) as ws:
        recv(ws, "hello")
        synced(ws)
        ws.send_text(json.dumps(frame(seq=0, t=1.7e12)))
        ws.send_text(json.dumps(frame(seq=1, t=float("nan"))).replace("NaN", "NaN"))
        err = recv(ws, "error")
        assert "t: not a finite number" in err["reason"] and "nothing published" in err["reason"]
        ws.send_text("x" * 70_000)
        assert "at most" in recv(ws, "error")["reason"]
        ws.send_bytes(b"\x01\x02")
        assert "binary" in recv(ws, "error")["reason"]
    assert len(out) == 1 and out[0].seq == 0 and set(out[0].hands) == {"left", "right"}
    assert hub.driver is None


def test_second_headset_is_refused_and_a_drop_mid_episode_is_flagged():
    state = {"state": "recording", "tally": "red", "episode": "ep_0001", "elapsed_s": 3.0}
    hub, _out, client = make(state=lambda: state)
    with client.websocket_connect(ws_url(client, "/ws")) as first:
        recv(first, "hello")
        assert recv(first, "tally")["tally"] == "red"
        with client.websocket_connect(ws_url(client, "/ws")) as second:
            refused = recv(second, "refused")
            assert "--takeover" in refused["reason"]
    assert hub.drops and hub.drops[0]["episode"] == "ep_0001"


def test_token_off_loopback_and_foreign_origin():
    _hub, _out, client = make(token="s3cret-token", bind="192.0.2.10")
    assert client.get("/").status_code == 401
    with client.websocket_connect(ws_url(client, "/ws")) as ws:
        assert "token is required" in recv(ws, "refused")["reason"]
    with client.websocket_connect(ws_url(client, "/ws?token=wrong-token")) as ws:
        assert "token is required" in recv(ws, "refused")["reason"]
    with client.websocket_connect(ws_url(client, "/ws?token=s3cret-token")) as ws:
        recv(ws, "hello")
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect(ws_url(client, "/ws?token=s3cret-token"), headers={"origin": "https://evil.example"}) as ws:
            ws.receive_text()


def test_tally_words():
    assert tally({"tally": "green"})["text"] == "ready"
    t = tally({"tally": "amber", "reasons": ["robot joint state (/joint_states) silent for 12.0 s"]})
    assert t["tally"] == "amber" and "silent for 12.0 s" in t["text"]
    red = tally({"tally": "red", "episode": "e1", "elapsed_s": 4.5})
    assert red["elapsed_s"] == 4.5 and red["text"] == "REC e1"
    assert tally({"tally": "green", "last": {"verdict": "warn: IK wrist error p95 70 mm"}})["verdict"] == "warn"
    assert tally({})["tally"] == "amber"


def test_certificate_is_made_once_with_the_station_names(tmp_path):
    import shutil
    import subprocess

    from robot_capture.xr.certs import ensure_certificate

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key, created = ensure_certificate(tmp_path / "xr", dns=["localhost", "station-7.local"], ips=["127.0.0.1"])
    assert created and (key.stat().st_mode & 0o777) == 0o600
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert "DNS:station-7.local" in text and "IP Address:127.0.0.1" in text
    before = cert.read_bytes()
    assert ensure_certificate(tmp_path / "xr")[2] is False and cert.read_bytes() == before
    _hub, _out, client = make(cert=cert)
    assert client.get("/cert.pem").content == before
