#!/usr/bin/env bash
# Run a single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM)
# on 127.0.0.1, in the foreground: the JVM replaces this shell (exec), so the PID of this
# script is the broker's, and SIGTERM stops it cleanly.
#
# Usage: scripts/servers/kafka/start.sh --port PORT --controller-port PORT --dir DIR [--lib DIR]
#   --dir   the broker's folder (server.properties, log4j2.yaml, data/); formatted on first
#           use, kept on a restart with the same folder.
#   --lib   the jars (default .servers/kafka/lib, from scripts/servers/kafka/install.sh).
#
# Settings for tests: one node, replication factors 1, group.initial.rebalance.delay.ms=0,
# group.min.session.timeout.ms=1000 (quick failover tests), no automatic topic creation.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lib="$here/../../../.servers/kafka/lib"
port="" cport="" dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --controller-port) cport="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --lib) lib="$2"; shift 2 ;;
        *) echo "start.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -n $port && -n $cport && -n $dir ]] || { echo "usage: start.sh --port P --controller-port C --dir DIR [--lib DIR]" >&2; exit 2; }
compgen -G "$lib/kafka_2.13-*.jar" >/dev/null || { echo "start.sh: no Kafka jars in $lib (run scripts/servers/kafka/install.sh)" >&2; exit 1; }
mkdir -p "$dir/data"
dir="$(cd "$dir" && pwd)"

cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=false
log.flush.interval.messages=9223372036854775807
PROPS

cat >"$dir/log4j2.yaml" <<'YAML'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.Kafka
        level: INFO
YAML

if [[ ! -f "$dir/data/meta.properties" ]]; then
    # A cluster id is 16 random bytes, base64url without padding.
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
        -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$lib/*" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >/dev/null
fi

exec java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$lib/*" \
    kafka.Kafka "$dir/server.properties"
