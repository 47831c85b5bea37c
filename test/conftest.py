"""Test-wide set-up.

* Each test process (each xdist worker) gets its own ROS_DOMAIN_ID, so DDS
  tests in parallel processes, or in parallel checkouts, never see each other.
* ROS logs go to a temporary directory, never ~/.ros/log.
* AMENT_PREFIX_PATH points at the venv when the ROS wheels are installed there.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Set before anything imports rclpy. pid-based so that concurrent pytest runs differ too.
os.environ["ROS_DOMAIN_ID"] = str(1 + (os.getpid() * 7919) % 200)
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="rc_roslog_"))
os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")

from robot_capture.ros_env import ensure_ament_prefix  # noqa: E402

ensure_ament_prefix()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-data folder (../shared/data)."""
    from robot_capture.paths import data_dir as _data_dir

    return _data_dir()


@pytest.fixture(scope="session")
def g1_urdf(data_dir) -> Path:
    return data_dir / "robots" / "unitree_g1" / "g1_29dof_rev_1_0.urdf"


@pytest.fixture
def ros_node(request):
    """An rclpy node in its own context with a SingleThreadedExecutor: ``(node, executor)``.

    For DDS tests (mark them ``ros``); torn down after the test.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"test_{request.node.name}".replace("[", "_").replace("]", "").replace("-", "_")[:60],
                             context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    yield node, ex
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def pytest_report_header(config):
    return f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} python={sys.version.split()[0]}"
