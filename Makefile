# Two commands on a fresh machine (Python 3.10-3.12 with venv, gcc, Python headers):
#   make demo   set up .venv, then run the simulated training floor on a real clip
#   make test   set up .venv, then run the test suite
# The venv installs robot_capture non-editable with the [ros] (ROS 2 wheels from
# PyPI) and [test] extras. On a real ROS install use colcon instead (see README).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robot_capture-installed
SOURCES := setup.py setup.cfg package.xml $(shell find robot_capture launch config -type f -not -name '*.pyc' -not -name '*.so' 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean test-lerobot

venv: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[ros,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/robot-capture demo

# pytest (not `python -m pytest`) so that the installed package, with its built
# C extension, is what the tests import.
test: $(STAMP)
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# LeRobot verification of the exporter (issue 10), offline, in its own venv (.venv-lerobot:
# lerobot 0.4.4 + torch 2.14.1, several GB): record the demo, export it, then lerobot loads it,
# decodes every frame, and lerobot-train runs 2 ACT steps on it. See README "Export".
LEROBOT_DIR ?= build/lerobot_check
test-lerobot: $(STAMP)
	test/lerobot/setup_venv.sh
	rm -rf $(LEROBOT_DIR) && mkdir -p $(LEROBOT_DIR)
	# the demo exits 1 when a QA verdict is fail (a loaded machine starves the floor): the bags are there
	$(VENV)/bin/robot-capture demo --output-dir $(LEROBOT_DIR)/demo --episodes 3 --episode-seconds 3 || true
	test $$(ls $(LEROBOT_DIR)/demo/*/metadata.yaml | wc -l) = 3
	$(VENV)/bin/robot-capture export $(LEROBOT_DIR)/demo --include-failed --out $(LEROBOT_DIR)/dataset --no-progress
	.venv-lerobot/bin/python test/lerobot/verify.py $(LEROBOT_DIR)/dataset --train
	# the same episodes appended one export session at a time (one data/video/episodes file each)
	for b in $(LEROBOT_DIR)/demo/*/; do $(VENV)/bin/robot-capture export $$b --include-failed \
	    --out $(LEROBOT_DIR)/appended --no-progress | tail -1; done
	.venv-lerobot/bin/python test/lerobot/verify.py $(LEROBOT_DIR)/appended

bench: $(STAMP)
	$(PY) benchmarks/ik_bench.py
	$(PY) benchmarks/retarget_bench.py
	$(PY) benchmarks/recorder_throughput.py
	$(PY) benchmarks/qa_bench.py

clean:
	rm -rf build *.egg-info $(VENV) .venv-lerobot
