"""The operator console against a running simulated floor (issue 8, "Must show").

One floor (mocap_replay on a real clip -> retarget -> robot_sim, a synthetic head camera,
the recorder) serves the module:

* ``test_keys_console_through_a_pty``: `robot-capture console --keys` in a pseudo-terminal:
  space starts, s stops with success, u discards the last episode, an unmapped key is
  answered, q quits;
* ``test_session_of_20_episodes_through_the_cli``: 20 consecutive ~1 s episodes driven by
  `robot-capture episode` verbs (success, fail, discard, discard-last): every kept bag is
  complete, none lost or duplicated, the recorder's counters match the folders on disk;
* the module's floor is a real `robot-capture up --sim --status-every 2`: it prints the
  "floor ready" line and status lines, keeps running when the (optional) camera is killed,
  and exits 1 when a required node (retarget) is killed at the end;
* ``test_web_console_in_headless_chromium``: Debian's chromium (Playwright, no browser
  download; skipped, saying why, only where it is not installed): the tally turns red on
  start, a click on "success" stops with that label, a hostile task from the form is refused
  and changes nothing, a killed camera stream shows not ready (the time it took is printed); a
  request without the token on a non-loopback bind gets 401 and changes nothing. Saves
  ``console_session.png`` (test artifact; docs/console.png comes from a real session, not from
  a test's temporary folder).
"""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from robot_capture.floor import graph

import _browser

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.xdist_group("sim_floor"), pytest.mark.timeout(300)]

# a bound for the page to show a state change on a starved machine, never a speed figure
UI_WAIT_MS = 30_000


def _exe() -> str:
    return str(Path(sys.executable).parent / "robot-capture")


def _log_tail(path: Path, n=60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no log)"


