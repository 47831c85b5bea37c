"""The launch files' shutdown order (issue 18 W4), without a ROS install.

``robot_capture.floor.ros_launch.stop_recorder_first`` is the ``OnShutdown`` callable the
launch description registers after the nodes (launch calls it before the nodes' own
shutdown handlers, which SIGINT every process at once). Here it runs against a real
process that behaves like the recorder (holds its output folder lock, closes its episode
0.5 s after SIGINT, then stays up as if finishing its QA) and launch-shaped event/context
objects (``Shutdown.due_to_sigint``, ``LaunchContext.noninteractive``,
``ExecuteLocal.process_details``).
"""
from __future__ import annotations

import subprocess
import sys
import time
import types

import pytest

from robot_capture.floor import launcher, ros_launch
from robot_capture.floor.graph import NodeSpec

RECORDER = """
import fcntl, os, signal, sys, time
out, marker = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(out, ".recorder.lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
open(marker + ".ready", "w").close()
while not got:
    time.sleep(0.01)
time.sleep(0.5)                      # closing the episode
with open(marker, "w") as f:
    f.write(str(time.time_ns()))
os.close(fd)                         # the output folder lock: the episode is closed
time.sleep(60)                       # the QA of the episode
"""


@pytest.fixture
def recorder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "closed"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(out), str(marker)])
    deadline = time.monotonic() + 30
    while not (tmp_path / "closed.ready").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    spec = NodeSpec(role="recorder", name="recorder", executable="recorder_node",
                    module="robot_capture.nodes.recorder_node", parameters={"output_dir": str(out)},
                    shutdown_timeout_s=15.0)
    action = types.SimpleNamespace(process_details={"pid": proc.pid, "name": "recorder"})
    yield proc, spec, action, marker
    proc.kill()
    proc.wait()


def test_launch_signals_the_recorder_first_and_waits_for_its_episode(recorder):
    proc, spec, action, marker = recorder
    handler = ros_launch.stop_recorder_first(action, spec)
    # a Shutdown launch turns into signals (a required node exited, or a --noninteractive launch)
    assert handler(types.SimpleNamespace(due_to_sigint=False), types.SimpleNamespace(noninteractive=False)) is None
    returned_ns = time.time_ns()
    assert marker.exists(), "the handler returned before the recorder closed its episode"
    assert int(marker.read_text()) <= returned_ns
    assert proc.poll() is None  # it does not wait for the recorder's exit (its QA), only for the episode
    assert launcher.episode_closed(spec.parameters["output_dir"], lambda: True)


def test_after_a_terminal_ctrl_c_the_handler_leaves_the_signals_alone(recorder):
    proc, spec, action, marker = recorder
    handler = ros_launch.stop_recorder_first(action, spec)
    # the terminal signalled every node of the group already; launch sends no SIGINT (due_to_sigint)
    assert handler(types.SimpleNamespace(due_to_sigint=True), types.SimpleNamespace(noninteractive=False)) is None
    time.sleep(0.7)
    assert not marker.exists() and not launcher.episode_closed(spec.parameters["output_dir"], lambda: True)
    # --noninteractive: launch signals the nodes itself, so the handler orders them
    handler(types.SimpleNamespace(due_to_sigint=True), types.SimpleNamespace(noninteractive=True))
    assert marker.exists()


def test_a_recorder_that_is_gone_or_never_started_is_skipped(tmp_path):
    spec = NodeSpec(role="recorder", name="recorder", executable="recorder_node",
                    module="robot_capture.nodes.recorder_node", parameters={"output_dir": str(tmp_path)},
                    shutdown_timeout_s=15.0)
    event, ctx = types.SimpleNamespace(due_to_sigint=False), types.SimpleNamespace(noninteractive=False)
    for details in (None, {}, {"pid": 2 ** 22 + 7}):  # not started; no pid; above the default pid_max: gone
        action = types.SimpleNamespace(process_details=details)
        assert ros_launch.stop_recorder_first(action, spec)(event, ctx) is None
