# The obvious targets; each runs the same scripts CI runs.
# A fresh machine needs only: make demo   (or: make test)

VENV := .venv
BIN  := $(VENV)/bin

# bench/batchget.py options, for example: make bench BENCH_ARGS="--duration 5"
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run demo test lint format typecheck bench lock go-test clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## Create or refresh .venv (idempotent)
	@scripts/setup.sh

run:  ## Run the daemon (embedded stores, 127.0.0.1:8080)
	scripts/run.sh

demo:  ## Run the daemon with demo data on 127.0.0.1:8080
	scripts/run.sh --demo

test:  ## Everything CI runs: ruff, mypy, import-linter, pytest
	scripts/test.sh

lint: setup  ## ruff check, ruff format --check, import-linter
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup  ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: setup  ## mypy (strict, config in pyproject.toml)
	$(BIN)/mypy

bench: setup  ## BatchGet load benchmark; writes bench/RESULTS.md and bench/results/
	$(BIN)/python bench/batchget.py $(BENCH_ARGS)

lock:  ## Regenerate constraints.txt from .venv
	scripts/lock.sh

go-test:  ## Go SDK: go vet and go test (sdk_go_compat)
	@if [ ! -f sdk_go_compat/go.mod ]; then \
		echo "go-test: the Go SDK (sdk_go_compat) is not there yet; nothing to test"; \
	else \
		cd sdk_go_compat && go vet ./... && go test ./...; \
	fi

clean:  ## Remove .venv and caches (keeps data such as .dsf-data/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

.PHONY: batch-setup batch-test
batch-setup:  ## Create or refresh .venv-batch (Airflow, Spark, DuckDB, databuilder)
	scripts/batch/setup.sh

batch-test: batch-setup  ## The batch lane's tests (real Airflow and Spark)
	.venv-batch/bin/python -m pytest tests/codegen

.PHONY: bench-compare bench-profile
bench-compare: setup  ## dsfeatures beside Feast and a bare server; BENCH_ARGS="--quick"
	$(BIN)/python bench/compare.py $(BENCH_ARGS)

bench-profile: setup  ## pyinstrument profile of BatchGet (--gc for collector pauses)
	$(BIN)/python bench/profile_batchget.py $(BENCH_ARGS)
