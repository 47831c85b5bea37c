"""`colcon build` and `colcon test` with colcon from PyPI (the [test] extra) and the [ros] wheels.

Builds the package into a temporary build/install space, checks the ament_python
layout that `ros2 run` / `launch_ros` need, imports robot_capture from the install
space (not the source tree), runs a node executable from `install/.../lib/robot_capture`
on real DDS, and runs `colcon test` + `colcon test-result` on one test module.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NODES = ["recorder_node", "player_node", "retarget_node", "mocap_replay_node", "robot_sim_node", "camera_node"]


def _colcon() -> str:
    exe = Path(sys.executable).parent / "colcon"
    assert exe.exists(), f"colcon not installed next to {sys.executable}: pip install '.[test]'"
    return str(exe)


def _colcon_run(verb, base, *extra, timeout=600):
    cmd = [_colcon(), "--log-base", str(base / "log"), verb, "--base-paths", str(REPO),
           "--build-base", str(base / "build"), "--install-base", str(base / "install"), *extra]
    return subprocess.run(cmd, cwd=base, capture_output=True, text=True, timeout=timeout)


def _sourced_env(install: Path) -> dict:
    """The environment after `. install/setup.sh` (what a ROS user does)."""
    out = subprocess.run(["bash", "-c", f". '{install}/setup.sh' && env -0"], capture_output=True,
                         check=True, env=os.environ.copy()).stdout
    env = dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)
    # keep the venv's ament index (message packages from the ROS wheels) after ours
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([env.get("AMENT_PREFIX_PATH", ""), sys.prefix]).strip(os.pathsep)
    # node executables start with `#!/usr/bin/env python3`: this interpreter first, as in an
    # activated venv (on a ROS install, the system python3 that has rclpy)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    base = tmp_path_factory.mktemp("colcon")
    res = _colcon_run("build", base)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return base


def test_install_layout(colcon_install):
    prefix = colcon_install / "install" / "robot_capture"
    assert (prefix / "share/ament_index/resource_index/packages/robot_capture").is_file()
    share = prefix / "share/robot_capture"
    for rel in ["package.xml", "launch/capture.launch.py", "launch/sim.launch.py", "config/floor.yaml"]:
        assert (share / rel).is_file(), rel
    for exe in NODES:
        path = prefix / "lib/robot_capture" / exe
        assert path.is_file() and os.access(path, os.X_OK), exe
    ext = list(prefix.glob("lib/python3*/site-packages/robot_capture/kinematics/_ik*.so"))
    assert ext, "the C IK extension was not built into the install space"


def test_imports_come_from_install_space(colcon_install):
    install = colcon_install / "install"
    env = _sourced_env(install)
    res = subprocess.run([sys.executable, "-c", "import robot_capture.floor.graph as g; print(g.__file__);"
                          "print(g.default_config_path())"],
                         cwd=colcon_install, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    mod_file, cfg = res.stdout.split()
    assert mod_file.startswith(str(install)), mod_file
    assert Path(cfg).is_file()


@pytest.mark.ros
def test_node_runs_from_install_space(colcon_install, data_dir):
    """Start robot_sim_node from install/lib/robot_capture and receive its /joint_states over DDS."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from ros_util import spin_until

    install = colcon_install / "install"
    env = _sourced_env(install)
    env["ROBOT_CAPTURE_DATA"] = str(data_dir)
    exe = install / "robot_capture/lib/robot_capture/robot_sim_node"
    proc = subprocess.Popen([str(exe), "--ros-args", "-r", "__node:=colcon_sim", "-p", "robot:=g1",
                             "-p", "rate_hz:=200.0"], cwd=colcon_install, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("colcon_probe", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    got = []
    node.create_subscription(JointState, "/joint_states", got.append, 10)
    try:
        ok = spin_until(ex, lambda: len(got) >= 20 or proc.poll() is not None, timeout=30.0)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert ok and len(got) >= 20, f"no /joint_states from the installed node; its output:\n{out}"
    assert len(got[0].name) == len(got[0].position) > 0
    assert proc.returncode == 0, out


def test_colcon_test_runs_the_package_tests(colcon_install):
    t0 = time.monotonic()
    res = _colcon_run("test", colcon_install, "--pytest-args", "-k", "test_floor_graph and not rclpy",
                      "-p", "no:cacheprovider")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert time.monotonic() - t0 < 300
    summary = subprocess.run([_colcon(), "test-result", "--test-result-base", str(colcon_install / "build")],
                             cwd=colcon_install, capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    # e.g. "Summary: 8 tests, 0 errors, 0 failures, 0 skipped"
    line = next(ln for ln in summary.stdout.splitlines() if ln.startswith("Summary:"))
    n_tests = int(line.split()[1])
    assert n_tests >= 5 and " 0 errors, 0 failures" in line, line


def test_dockerfile_provides_every_package_xml_dependency():
    """The CI image installs each exec/test dependency of package.xml (apt, pip or the base image)."""
    import re
    import xml.etree.ElementTree as ET

    docker = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM ros:jazzy", docker, re.M)
    base_image = {"rclpy", "launch", "launch_ros", "builtin_interfaces"}  # ros-base (ros_core)
    pip_names = {"python3-mcap": "mcap", "python3-mcap-ros2-support": "mcap-ros2-support",
                 "python3-rosbags": "rosbags"}
    root = ET.parse(REPO / "package.xml").getroot()
    deps = [e.text.strip() for e in root if e.tag in ("exec_depend", "depend", "test_depend")]
    assert deps
    missing = []
    for dep in deps:
        apt = dep if dep.startswith("python3-") else "ros-jazzy-" + dep.replace("_", "-")
        if dep in base_image or re.search(rf"\s{re.escape(apt)}\s", docker):
            continue
        if dep in pip_names and f'"{pip_names[dep]}' in docker:
            continue
        missing.append(dep)
    assert not missing, f"Dockerfile does not install package.xml dependencies {missing}"
    # and every install_requires of setup.py, as the apt package or from PyPI
    setup_py = (REPO / "setup.py").read_text()
    block = setup_py[setup_py.index("install_requires=["):]
    block = block[:block.index("]")]
    reqs = [re.split(r"[<>=!~ \[]", r)[0] for r in re.findall(r'"([^"]+)"', block)]
    apt_of = {"numpy": "python3-numpy", "scipy": "python3-scipy", "opencv-python-headless": "python3-opencv",
              "PyYAML": "python3-yaml", "lz4": "python3-lz4", "zstandard": "python3-zstandard",
              "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm"}
    uncovered = [r for r in reqs if not (r in apt_of and re.search(rf"\s{apt_of[r]}\s", docker))
                 and f'"{r}' not in docker]
    assert reqs and not uncovered, f"Dockerfile does not install setup.py install_requires {uncovered}"
    assert "--shm-size" in (REPO / ".github/workflows/ci.yml").read_text()
    # the image must never pip-install the ROS wheels over the system rclpy
    code = "\n".join(ln for ln in docker.splitlines() if not ln.lstrip().startswith("#"))
    assert "[ros" not in code and "ros-rclpy" not in code
