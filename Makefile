# PulsarDB developer commands. Every target creates/updates .venv itself, so a fresh clone needs
# nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit integration lint bench bench-full bench-peers clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/pulsar standalone --data-dir ./data --port 8080

test: $(STAMP) lint
	$(BIN)/python -m pytest tests/unit tests/integration

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks (bench/, report in docs/benchmarks.md). Peers that are not installed are reported
# as such; `make bench-peers` installs them from Debian's packages.
bench: $(STAMP)
	$(BIN)/python -m bench.run --size small

bench-full: $(STAMP)
	$(BIN)/python -m bench.run --size full

# InfluxDB 1.6 and VictoriaMetrics from Debian. The packages may start system services; the
# benchmark never uses those (it starts its own instances on 127.0.0.1), so they are stopped.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench-peers:
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y influxdb victoria-metrics
	-$(SUDO) systemctl disable --now influxdb victoria-metrics 2>/dev/null

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache .hypothesis build *.egg-info
