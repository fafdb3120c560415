# Two commands do all the set-up: `make run` and `make test`.
PY       ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
PG_URL   ?= postgresql://postgres@127.0.0.1:5432/test
DATA     ?= ./var

.PHONY: run serve test lint typecheck pytest bench clean system-deps axe

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the browser tests need (Chromium, driven by Playwright for Python, and a
# colour emoji font so that messages and the screenshots in docs/ render as users see them).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then \
		echo "installing Debian's chromium and fonts-noto-color-emoji for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium fonts-noto-color-emoji >/dev/null; \
	fi

# axe-core, the accessibility engine the browser tests inject into every screen
# (tests/e2e/test_web_a11y.py), from the npm registry into .cache/axe (not committed).
AXE_VERSION := 4.14.1
AXE := .cache/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	mkdir -p .cache/axe
	npm install --prefix .cache/axe --no-audit --no-fund --no-save --silent axe-core@$(AXE_VERSION)
	test -f $(AXE)

axe: $(AXE)

# The server on SQLite under ./var/server and the web app for ./var/alice (prints its URL).
run: $(STAMP)
	DATA=$(DATA) bash scripts/run-local.sh

# The layers and forbidden imports of docs/ARCHITECTURE.md, as import-linter contracts
# ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples

# Two workers, each test file on one of them (its fixtures and servers stay together); most
# tests wait on real servers and browsers, so two workers halve the time on two cores.
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	BAAT_TEST_POSTGRES=$${BAAT_TEST_POSTGRES-$(PG_URL)} $(BIN)/pytest -q -p no:cacheprovider \
		-n $(PYTEST_WORKERS) --dist loadfile

test: $(STAMP) system-deps axe lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/route.py
	$(BIN)/python bench/crypto.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/attachments.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .cache
