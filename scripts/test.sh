#!/usr/bin/env bash
# Set up, then run every check CI runs: ruff (lint and format), mypy, import-linter,
# pytest, and the Go SDK's go vet / go test when sdk_go_compat/go.mod exists.
#
# Usage: scripts/test.sh [PYTEST_ARGS...]   (arguments go to pytest only)
#
# Setup is .venv (scripts/setup.sh) and the real servers the integration tests start
# (scripts/servers/install.sh, when present). Every check runs even after one fails;
# the exit status is non-zero if any failed. CI (CI=true, set by CI systems) is passed
# through untouched: with it, a missing server or tool fails instead of being skipped.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

in_ci() { [[ "${CI:-}" =~ ^(1|true|yes|TRUE|True)$ ]]; }

scripts/setup.sh || { echo "test: setup failed" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"

names=()
results=()
failed=0

record() {  # record NAME RESULT IS_FAILURE
    names+=("$1")
    results+=("$2")
    [[ $3 -eq 0 ]] || failed=1
}

run() {  # run NAME CMD...: run one check, record its result and time
    local name="$1"
    shift
    echo
    echo "=== $name: $*"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    local took=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        record "$name" "ok      ${took}s" 0
    else
        record "$name" "FAILED  ${took}s (exit $rc)" 1
    fi
}

# Servers for the integration tests: locally a server that cannot be installed only
# makes the tests that need it skip (they say so); under CI it is a failure.
if [[ -x scripts/servers/install.sh ]]; then
    echo
    echo "=== servers: scripts/servers/install.sh"
    start=$SECONDS
    if scripts/servers/install.sh; then
        record "servers" "ok      $((SECONDS - start))s" 0
    elif in_ci; then
        record "servers" "FAILED  $((SECONDS - start))s" 1
    else
        record "servers" "WARNING not all installed; tests needing them skip" 0
    fi
fi

# Debian's Chromium and Playwright's Python package, for the catalog page's browser
# tests (tests/ui): missing locally they skip; under CI they fail.
if [[ -x scripts/servers/install_chromium.sh ]]; then
    echo
    echo "=== chromium: scripts/servers/install_chromium.sh"
    start=$SECONDS
    if scripts/servers/install_chromium.sh; then
        record "chromium" "ok      $((SECONDS - start))s" 0
    elif in_ci; then
        record "chromium" "FAILED  $((SECONDS - start))s" 1
    else
        record "chromium" "WARNING not installed; browser tests skip" 0
    fi
fi

# Feast itself (.venv-feast), for the test that drives the Feast-compatible endpoint with
# Feast's own client; under CI a failed install is a failure.
echo
echo "=== feast: scripts/feast/setup.sh"
start=$SECONDS
if scripts/feast/setup.sh; then
    record "feast" "ok      $((SECONDS - start))s" 0
elif in_ci; then
    record "feast" "FAILED  $((SECONDS - start))s" 1
else
    record "feast" "WARNING not installed; the Feast client test skips" 0
fi

run "ruff check" ruff check .
run "ruff format" ruff format --check .
run "mypy" mypy
run "import-linter" lint-imports
# python -m puts the repository root on sys.path, so tests can import tests.servers.
run "pytest" python -m pytest --ignore=tests/codegen "$@"

# The batch lane (codegen/): its own toolchain venv (Airflow, Spark) and test run.
echo
echo "=== batch setup: scripts/batch/setup.sh"
start=$SECONDS
if scripts/batch/setup.sh; then
    record "batch setup" "ok      $((SECONDS - start))s" 0
    run "pytest batch" .venv-batch/bin/python -m pytest tests/codegen
else
    record "batch setup" "FAILED  $((SECONDS - start))s" 1
fi

if [[ -f sdk_go_compat/go.mod ]]; then
    if command -v go >/dev/null 2>&1; then
        run "go vet" bash -c 'cd sdk_go_compat && go vet ./...'
        run "go test" bash -c 'cd sdk_go_compat && go test ./...'
    elif in_ci; then
        record "go" "FAILED  go is not installed" 1
    else
        record "go" "WARNING go is not installed; Go SDK not tested" 0
    fi
fi

echo
echo "=== summary"
for i in "${!names[@]}"; do
    printf '  %-14s %s\n' "${names[$i]}" "${results[$i]}"
done
if [[ $failed -ne 0 ]]; then
    echo "test: FAILED"
    exit 1
fi
echo "test: all checks passed"