class UpProcess:
    """`robot-capture up --sim ... --status-every 2` as a user runs it; output in ``log``."""

    def __init__(self, config: Path, out_dir: Path, log: Path):
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen([_exe(), "up", str(config), "--sim", "--output-dir", str(out_dir),
                                      "--status-every", "2"], stdout=self._fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")

    def pid(self, node: str) -> int:
        import re

        m = re.search(rf"\[up\] started {node} \(pid (\d+)\)", self.text())
        assert m, self.text()
        return int(m.group(1))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self._fh.close()


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    """The sim floor under a real `robot-capture up`; yields (out_dir, up, client, log path)."""
    import yaml

    from robot_capture.floor.client import EpisodeClient

    tmp = tmp_path_factory.mktemp("console_floor")
    out_dir = tmp / "episodes"
    cfg = {k: v for k, v in graph.load_config(None).items() if not k.startswith("_")}
    cfg["nice"] = -5
    cfg["robot"] = "g1"
    cfg["episode"].update(tasks=["pick cup", "pour water"], operator="pytest")
    # These tests are about the console, not about timing: on a loaded 2-core box the retarget
    # node holds (input > 100 ms old) and its rate falls far below 100 Hz, which the manager
    # rightly refuses at the default 0.5; silence (1 s) is still judged at the default.
    cfg["parameters"] = {"recorder": {"min_rate_fraction": 0.05, "stream_lost_s": 5.0}}
    config = tmp / "floor.yaml"
    config.write_text(yaml.safe_dump(cfg))
    log_path = tmp / "up.log"
    up = UpProcess(config, out_dir, log_path)
    client = EpisodeClient(discovery_timeout_s=60.0, timeout_s=20.0, node_name="console_floor_test")
    try:
        end = time.monotonic() + 90
        s = client.status()
        while not s["ready"] and time.monotonic() < end:
            client.spin_for(0.5)
            s = client.status()
        assert s["ready"], (s["reasons"], _log_tail(log_path))
        yield out_dir, up, client, log_path
        # `up` said the floor was ready, and keeps a status line going
        end = time.monotonic() + 20
        while "[up] status:" not in up.text() and time.monotonic() < end:
            time.sleep(0.2)
        text = up.text()
        assert "[up] floor ready: 5/5 nodes up" in text and "[up] status: nodes" in text, _log_tail(log_path)
        # a required node dies: `up` shuts the floor down and exits non-zero
        os.kill(up.pid("retarget"), signal.SIGKILL)
        assert up.proc.wait(60) == 1, _log_tail(log_path)
        assert "required node(s) retarget gone" in up.text()
    finally:
        client.close()
        up.stop()


def _wait(client, pred, timeout=15.0):
    end = time.monotonic() + timeout
    s = client.status()
    while not pred(s) and time.monotonic() < end:
        client.spin_for(0.2)
        s = client.status()
    return s


def _recording_for(client, seconds: float) -> None:
    """Wait (on the recorder's state, not a sleep) until the open episode is ``seconds`` long."""
    s = _wait(client, lambda s: s["state"] == "recording" and s["elapsed_s"] >= seconds, timeout=60.0)
    assert s["state"] == "recording" and s["elapsed_s"] >= seconds, s


def _kept(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir() if p.is_dir() and p.name != "discarded")


def _discarded(out_dir: Path) -> list[Path]:
    d = out_dir / "discarded"
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


# ----------------------------------------------------------------------------- keys


def test_keys_console_through_a_pty(floor):
    from robot_capture.episodes import load_episode

    out_dir, up, client, log_path = floor
    before = client.status()["counters"]
    master, slave = pty.openpty()
    proc = subprocess.Popen([_exe(), "console", "--keys"], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    buf = bytearray()

    def read_until(needle: bytes, timeout=30.0) -> bool:
        end = time.monotonic() + timeout
        while needle not in buf and time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    buf.extend(os.read(master, 4096))
                except OSError:
                    break
        return needle in buf

    try:
        assert read_until(b"READY"), buf.decode(errors="replace")
        os.write(master, b" ")  # start
        s = _wait(client, lambda s: s["state"] == "recording")
        assert s["state"] == "recording", buf.decode(errors="replace")
        assert read_until(b"RECORDING"), buf.decode(errors="replace")
        client.spin_for(1.0)
        os.write(master, b"s")  # stop, success
        s = _wait(client, lambda s: s["state"] == "review")
        bag = Path(s["last"]["path"])
        assert load_episode(bag).success is True and read_until(b"success: " + str(bag).encode())
        os.write(master, b"z")  # not mapped: answered, nothing changes
        assert read_until(b"not mapped")
        os.write(master, b"u")  # undo: discard the last episode
        s = _wait(client, lambda s: s["counters"]["discarded"] == before["discarded"] + 1)
        assert (out_dir / "discarded" / bag.name).is_dir() and not bag.exists()
        os.write(master, b"q")
        assert proc.wait(20) == 0, buf.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)


# ----------------------------------------------------------------------------- session


def _episode_cli(*args):
    """`robot-capture episode ...` in this process (argv parsing, the verb's run, its exit code and
    output), so 45 calls do not pay 45 interpreter start-ups; the executable itself is driven
    by test_console_node.py and the keys test."""
    import contextlib
    import io

    from robot_capture.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["episode", *args])
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def test_session_of_20_episodes_through_the_cli(floor):
    from robot_capture.bag import BagReader
    from robot_capture.episodes import load_episode

    out_dir, up, client, log_path = floor
    c0 = client.status()["counters"]
    kept0, disc0 = len(_kept(out_dir)), len(_discarded(out_dir))
    started, plan, refused = [], [], []
    t0 = time.monotonic()
    for i in range(20):
        for attempt in range(3):  # an operator retries a refused start once the tally is green
            assert _wait(client, lambda s: s["ready"], timeout=30)["ready"]
            r = _episode_cli("start", "--task", f"session {i}")
            if r.returncode == 0 or "not starting" not in r.stderr:
                break
            refused.append(r.stderr.strip())
        assert r.returncode == 0, (i, r.stderr, _log_tail(log_path))
        started.append(Path(r.stdout.strip()))
        time.sleep(1.0)
        verb = ["success", "fail", "discard", "success", "stop"][i % 5]
        r = _episode_cli(verb)
        assert r.returncode == 0, (i, verb, r.stderr)
        if i == 13:  # an undo in the middle of the session
            r = _episode_cli("discard-last")
            assert r.returncode == 0, r.stderr
            verb = "discard-last"
        plan.append(verb)
    wall = time.monotonic() - t0
    s = client.status()
    c = s["counters"]
    want_discarded = sum(1 for v in plan if v in ("discard", "discard-last"))
    kept, discarded = _kept(out_dir), _discarded(out_dir)
    print(f"20 episodes through the CLI in {wall:.1f} s; counters {c}; starts refused and retried: {refused}")
    assert len(set(started)) == 20  # no duplicate episode
    assert c["kept"] - c0["kept"] == 20 - want_discarded == len(kept) - kept0
    assert c["discarded"] - c0["discarded"] == want_discarded == len(discarded) - disc0
    assert c["success"] - c0["success"] == plan.count("success")
    assert c["failure"] - c0["failure"] == plan.count("fail")
    on_disk = {p.name for p in kept} | {p.name for p in discarded}
    assert all(p.name in on_disk for p in started)  # nothing lost
    topics = set(graph.expected_topics(graph.build(None, sim=True)))
    for p, verb in zip(started, plan):
        if verb in ("discard", "discard-last"):
            assert (out_dir / "discarded" / p.name).is_dir()
            continue
        ep = load_episode(p)
        assert ep.success is {"success": True, "fail": False, "stop": None}[verb], (p, verb)
        r = BagReader(p)  # complete: readable, metadata agrees with the files
        assert topics <= set(r.topics), (p, topics - set(r.topics))
        assert r.topics["/joint_states"].count > 100 and ep.stop_reason == "stopped"


