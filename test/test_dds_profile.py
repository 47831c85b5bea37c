"""The shipped Fast DDS profile (config/fastdds.xml, every floor process's default) interoperates
with participants on Fast DDS's defaults (the robot's own driver, a shell's `ros2 topic echo`),
both ways, with raw 640x480 camera frames. Loss figures under load: benchmarks/recorder_throughput.py."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robot_capture.floor import graph

PEER = Path(__file__).with_name("_dds_peer.py")
N = 20


def _env(profile: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in graph.DDS_ENV_VARS}
    if profile:
        env.update(graph.dds_environment(""))
    return env


@pytest.mark.ros
@pytest.mark.timeout(200)
@pytest.mark.parametrize("pub_profile,sub_profile", [(False, True), (True, False), (True, True)],
                         ids=["default-pub_to_profile-sub", "profile-pub_to_default-sub", "profile_both"])
def test_raw_frames_flow_between_profile_and_default_participants(pub_profile, sub_profile):
    sub = subprocess.Popen([sys.executable, str(PEER), "sub", str(N)], env=_env(sub_profile),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert sub.stdout.readline().strip() == "READY"
        pub = subprocess.run([sys.executable, str(PEER), "pub", str(N)], env=_env(pub_profile),
                             capture_output=True, text=True, timeout=150)
        out, _ = sub.communicate(timeout=100)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert f"SUB {N}" in out, (out, pub.stdout, pub.stderr)
    assert f"PUB {N} acked=True" in pub.stdout, (pub.stdout, pub.stderr)
    assert "Error" not in pub.stderr and "XMLPARSER" not in pub.stderr, pub.stderr  # the profile parses
