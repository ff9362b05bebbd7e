# Quick start: `make run` (set up, launch the main dataflow) and `make test` (set up, run every check).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATAFLOW ?= dataflows/follow_line.yml
VIEW ?= --view  # the live web view beside the run; VIEW= for none

STUBS := $(VENV)/stubs/rp2

.PHONY: setup run test unit test-deps pytest lint typecheck typecheck-firmware contracts docs docs-serve bench models clean

$(BIN)/python:
	@echo "setting up: creating the virtual environment $(VENV) with $(PYTHON) (once)"
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml setup.py car/compat/dora/_sample_buffer.c | $(BIN)/python
	@echo "setting up: installing car and its dependencies (pyzmq, numpy, OpenCV, ...) into $(VENV); about a minute, once"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	@echo "setting up: done"
	touch $(INSTALLED)

setup: $(INSTALLED)

run: setup
	$(BIN)/car launch $(DATAFLOW) $(VIEW) $(ARGS)

# the checks and the tests' own needs side by side (test-deps waits on the network, mypy on a core), then pytest
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck typecheck-firmware contracts docs test-deps
	$(MAKE) --no-print-directory pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

# The documentation site (docs/, mkdocs.yml), built strictly: a broken link, a missing page or a docstring that does
# not render fails it. The CLI reference is made from the command table at each build (docs/hooks.py).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# MicroPython's stubs go into a folder of their own: two boards' stubs would overwrite
# each other's machine.pyi, and they must not shadow CPython's standard library.
$(STUBS)/machine.pyi: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps --target $(STUBS) \
		'micropython-rp2-rpi-pico-stubs~=1.29.0' 'micropython-stdlib-stubs~=1.29.0'

# the firmware, and the board emulator's code that runs on the MicroPython VM (sim/vm)
typecheck-firmware: setup $(STUBS)/machine.pyi
	cd firmware && MYPYPATH=$(abspath $(STUBS)) $(abspath $(BIN))/mypy --config-file mypy.ini \
		--custom-typeshed-dir $(abspath $(STUBS)) *.py
	cd sim/vm && MYPYPATH=$(abspath $(STUBS)) $(abspath $(BIN))/mypy --config-file $(abspath firmware/mypy.ini) \
		--custom-typeshed-dir $(abspath $(STUBS)) *.py

# What some tests need beyond Python packages: Debian's strace and chromium (apt-get, when this is Debian and it
# may), and the comparison peers dora and iceoryx2 (each in a venv of its own under bench/). Nothing here fails the
# build: a test that lacks one says why when it skips.
test-deps: setup
	$(BIN)/python tests/debian.py
	$(BIN)/python bench/peers/install.py

# the whole suite, on two workers (each with runtime folders of its own: tests/conftest.py); JOBS=1 for one
JOBS ?= 2
pytest: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

# the unit tier alone: no process, no socket, well under 90 s (the loop to run after every change)
unit: setup
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

# The shipped learned pilots, rebuilt from scratch: the simulator's expert drives (with noise, in randomised
# scenes), and a network is trained on what it recorded; seeded, so the same models come out. The training tracks are
# sim/tracks/'s; tests/fixtures/tracks/ are held out for judging them. About 10 minutes on 2 cores.
MODELS_DATA ?= out/models
models: setup
	mkdir -p $(MODELS_DATA) models
	$(BIN)/car collect --track lane_oval --track lane_curves --track lane_loop --laps 2 --episodes 4 \
		--noise 1.0 --randomize --seed 100 -o $(MODELS_DATA)/lane.mcap
	$(BIN)/car train $(MODELS_DATA)/lane.mcap -o models/lane.onnx --epochs 30 --seed 0
	$(BIN)/car collect --track oval --track s_curves --track hairpins --track figure8 --laps 2 --episodes 3 \
		--noise 1.0 --randomize --seed 200 -o $(MODELS_DATA)/line.mcap
	$(BIN)/car train $(MODELS_DATA)/line.mcap -o models/line.onnx --epochs 30 --seed 0

bench: setup
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/footprint.py
	$(BIN)/python bench/timers.py
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/perception.py
	$(BIN)/python bench/pilots.py
	$(BIN)/python bench/loop_latency.py
	$(BIN)/python bench/wire_cost.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/board_link.py

clean:
	rm -rf $(VENV) out site .pytest_cache .mypy_cache .ruff_cache *.egg-info build car/compat/dora/*.so