# ----------------------------------------------------------------------------- web


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, method="GET", body=None, headers=None):
    """One request; a POST carries the page's token (X-RC-CSRF) as the page does."""
    headers = dict(headers or {})
    if method == "POST":
        import re

        root = url.split("/api/")[0] + "/"
        try:
            with urllib.request.urlopen(urllib.request.Request(root, headers=headers), timeout=20) as r:
                headers["X-RC-CSRF"] = re.search(r'name="rc-csrf" content="([^"]+)"', r.read().decode()).group(1)
        except urllib.error.HTTPError:
            pass  # no page without the token: the POST goes without one
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _web(port, *extra):
    proc = subprocess.Popen([_exe(), "console", "--web", "--port", str(port), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode(errors="replace"))
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("web console did not come up")


@pytest.mark.skipif(bool(_browser.MISSING), reason=_browser.MISSING or "-")
def test_web_console_in_headless_chromium(floor, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from robot_capture.episodes import load_episode

    out_dir, up, client, log_path = floor
    port, port2 = _free_port(), _free_port()
    web = _web(port)
    guarded = _web(port2, "--host", "0.0.0.0", "--token", "floor-token-123")
    try:
        # ---- a non-loopback bind: no token -> 401, and nothing changes
        state0 = client.status()
        code, body = _request(f"http://127.0.0.1:{port2}/api/command/start", "POST")
        assert code == 401, body
        assert _request(f"http://127.0.0.1:{port2}/api/state")[0] == 401
        assert _request(f"http://127.0.0.1:{port2}/api/state?token=wrong-token")[0] == 401
        assert client.status()["state"] == state0["state"] != "recording"
        code, body = _request(f"http://127.0.0.1:{port2}/api/state",
                              headers={"Authorization": "Bearer floor-token-123"})
        assert code == 200 and "state" in body and "reasons" in body, body
        code, body = _request(f"http://127.0.0.1:{port}/api/command/strat", "POST")  # unknown command
        assert code == 404 and "did you mean 'start'" in body["reply"], body
        code, body = _request(f"http://127.0.0.1:{port}/api/command/discard", "POST")  # nothing to discard
        assert code == 409 and "no episode is recording" in body["reply"], body
        code, body = _request(f"http://127.0.0.1:{port}/api/labels", "POST", {"task": "x" * 500})
        assert code == 400 and "at most 200" in body["reply"], body

        with sync_playwright() as p:
            browser = _browser.launch(p)
            page = browser.new_page(viewport={"width": 1100, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            tally = page.locator("#tally")
            expect(tally).to_have_class("green", timeout=UI_WAIT_MS)
            # hostile task from the form: refused with a clear reply, the task is unchanged
            task0 = client.status()["task"]
            page.fill("#task", "../../etc/passwd\u0000\u001b[2J")
            page.click("#btn-labels")
            expect(page.locator("#reply")).to_contain_text("control characters are not allowed", timeout=UI_WAIT_MS)
            assert client.status()["task"] == task0
            hostile = "<img src=x onerror=alert(1)> ../../web task"
            page.fill("#task", hostile)
            page.click("#btn-labels")
            expect(page.locator("#reply")).to_contain_text("task=", timeout=UI_WAIT_MS)
            assert _wait(client, lambda s: s["task"] == hostile)["task"] == hostile
            expect(page.locator("#current")).to_contain_text(hostile, timeout=UI_WAIT_MS)
            assert page.locator("img").count() == 0  # shown as text, never as HTML
            page.fill("#task", "pour water")
            page.fill("#notes", "left hand, cup on the mark")
            page.click("#btn-labels")
            assert _wait(client, lambda s: s["task"] == "pour water")["task"] == "pour water"
            # a first episode through the page (so the screenshot shows counters and its QA verdict)
            page.click("#btn-toggle")
            expect(tally).to_have_class("red", timeout=UI_WAIT_MS)
            _recording_for(client, 1.0)
            page.click("#btn-failure")
            expect(page.locator("#last")).to_contain_text("failure", timeout=UI_WAIT_MS)
            expect(tally).to_have_class("green", timeout=UI_WAIT_MS)
            # start -> red; click success -> stopped with that label
            page.click("#btn-toggle")
            expect(tally).to_have_class("red", timeout=UI_WAIT_MS)
            _recording_for(client, 1.5)
            expect(tally).to_have_attribute("data-state", "recording", timeout=UI_WAIT_MS)
            shot = _browser.screenshot(page)
            (tmp_path / "console_session.png").write_bytes(shot)
            page.click("#btn-success")
            expect(tally).not_to_have_class("red", timeout=UI_WAIT_MS)
            s = _wait(client, lambda s: s["state"] == "review")
            bag = Path(s["last"]["path"])
            ep = load_episode(bag)
            assert ep.success is True and ep.task == "pour water" and bag.parent == out_dir.resolve()
            expect(page.locator("#last")).to_contain_text("success", timeout=UI_WAIT_MS)
            # a stream killed mid-session shows as not ready
            os.kill(up.pid("camera_head"), signal.SIGKILL)
            end = time.monotonic() + 10
            while "node camera_head exited unexpectedly" not in up.text() and time.monotonic() < end:
                time.sleep(0.05)
            t_kill = time.monotonic()
            expect(tally).to_have_class("amber", timeout=UI_WAIT_MS)
            expect(page.locator('#streams tr[data-topic="/camera/head/image_raw"]')).not_to_have_attribute(
                "data-status", "ok", timeout=UI_WAIT_MS)
            took = time.monotonic() - t_kill  # a figure, not asserted (issue 8's 3 s: benchmarks, not tests)
            print(f"killed camera stream shown as not ready after {took:.2f} s")
            why = "head camera (/camera/head/image_raw, camera_head node) silent"  # the contract's name first
            expect(page.locator("#tally-why")).to_contain_text(why, timeout=UI_WAIT_MS)
            browser.close()
        assert len(shot) > 10_000
    finally:
        for proc in (web, guarded):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
