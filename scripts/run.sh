#!/usr/bin/env bash
# Set up, then run the daemon: scripts/run.sh [dsfeatures serve options...]
# for example `scripts/run.sh --demo` or `scripts/run.sh --config deploy/dsfeatures.example.toml`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/dsfeatures serve "$@"
