# Two commands do all the set-up: `make run` and `make test`.
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
PG_URL   ?= postgresql://postgres@127.0.0.1:5432/test
DATA     ?= ./var

.PHONY: run serve test lint typecheck pytest bench clean system-deps

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the browser tests need (installed once; root on CI).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium (Debian package) for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
		|| echo "warning: could not install chromium; browser tests will be skipped"; \
	fi

run: $(STAMP)
	$(BIN)/baat serve --data $(DATA)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	BAAT_TEST_POSTGRES=$${BAAT_TEST_POSTGRES-$(PG_URL)} $(BIN)/pytest -q -p no:cacheprovider

test: $(STAMP) system-deps lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/route.py
	$(BIN)/python bench/crypto.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
