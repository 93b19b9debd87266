#!/usr/bin/env bash
# Install what the browser tests of the catalog page (tests/ui) need:
#   - Debian's chromium package (/usr/bin/chromium; apt, needs root);
#   - Playwright's Python package into .venv when it is missing (it drives the system
#     Chromium through executable_path; no browser is ever downloaded: we never run
#     `playwright install`).
#
# Idempotent and quick when both are there (no network then). Nothing is started.
#
# Usage: scripts/servers/install_chromium.sh
# Exit status: non-zero if something could not be installed. Without root (and no
# passwordless sudo) the apt step is skipped with a warning, except with CI=true, where it
# is an error; the browser tests then skip locally (and fail in CI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PLAYWRIGHT_SPEC="playwright>=1.49,<2"

log() { echo "servers/install_chromium: $*" >&2; }
is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }
failed=0

chromium_version() {
    # The Debian wrapper script prints a harmless shell warning on some machines.
    /usr/bin/chromium --version 2>/dev/null | head -n1
}

install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        log "chromium: present ($(chromium_version || echo "version unknown"))"
        return 0
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            log "chromium: missing, and installing it needs root. Run as root:"
            log "  apt-get update && apt-get install -y --no-install-recommends chromium"
            if is_ci; then return 1; fi
            log "chromium: skipped (the browser tests will be skipped)"
            return 0
        fi
    fi
    local t0=$SECONDS
    log "chromium: apt-get update"
    "${sudo[@]}" apt-get update -q >/dev/null
    log "chromium: apt-get install chromium"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends chromium >/dev/null; then
        log "chromium: apt-get install failed"
        return 1
    fi
    log "chromium: installed $(chromium_version || true) in $((SECONDS - t0))s"
}

install_playwright() {
    if [[ ! -x .venv/bin/python ]]; then
        log "playwright: no .venv (run scripts/setup.sh first)"
        return 1
    fi
    if .venv/bin/python -c 'import playwright.sync_api' 2>/dev/null; then
        log "playwright: present in .venv ($(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("playwright"))'))"
        return 0
    fi
    local constraints=()
    [[ -f constraints.txt ]] && constraints=(-c constraints.txt)
    log "playwright: pip install $PLAYWRIGHT_SPEC (the Python package only; no browser download)"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${constraints[@]}" \
        "$PLAYWRIGHT_SPEC"
}

install_chromium || failed=1
install_playwright || failed=1

if [[ $failed -ne 0 ]]; then
    log "FAILED (see above)"
    exit 1
fi
log "ok"
