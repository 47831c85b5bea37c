# Two commands on a fresh machine (Python 3.10-3.12 with venv, gcc, Python headers):
#   make demo   set up .venv, then run the simulated training floor on a real clip
#   make test   set up .venv (and, as root with apt-get, Debian's chromium for the two
#               headless-browser tests), then run the test suite
# The venv installs robot_capture non-editable with the [ros] (ROS 2 wheels from
# PyPI) and [test] extras. On a real ROS install use colcon instead (see README).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robot_capture-installed
SOURCES := setup.py setup.cfg package.xml $(shell find robot_capture launch config -type f -not -name '*.pyc' -not -name '*.so' 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean test-lerobot venv-jazzy test-jazzy browser iwer

venv: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[ros,test]'
	touch $(STAMP)

# The same package on ROS 2 Jazzy (most floors run it): the ros-jazzy-* wheels from PyPI
# (rclpy 7.1.6, Fast DDS 2.14) instead of the [ros] extra's Kilted ones, in .venv-jazzy.
# test-jazzy runs the ROS-facing tests there (recorder, player, console, retarget node, floor);
# .ci/run runs it after `make test`.
VENV_JAZZY ?= .venv-jazzy
PY_JAZZY := $(VENV_JAZZY)/bin/python
STAMP_JAZZY := $(VENV_JAZZY)/.robot_capture-installed
JAZZY_WHEELS := 'ros-jazzy-rclpy[fastrtps]==7.1.6' ros-jazzy-rmw-fastrtps-cpp ros-jazzy-std-msgs \
	ros-jazzy-std-srvs ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs ros-jazzy-trajectory-msgs \
	ros-jazzy-diagnostic-msgs ros-jazzy-visualization-msgs ros-jazzy-rosgraph-msgs
JAZZY_TESTS ?= test/test_recorder_node.py test/test_recorder_node_crash.py test/test_player.py \
	test/test_console_node.py test/test_console_floor.py test/test_episode_socket.py \
	test/test_retarget_node.py test/test_dds_profile.py test/test_floor_graph.py test/test_e2e_floor.py

venv-jazzy: $(STAMP_JAZZY)

$(STAMP_JAZZY): $(SOURCES)
	test -x $(PY_JAZZY) || $(PYTHON) -m venv $(VENV_JAZZY)
	$(PY_JAZZY) -m pip install --quiet --upgrade pip
	$(PY_JAZZY) -m pip install --quiet '.[test]' $(JAZZY_WHEELS)
	$(PY_JAZZY) -c "import rclpy, importlib.metadata as m; print('jazzy venv: rclpy', m.version('ros-rclpy'))"
	touch $(STAMP_JAZZY)

test-jazzy: $(STAMP_JAZZY)
	$(VENV_JAZZY)/bin/pytest -n 2 --dist loadgroup $(JAZZY_TESTS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/robot-capture demo

# pytest (not `python -m pytest`) so that the installed package, with its built
# C extension, is what the tests import.
test: $(STAMP) browser iwer
	ROBOT_CAPTURE_IWER=$${ROBOT_CAPTURE_IWER:-$(IWER_DIR)/node_modules/iwer/build} \
	  $(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The browser tests (web console, QA report) drive Debian's headless Chromium through Playwright
# (never `playwright install`: no browser download). Installed here when missing and we may
# (root, apt-get); elsewhere those tests skip and say why (test/_browser.py).
# ROBOT_CAPTURE_CHROMIUM names another Chromium build for the tests (nothing is installed then).
# The headset browser test (test/test_xr_browser.py) gives Chromium an emulated Meta Quest 3 with
# iwer (npm, Meta's WebXR emulation runtime), installed here under build/ (never committed) when
# npm is present; ROBOT_CAPTURE_IWER names another build folder of it.
IWER_DIR ?= build/iwer
IWER_VERSION ?= 2.5.0
iwer:
	@if [ -n "$$ROBOT_CAPTURE_IWER" ] || [ -f $(IWER_DIR)/node_modules/iwer/build/iwer.module.js ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  echo "make: installing iwer $(IWER_VERSION) (npm) for the headset browser test"; \
	  mkdir -p $(IWER_DIR) && npm install --silent --no-audit --no-fund --prefix $(IWER_DIR) iwer@$(IWER_VERSION) >/dev/null \
	    || { echo "make: npm install iwer failed: see above" >&2; exit 1; }; \
	else \
	  echo "make: no npm: the headset browser test will skip (it needs iwer)"; \
	fi

CHROMIUM ?= $(if $(ROBOT_CAPTURE_CHROMIUM),$(ROBOT_CAPTURE_CHROMIUM),/usr/bin/chromium)
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing Debian's chromium for the browser tests (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || { echo "make: apt-get install chromium failed: see above" >&2; exit 1; }; \
	else \
	  echo "make: no $(CHROMIUM), and installing it needs root and apt-get: the 2 browser tests will skip"; \
	fi

# LeRobot verification of the exporter (issues 10, 22), offline, each lerobot in its own venv
# (several GB each): .venv-lerobot (lerobot 0.4.4, Python 3.11, torch 2.14.1) and .venv-lerobot06
# (lerobot 0.6.1, Python 3.12, torch 2.11.0). Record the demo, export it once, then each lerobot
# loads it, decodes every frame, and lerobot-train runs 2 ACT steps on it; lerobot 0.6.1 also
# deletes an episode and splits the dataset with lerobot-edit-dataset and checks the results.
# See README "Verified by lerobot".
LEROBOT_DIR ?= build/lerobot_check
LEROBOT044 := .venv-lerobot/bin/python test/lerobot/verify.py
LEROBOT061 := .venv-lerobot06/bin/python test/lerobot/verify.py
test-lerobot: $(STAMP)
	test/lerobot/setup_venv.sh 0.4.4
	test/lerobot/setup_venv.sh 0.6.1
	rm -rf $(LEROBOT_DIR) && mkdir -p $(LEROBOT_DIR)
	# the demo exits 1 when a QA verdict is fail (a loaded machine starves the floor): the bags are there
	$(VENV)/bin/robot-capture demo --output-dir $(LEROBOT_DIR)/demo --episodes 3 --episode-seconds 3 || true
	test $$(ls $(LEROBOT_DIR)/demo/*/metadata.yaml | wc -l) = 3
	$(VENV)/bin/robot-capture export $(LEROBOT_DIR)/demo --include-failed --out $(LEROBOT_DIR)/dataset --no-progress
	$(LEROBOT044) $(LEROBOT_DIR)/dataset --train --out $(LEROBOT_DIR)/train044
	$(LEROBOT061) $(LEROBOT_DIR)/dataset --train --out $(LEROBOT_DIR)/train061 --edit $(LEROBOT_DIR)/edited061
	# the same episodes appended one export session at a time (one data/video/episodes file each)
	for b in $(LEROBOT_DIR)/demo/*/; do $(VENV)/bin/robot-capture export $$b --include-failed \
	    --out $(LEROBOT_DIR)/appended --no-progress | tail -1; done
	$(LEROBOT044) $(LEROBOT_DIR)/appended
	$(LEROBOT061) $(LEROBOT_DIR)/appended --edit $(LEROBOT_DIR)/appended_edited061

bench: $(STAMP)
	$(PY) benchmarks/ik_bench.py
	$(PY) benchmarks/retarget_bench.py
	$(PY) benchmarks/recorder_throughput.py
	$(PY) benchmarks/qa_bench.py

clean:
	rm -rf build *.egg-info $(VENV) $(VENV_JAZZY) .venv-lerobot .venv-lerobot06
