# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := $(CURDIR)/.demo
DEMO_RECORDS ?= 1000000

.PHONY: demo test lint bench clean logrotate systemd-tools

$(BIN)/.installed: pyproject.toml
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

test: $(BIN)/.installed lint logrotate systemd-tools
	$(BIN)/python -m pytest -q

# the real logrotate for tests/reliability/test_logrotate.py (a Debian package; CI
# runs `make test` as root without stdin), installed only when it is missing
logrotate:
	command -v logrotate >/dev/null 2>&1 || test -x /usr/sbin/logrotate || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends logrotate; }

# systemd-analyze and libseccomp for tests/integration/test_systemd_unit.py (the
# unit's rating, and streamer under its system-call filter), only when missing
systemd-tools:
	command -v systemd-analyze >/dev/null 2>&1 || { \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends systemd libseccomp2; }

lint: $(BIN)/.installed
	$(BIN)/ruff check streamer tests bench

# every benchmark scenario and its baselines (bench/README.md); e.g. BENCH_ARGS="--full"
bench: $(BIN)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
