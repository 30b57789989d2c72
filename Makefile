# Common commands. CI runs `make test`, exactly as a developer does.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: help demo test check lint pytest bench system setup clean

help:  ## List the commands
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## Create .venv and install Clickmap with its development tools

demo: setup  ## Seed a demo campaign on SQLite and serve the dashboard on http://127.0.0.1:5000
	$(BIN)/clickmap demo

system:  ## Install the system packages tests need (Chromium, poppler, PostgreSQL binaries)
	bash .ci/system-deps

test: system setup  ## Set everything up, lint, type-check, run every test and check coverage
	bash tests/amp/install.sh
	$(MAKE) --no-print-directory check
	$(BIN)/pytest --cov

check: setup  ## Lint, format check and type check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup  ## Run the benchmarks (figures are ratios against a baseline of the same run)
	$(BIN)/python bench/personalize
	$(BIN)/python bench/redirect
	$(BIN)/python bench/heatmap
	$(BIN)/python bench/bots

clean:  ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
