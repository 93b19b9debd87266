#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv in the repository root).
#
# Installs the package in editable mode with its "dev" extra and every other
# extra pyproject.toml declares, pinned by constraints.txt.
# Idempotent: when .venv already matches pyproject.toml and constraints.txt it
# returns at once, so every other script can call it first. Pass --force to
# reinstall anyway.
#
# Interpreter: the first of `python3.11`, `python3` that runs and is >= 3.11
# (pyenv shims that point at nothing are skipped); PYTHON=/path/to/python
# overrides the search.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.setup-stamp"
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { echo "setup: $*" >&2; }

is_usable() {  # a python that runs and is 3.11 or newer
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        is_usable "$PYTHON" || { log "PYTHON=$PYTHON is not a working Python >= 3.11"; return 1; }
        echo "$PYTHON"
        return 0
    fi
    local cand
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && is_usable "$cand"; then
            echo "$cand"
            return 0
        fi
    done
    log "no Python >= 3.11 found (tried python3.11, python3)."
    log "on Debian 12: apt-get install -y python3.11 python3.11-venv"
    return 1
}

# What the installed environment was built from; a change means reinstall.
fingerprint() {
    {
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
        cat pyproject.toml
        [[ -f constraints.txt ]] && cat constraints.txt
    } | sha256sum | cut -d' ' -f1
}

make_venv() {
    local py="$1" err
    log "creating $VENV with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    if err=$("$py" -m venv "$VENV" 2>&1); then
        return 0
    fi
    rm -rf "$VENV"
    # Debian ships venv/ensurepip separately; install it when we may.
    if grep -qi ensurepip <<<"$err" && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
        local ver
        ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        log "installing python${ver}-venv (Debian packages venv separately)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${ver}-venv" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${ver}-venv" >/dev/null; }
        "$py" -m venv "$VENV"
        return 0
    fi
    echo "$err" >&2
    log "could not create $VENV (on Debian: apt-get install -y python3.11-venv)"
    return 1
}

# A venv whose interpreter is gone or too old (moved repo, removed pyenv
# version) cannot be repaired in place: start again.
if [[ -d "$VENV" ]] && ! is_usable "$VENV/bin/python"; then
    log "$VENV is broken or too old; recreating it"
    rm -rf "$VENV"
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    PY=$(find_python)
    make_venv "$PY"
    FORCE=1
fi

if [[ $FORCE -eq 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]]; then
    log "$VENV is up to date"
    exit 0
fi

CONSTRAINTS=()
if [[ -f constraints.txt ]]; then
    CONSTRAINTS=(-c constraints.txt)
else
    log "constraints.txt missing: installing unpinned (run 'make lock' to pin)"
fi

# "dev" plus every other extra pyproject.toml declares (optional backends such as
# DynamoDB): the tests exercise them all.
EXTRAS=$("$VENV/bin/python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    extras = tomllib.load(f)["project"].get("optional-dependencies", {})
print(",".join(["dev", *sorted(e for e in extras if e != "dev")]))
PY
)

log "upgrading pip"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
log "installing dsfeatures[$EXTRAS] (editable) with ${CONSTRAINTS[*]:-no constraints}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${CONSTRAINTS[@]}" -e ".[$EXTRAS]"
fingerprint >"$STAMP"
log "done: $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'), $("$VENV/bin/dsfeatures" --version)"
