# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := $(CURDIR)/.demo
DEMO_RECORDS ?= 1000000

.PHONY: demo test lint bench clean test-tools

# Debian and Ubuntu ship python3 without ensurepip (package python3.X-venv), without
# which `-m venv` fails: installed here when missing (CI runs as root)
$(BIN)/.installed: pyproject.toml setup.py streamer/sinks/stage/_nested.c \
    streamer/mapping/streamer_ts.c streamer/mapping/_typed.c streamer/mapping/timestamp_text.h
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
		v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		echo "$(PYTHON) has no ensurepip: installing python$$v-venv" >&2; \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends python$$v-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# file -> local CSV stage -> DuckDB on $(DEMO_RECORDS) generated records
demo: $(BIN)/.installed
	mkdir -p $(DEMO_DIR)
	test -s $(DEMO_DIR)/input-$(DEMO_RECORDS).ndjson || \
		$(BIN)/python -m bench.gen $(DEMO_DIR)/input-$(DEMO_RECORDS).ndjson $(DEMO_RECORDS)
	rm -rf $(DEMO_DIR)/data $(DEMO_DIR)/stage
	DEMO_DIR=$(DEMO_DIR) DEMO_INPUT=$(DEMO_DIR)/input-$(DEMO_RECORDS).ndjson \
		$(BIN)/streamer run -c config/demo.toml
	$(BIN)/python -c "import duckdb; c = duckdb.connect('$(DEMO_DIR)/data/streamer.duckdb', read_only=True); \
		print('rows loaded into DuckDB table events:', c.execute('SELECT count(*) FROM events').fetchone()[0])"

# the suite in TEST_WORKERS pytest-xdist processes, 4 by default on 2 cores (it waits
# more than it computes: daemons, brokers and emulators run as subprocesses; 12 min
# instead of 30): the tests of one xdist_group run in one worker, one after another.
# TEST_WORKERS=1: one process. --durations: the slowest tests in every CI log.
# compileall first: with PYTHONDONTWRITEBYTECODE set (as on this project's hosts) every
# one of the suite's hundreds of `python -m streamer` processes compiled streamer from
# source (0.1 s of CPU each)
TEST_WORKERS ?= 4
PYTEST_WORKERS = $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
test: $(BIN)/.installed lint test-tools
	$(BIN)/python -m compileall -q streamer tests bench >/dev/null
	$(BIN)/python -m pytest -q --durations=30 $(PYTEST_WORKERS)

# the real tools some tests run, installed only when missing, with one apt-get update
# (CI runs `make test` as root without stdin): logrotate for
# tests/reliability/test_logrotate.py; systemd-analyze and libseccomp for
# tests/integration/test_systemd_unit.py; promtool for
# tests/integration/test_metrics_exposition.py, taken out of Debian's prometheus
# package into .tools/bin (installing the package would also start a Prometheus server);
# setpriv (util-linux) for tests/integration/test_file_unreadable.py
TOOLS := $(CURDIR)/.tools
test-tools:
	@set -e; apt=""; promtool=""; \
	command -v logrotate >/dev/null 2>&1 || test -x /usr/sbin/logrotate || apt="$$apt logrotate"; \
	command -v systemd-analyze >/dev/null 2>&1 || apt="$$apt systemd libseccomp2"; \
	command -v setpriv >/dev/null 2>&1 || apt="$$apt util-linux"; \
	command -v promtool >/dev/null 2>&1 || test -x $(TOOLS)/bin/promtool || promtool=1; \
	if [ -n "$$apt$$promtool" ]; then apt-get update; fi; \
	if [ -n "$$apt" ]; then DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $$apt; fi; \
	if [ -n "$$promtool" ]; then rm -rf $(TOOLS)/deb && mkdir -p $(TOOLS)/deb $(TOOLS)/bin && \
		cd $(TOOLS)/deb && apt-get download prometheus && dpkg-deb -x prometheus_*.deb root && \
		cp root/usr/bin/promtool $(TOOLS)/bin/ && cd $(CURDIR) && rm -rf $(TOOLS)/deb; fi

lint: $(BIN)/.installed
	$(BIN)/ruff check streamer tests bench

# every benchmark scenario and its baselines (bench/README.md); e.g. BENCH_ARGS="--full"
bench: $(BIN)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
