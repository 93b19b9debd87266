#!/usr/bin/env bash
# Create or refresh .venv-feast: Feast itself (pinned by bench/feast-requirements.txt), used
# by the test that drives the Feast-compatible endpoint with Feast's own client, and by the
# side-by-side benchmark. Idempotent: returns at once when the pins have not changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV=.venv-feast
REQS=bench/feast-requirements.txt
STAMP="$VENV/.setup-stamp"
log() { echo "feast setup: $*" >&2; }

want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; then
    log "up to date ($VENV)"
    exit 0
fi
python=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        python=$(command -v "$candidate")
        break
    fi
done
[[ -n $python ]] || { log "no python >= 3.11 found"; exit 1; }
t0=$SECONDS
rm -rf "$VENV"
"$python" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS"
echo "$want" >"$STAMP"
log "done in $((SECONDS - t0))s: feast $("$VENV/bin/python" -c 'import feast; print(feast.__version__)')"
