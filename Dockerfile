# CI image: ROS 2 Jazzy (ros-base, Ubuntu 24.04, Python 3.12) with robot_capture built by
# colcon from this checkout; its default command runs the test suite through colcon.
#
#   docker build -t robot_capture:ci .
#   docker run --rm --shm-size=1g -v /path/to/shared/data:/data:ro robot_capture:ci
#
# The real input data (URDFs, BVH clips) is not in the repository: mount it at /data.
# --shm-size: Fast DDS moves large messages (images) through /dev/shm; docker's 64 MB
# default is too small for the camera topics of the end-to-end tests and benchmarks.
FROM ros:jazzy-ros-base

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# System Python packages and the ROS interfaces robot_capture uses (package.xml
# exec_depends). launch_ros is in ros-base; it is listed so the real launch tests run.
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential python3-dev python3-pip \
        python3-colcon-common-extensions \
        python3-numpy python3-scipy python3-opencv python3-yaml python3-lz4 python3-zstandard python3-tqdm \
        python3-pytest python3-pytest-xdist python3-pytest-timeout python3-matplotlib \
        ros-jazzy-launch-ros \
        ros-jazzy-std-msgs ros-jazzy-std-srvs ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs \
        ros-jazzy-trajectory-msgs ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs \
        ros-jazzy-rosgraph-msgs \
    && rm -rf /var/lib/apt/lists/*

# Not in Ubuntu/ROS apt for Jazzy: from PyPI into the system Python. Never the ros-*
# wheels (the [ros] extra): they would shadow the system rclpy from /opt/ros/jazzy.
RUN pip3 install "mcap>=1.1" "mcap-ros2-support>=0.5" "rosbags>=0.9.20" "pydantic>=2.5" "tqdm>=4.60" \
        "pyarrow>=14" "av>=14" "zlib-ng>=0.4" pandas \
    # test-only packages of the [test] extra (Ray cluster, web console, fuzz tests). Ubuntu
    # 24.04 ships chromium only as a snap, which docker cannot run: the two headless-browser
    # tests skip in this image, saying why (they need /usr/bin/chromium; `make test` installs Debian's)
    && pip3 install hypothesis playwright "ray>=2.9" "starlette>=0.37" "uvicorn>=0.29" httpx

WORKDIR /ws
COPY . /ws/src/robot_capture
RUN rm -rf /ws/src/robot_capture/build /ws/src/robot_capture/*.egg-info \
    && . /opt/ros/jazzy/setup.sh \
    && colcon build --event-handlers console_direct+

ENV ROBOT_CAPTURE_DATA=/data

# colcon test runs pytest on the package (setup.cfg: testpaths = test) with the install
# space sourced; `colcon test-result` turns test failures into a non-zero exit.
CMD ["bash", "-c", ". /opt/ros/jazzy/setup.sh && . /ws/install/setup.sh && \
colcon test --event-handlers console_direct+ --pytest-args -n 2 --dist loadgroup && \
colcon test-result --verbose"]
