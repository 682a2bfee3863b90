# Melon Hall's command line. `make run` brings up the hall; `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := contracts services/ingest services/pricing services/dispatch deploy/devkit
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))
BOOTSTRAP ?= 127.0.0.1:9092

.PHONY: setup browser run stop test lint format unit e2e bench soak kafka-up kafka-down kafka-status topics schemas lock clean

setup: $(STAMP)

$(STAMP): requirements.lock $(PYPROJECTS)
	@command -v $(PYTHON) >/dev/null || { echo "Melon Hall needs $(PYTHON) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
		$(addprefix -e ,$(PACKAGES))
	@touch $@

# The page tests drive Debian's Chromium; Playwright never downloads a browser here.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
		echo "installing Debian's chromium package for the page tests ..."; \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; \
		test -x $(CHROMIUM) || { echo "could not install chromium; page tests need it"; exit 1; }; }

run: setup
	$(BIN)/python -m melon_devkit.hall run

stop: setup
	$(BIN)/python -m melon_devkit.hall stop

test: lint browser
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest -m "not e2e"

e2e: setup
	$(BIN)/python -m pytest -m e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy contracts/src services/ingest/src services/pricing/src services/dispatch/src deploy/devkit/src
	$(BIN)/python -m melon_contracts.schemas --check contracts/schemas

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks measure, tests assert: nothing here is checked against a threshold.
bench: setup
	$(BIN)/python -m melon_devkit.kafka up
	$(BIN)/melon-topics --bootstrap $(BOOTSTRAP)
	@mkdir -p var/bench
	$(BIN)/python bench/bench_gateway.py --bootstrap $(BOOTSTRAP) --json var/bench/gateway.json
	$(BIN)/python bench/bench_matching.py --json var/bench/matching.json
	$(BIN)/python bench/bench_recovery.py --json var/bench/recovery.json
	$(BIN)/python bench/bench_loads.py --json var/bench/loads.json
	$(BIN)/python bench/bench_loads.py --trucks 70 --json var/bench/loads-balanced.json
	$(BIN)/python bench/bench_baselines.py --bootstrap $(BOOTSTRAP) --json var/bench/baselines.json
	# The fan-out bench writes board lines; on its own broker they stay off the hall's board.
	$(BIN)/python bench/bench_fanout.py --json var/bench/fanout.json
	# More and quicker scales than any hall has, so that the hall, not its scales, runs out first.
	$(BIN)/python bench/bench_pipeline.py --stations 64 --settle-s 0.3 --window-ms 500 \
		--min-rate 2 --max-rate 48 --baselines var/bench/baselines.json \
		--profile var/bench/profile --json var/bench/pipeline.json
	@$(MAKE) --no-print-directory browser
	$(BIN)/python bench/plot.py --dir var/bench

# A trading day while every service and the broker are SIGKILLed and started again, then every
# acknowledged operation looked for on the topics; its own broker and hall in var/soak/.
soak: setup
	$(BIN)/python -m melon_devkit.soak --json var/soak/soak.json

kafka-up: setup
	$(BIN)/python -m melon_devkit.kafka up

kafka-down: setup
	$(BIN)/python -m melon_devkit.kafka down

kafka-status: setup
	$(BIN)/python -m melon_devkit.kafka status

topics: setup
	$(BIN)/melon-topics --bootstrap $(BOOTSTRAP)

schemas: setup
	$(BIN)/python -m melon_contracts.schemas contracts/schemas

lock: setup
	$(BIN)/uv pip compile --python-version 3.11 --generate-hashes --quiet requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) var
