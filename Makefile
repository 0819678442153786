# ISPS: two commands on a fresh clone need only python3 and make.
#   make demo   builds the environment, a synthetic Punjab of 100,000 households, runs the main flows and serves the app
#   make test   builds the environment and runs every test (SQLite and PostgreSQL; browser tests in Chromium)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOUSEHOLDS ?= 100000
SCALE ?= 100000
HOST ?= 127.0.0.1
PORT ?= 8000
# the suite runs in this many processes (pytest-xdist), a test file kept whole in one of them
TEST_WORKERS ?= 2

.PHONY: install demo test bench serve clean fuzz

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/isps demo --households $(HOUSEHOLDS) --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

bench: install
	$(BIN)/python -m bench.run --scale $(SCALE)

serve: install
	$(BIN)/isps serve --host $(HOST) --port $(PORT)

clean:
	rm -rf var $(VENV)

FUZZ_EXAMPLES ?= 100
fuzz: install
	$(BIN)/python -m bench.fuzz --max-examples $(FUZZ_EXAMPLES)
