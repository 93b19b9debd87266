#!/usr/bin/env bash
# Install the real servers the integration tests start (see docs/test-servers.md):
#   - ValKey 8 (valkey-server, valkey-cli) from Debian bookworm-backports (apt, needs root);
#   - dynalite 4.0.0 and kinesalite 3.3.3 (npm) into .servers/node/;
#   - moto[server] 5.1.22 (PyPI) into .venv.
#
# Idempotent and quick when everything is there already (no network then). Nothing is
# started: the test fixtures in tests/servers/ start each server on 127.0.0.1 per test run.
#
# Usage: scripts/servers/install.sh
# Exit status: non-zero if something could not be installed. Without root (and no
# passwordless sudo) the apt step is skipped with a warning, except with CI=true, where it
# is an error; the tests that need ValKey then skip locally (and fail in CI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

DYNALITE_VERSION=4.0.0
KINESALITE_VERSION=3.3.3
MOTO_VERSION=5.1.22
NODE_PREFIX=.servers/node
BACKPORTS_LINE="deb http://deb.debian.org/debian bookworm-backports main"
BACKPORTS_FILE=/etc/apt/sources.list.d/bookworm-backports.list

log() { echo "servers/install: $*" >&2; }
failed=0
t_all=$SECONDS

is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

# --- ValKey (apt, bookworm-backports) --------------------------------------------------
install_valkey() {
    if command -v valkey-server >/dev/null 2>&1 && command -v valkey-cli >/dev/null 2>&1; then
        log "valkey: present ($(valkey-server --version | sed -n "s/.*v=\([^ ]*\).*/\1/p"))"
        return 0
    fi
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            log "valkey: missing, and installing it needs root. Run as root:"
            log "  echo '$BACKPORTS_LINE' > $BACKPORTS_FILE && apt-get update"
            log "  apt-get install -y -t bookworm-backports valkey-server valkey-tools"
            if is_ci; then return 1; fi
            log "valkey: skipped (tests that need it will be skipped)"
            return 0
        fi
    fi
    local t0=$SECONDS
    if ! grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "valkey: adding bookworm-backports to $BACKPORTS_FILE"
        echo "$BACKPORTS_LINE" | "${sudo[@]}" tee "$BACKPORTS_FILE" >/dev/null
    fi
    log "valkey: apt-get update"
    "${sudo[@]}" apt-get update -q >/dev/null
    # A package must not start a system service here: a policy-rc.d that says "no" does
    # that (Debian's standard switch); it is removed again if we created it.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    local pkgs=(valkey-server)
    # valkey-cli lives in valkey-tools (a dependency of valkey-server); name it anyway.
    if apt-cache show valkey-tools >/dev/null 2>&1; then pkgs+=(valkey-tools); fi
    log "valkey: apt-get install -t bookworm-backports ${pkgs[*]}"
    local rc=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends -t bookworm-backports "${pkgs[@]}" \
        >/dev/null || rc=$?
    if [[ $made_policy -eq 1 ]]; then "${sudo[@]}" rm -f "$policy"; fi
    if [[ $rc -ne 0 ]]; then
        log "valkey: apt-get install failed (exit $rc)"
        return 1
    fi
    log "valkey: installed $(valkey-server --version | sed -n "s/.*v=\([^ ]*\).*/\1/p") in $((SECONDS - t0))s"
}

# --- dynalite and kinesalite (npm, repo-local) -----------------------------------------
npm_version() {  # npm_version NAME: the version installed under .servers/node, or nothing
    local pj="$NODE_PREFIX/node_modules/$1/package.json"
    [[ -f $pj ]] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$PWD/$pj"
}

install_node_servers() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "node/npm: missing (Debian: apt-get install -y nodejs npm); dynalite/kinesalite skipped"
        return 1
    fi
    if [[ "$(npm_version dynalite || true)" == "$DYNALITE_VERSION" \
        && "$(npm_version kinesalite || true)" == "$KINESALITE_VERSION" ]]; then
        log "dynalite $DYNALITE_VERSION, kinesalite $KINESALITE_VERSION: present in $NODE_PREFIX"
        return 0
    fi
    local t0=$SECONDS
    mkdir -p "$NODE_PREFIX"
    log "npm install --prefix $NODE_PREFIX dynalite@$DYNALITE_VERSION kinesalite@$KINESALITE_VERSION"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
        "dynalite@$DYNALITE_VERSION" "kinesalite@$KINESALITE_VERSION" >/dev/null
    # dynalite stores tables in LevelDB (leveldown, a native module): check that it loads.
    node -e 'require(process.argv[1])' "$PWD/$NODE_PREFIX/node_modules/dynalite" \
        || { log "dynalite installed but does not load"; return 1; }
    log "dynalite, kinesalite: installed in $((SECONDS - t0))s"
}

# --- moto[server] (PyPI, into .venv) ----------------------------------------------------
install_moto() {
    if [[ ! -x .venv/bin/python ]]; then
        log "moto: no .venv (run scripts/setup.sh first)"
        return 1
    fi
    local have
    have=$(.venv/bin/python - <<'EOF' 2>/dev/null || true
import importlib.metadata as md
import flask, flask_cors  # the [server] extra
print(md.version("moto"))
EOF
    )
    if [[ "$have" == "$MOTO_VERSION" ]]; then
        log "moto[server] $MOTO_VERSION: present in .venv"
        return 0
    fi
    local t0=$SECONDS constraints=()
    [[ -f constraints.txt ]] && constraints=(-c constraints.txt)
    log "moto: pip install moto[server]==$MOTO_VERSION"
    .venv/bin/python -m pip install -q --disable-pip-version-check "${constraints[@]}" \
        "moto[server]==$MOTO_VERSION"
    log "moto: installed in $((SECONDS - t0))s"
}

install_valkey || failed=1
install_node_servers || failed=1
install_moto || failed=1
scripts/servers/opensearch/install.sh || failed=1
scripts/servers/kafka/install.sh || failed=1

if [[ $failed -ne 0 ]]; then
    log "FAILED after $((SECONDS - t_all))s (see above)"
    exit 1
fi
log "ok in $((SECONDS - t_all))s"
