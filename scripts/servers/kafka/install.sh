#!/usr/bin/env bash
# Install the Apache Kafka broker (KRaft) the ingest integration tests start: the jars of
# org.apache.kafka:kafka_2.13 and log4j2 (pom.xml beside this script), copied from Maven
# Central by `mvn dependency:copy-dependencies` into .servers/kafka/lib. Nothing is built
# and nothing is started (tests/servers/kafka.py starts a broker per test run).
#
# Idempotent: quick and offline when the jars of this pom.xml are already there.
# Needs java (17+) and mvn; as root on Debian, installs them with apt-get when missing.
#
# Usage: scripts/servers/kafka/install.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
dest="$repo/.servers/kafka/lib"
marker="$dest/.installed"

log() { echo "servers/kafka: $*" >&2; }
t0=$SECONDS

want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]] && compgen -G "$dest/kafka_2.13-*.jar" >/dev/null; then
    log "present in ${dest#"$repo"/} ($(basename "$dest"/kafka_2.13-*.jar .jar))"
    exit 0
fi

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing java and maven (apt-get)"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            openjdk-17-jre-headless maven >/dev/null
    else
        log "java and mvn are needed (Debian: apt-get install openjdk-17-jre-headless maven)"
        exit 1
    fi
fi

tmp="$(mktemp -d "$repo/.servers/kafka-lib.XXXXXX" 2>/dev/null || { mkdir -p "$repo/.servers" && mktemp -d "$repo/.servers/kafka-lib.XXXXXX"; })"
trap 'rm -rf "$tmp"' EXIT
log "mvn dependency:copy-dependencies ($(grep -o '<kafka.version>[^<]*' "$here/pom.xml" | cut -d'>' -f2))"
mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >&2
echo "$want" >"$tmp/.installed"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
trap - EXIT
log "installed $(ls "$dest"/*.jar | wc -l) jars in ${dest#"$repo"/} in $((SECONDS - t0))s"
