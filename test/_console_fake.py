"""A web console without DDS for the tests: a fake bridge, Starlette's TestClient, a live uvicorn.

``FakeBridge.state`` is what ``latest()`` returns (a test sets it; ``version`` moves with it),
``calls``/``labels`` record what reached the recorder. ``LiveServer`` runs the app under a real
uvicorn in a thread on a free loopback port (raw sockets and Chromium need a real server).
"""
from __future__ import annotations

import concurrent.futures
import re
import socket
import threading
import time

READY = {"state": "ready", "ready": True, "tally": "green", "reasons": [], "streams": [], "counters": {},
         "task": "", "operator": "", "scene": "", "notes": ""}


class FakeBridge:
    recorder = "/recorder"

    def __init__(self, state=None):
        self.calls, self.labels = [], {}
        self.version = 1
        self._state = dict(state or READY)

    @property
    def state(self):
        return self._state

    @state.setter
    def state(self, value):
        self._state = dict(value)
        self.version += 1

    def _done(self, value=None, exc=None):
        f = concurrent.futures.Future()
        f.set_exception(exc) if exc else f.set_result(value)
        return f

    def latest(self):
        return dict(self._state, **{k: v for k, v in self.labels.items()})

    def command(self, name, **labels):
        self.calls.append((name, labels))
        if name == "discard":
            return self._done(exc=RuntimeError("discard: no episode is recording"))
        return self._done("/out/20260101-000000_x_0000")

    def set_labels(self, **labels):
        self.labels.update(labels)
        self.version += 1
        return self._done(None)


def page_token(html: str) -> str:
    """The per-page CSRF token embedded in the page."""
    m = re.search(r'<meta name="rc-csrf" content="([^"]+)">', html)
    assert m, "no rc-csrf meta in the page"
    return m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``build_app(bridge, ...)`` under uvicorn on 127.0.0.1:<free port>, in a daemon thread."""

    def __init__(self, app):
        import uvicorn

        self.app, self.port = app, free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < end, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.should_exit = True
        self.thread.join(30)
