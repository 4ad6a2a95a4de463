#!/usr/bin/env bash
# Fetch, start and stop a real single-node Apache Kafka broker (KRaft, combined
# broker+controller) on 127.0.0.1, for weir's tests and local development.
# Jars come from Maven Central through scripts/kafka/pom.xml; runs on the
# `java` on PATH (17+). See `scripts/kafka.sh --help`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KDIR="$REPO/scripts/kafka"
POM="$KDIR/pom.xml"

KAFKA_HOME="${WEIR_KAFKA_HOME:-$REPO/target/kafka}"
LIB="$KAFKA_HOME/lib"
DATA="${WEIR_KAFKA_DATA:-$KAFKA_HOME/data}"
PORT="${WEIR_KAFKA_PORT:-19092}"
CPORT="${WEIR_KAFKA_CONTROLLER_PORT:-19093}"
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
POM_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
VERSION="${WEIR_KAFKA_VERSION:-$POM_VERSION}"
WAIT_TIMEOUT="${WEIR_KAFKA_WAIT_TIMEOUT:-60}"
STOP_TIMEOUT="${WEIR_KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${WEIR_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
GC_OPTS="${WEIR_KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35}"

PIDFILE="$DATA/broker.pid"
PROPS="$DATA/server.properties"
STATEFILE="$DATA/weir-kafka.state" # cluster id + ports the data dir was formatted with
LOGDIR="$DATA/logs"                # log4j2 output (server.log) and stdout/stderr (broker.out)
KRAFT_DIR="$DATA/kraft"            # log.dirs (metadata log + topic partitions)
STAMP="$LIB/.weir-fetched"

TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=$KDIR/tools-log4j2.properties")

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
  cat <<EOF
Usage: scripts/kafka.sh COMMAND [ARGS]

A real single-node Apache Kafka $VERSION broker (KRaft, combined broker and
controller, node.id=1) on $HOST, for tests and local development. Jars come
from Maven Central (scripts/kafka/pom.xml); runs on the \`java\` on PATH (17+).

Commands:
  fetch          Download the broker and tool jars into \$WEIR_KAFKA_HOME/lib
                 (quick no-op when already there).
  start          Fetch if needed, write server.properties, format the data dir
                 (random cluster id, --standalone) if it is new, start the
                 broker in the background and wait until it is ready. Exits 0
                 at once if it is already running.
  wait [SECS]    Wait until the broker serves requests (a Kafka Metadata request
                 over TCP is answered with a live broker); default
                 \$WEIR_KAFKA_WAIT_TIMEOUT (60) s. On timeout prints the tail
                 of the broker log and exits 1.
  stop           Graceful stop: SIGTERM, then SIGKILL after
                 \$WEIR_KAFKA_STOP_TIMEOUT (30) s. Keeps the data dir.
  kill           SIGKILL the broker (crash tests). Keeps the data dir.
  restart        Stop if running, then start again on the same data dir (no
                 re-format: topics, offsets and transactions survive).
  reset          Stop if running and delete the data dir (next start formats).
  status         Print running/stopped and the bootstrap address; exit 0 if
                 running, 3 if not.
  bootstrap      Print the bootstrap address ($BOOTSTRAP).
  topics ARGS    kafka-topics: org.apache.kafka.tools.TopicCommand with
                 --bootstrap-server set, e.g. \`topics --list\`,
                 \`topics --create --topic t --partitions 3\`.
  tool CLASS ARGS
                 Run any Java class from the Kafka classpath, e.g.
                 org.apache.kafka.tools.ConsoleProducer, ...consumer.ConsoleConsumer,
                 ...MetadataQuorumCommand, ...GetOffsetShell (no implicit args).
  classpath      Print the classpath ("\$WEIR_KAFKA_HOME/lib/*").
  logs [N]       Print the last N (default 50) lines of the broker log.
  -h, --help     This help.

Environment:
  WEIR_KAFKA_HOME             Base dir (default: REPO/target/kafka); jars in lib/.
  WEIR_KAFKA_DATA             Data dir (default: \$WEIR_KAFKA_HOME/data): config,
                              pid file, logs/ and the KRaft log dirs.
  WEIR_KAFKA_PORT             PLAINTEXT client port (default 19092).
  WEIR_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093). Fixed for a
                              data dir once formatted (use \`reset\` to change).
  WEIR_KAFKA_VERSION          Kafka version from Maven Central (default $POM_VERSION,
                              pinned in scripts/kafka/pom.xml).
  WEIR_KAFKA_HEAP_OPTS        Broker heap (default "-Xmx512m -Xms256m").
  WEIR_KAFKA_GC_OPTS          Broker garbage collector (default Kafka's own: "-XX:+UseG1GC
                              -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35";
                              e.g. "-XX:+UseZGC" to compare a collector in a benchmark).
  WEIR_KAFKA_WAIT_TIMEOUT     Seconds start/wait wait for readiness (default 60).
  WEIR_KAFKA_STOP_TIMEOUT     Seconds stop waits before SIGKILL (default 30).

Files: DATA/server.properties, DATA/broker.pid, DATA/logs/server.log (log4j2,
WARN), DATA/logs/broker.out (JVM stdout/stderr), DATA/kraft/ (log.dirs).
EOF
}

# ---------------------------------------------------------------- helpers

# Serialise fetch/start/stop/kill/reset between concurrent callers (e.g.
# parallel test binaries) on one WEIR_KAFKA_HOME.
take_lock() {
  mkdir -p "$KAFKA_HOME"
  exec 9>"$KAFKA_HOME/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
}

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka $VERSION needs Java 17+)"
}

# Print the PID of our broker if it is alive (checked by its command line, so a
# reused PID does not count); fail otherwise.
broker_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid cmdline=""
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline="$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
  if [[ "$cmdline" == *"kafka.Kafka $PROPS"* ]]; then
    # A zombie (killed, not yet reaped) is not running.
    local st
    st="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    if [[ "$st" != "Z" ]]; then
      echo "$pid"
      return 0
    fi
  fi
  return 1
}

port_open() { # port -> 0 if something accepts TCP connections on HOST:port
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

log_tail() {
  local n="${1:-40}"
  if [[ -f "$LOGDIR/server.log" ]]; then
    say "--- last $n lines of $LOGDIR/server.log"
    tail -n "$n" "$LOGDIR/server.log" >&2
  fi
  if [[ -s "$LOGDIR/broker.out" ]]; then
    say "--- last $n lines of $LOGDIR/broker.out"
    tail -n "$n" "$LOGDIR/broker.out" >&2
  fi
}

run_tool() { # CLASS ARGS... : a Kafka Java class on the fetched classpath
  need_java
  [[ -f "$STAMP" ]] || die "jars not fetched: run scripts/kafka.sh fetch"
  java "${TOOL_JVM_OPTS[@]}" -cp "$LIB/*" "$@"
}

# Kafka's Uuid: 16 random bytes, URL-safe base64 without padding, never
# starting with '-' (it would read as a CLI flag).
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

# ---------------------------------------------------------------- commands

cmd_fetch() {
  local want
  want="version=$VERSION pom=$(sha256sum "$POM" | cut -c1-16)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch the Kafka jars)"
  need_java
  say "fetching Kafka $VERSION jars from Maven Central into $LIB"
  local tmp="$LIB.tmp.$$" out
  rm -rf "$tmp"
  if ! out="$(cd "$KDIR" && mvn -q -B -f "$POM" "-Dkafka.version=$VERSION" \
    dependency:copy-dependencies "-DoutputDirectory=$tmp" 2>&1)"; then
    printf '%s\n' "$out" | tail -n 30 >&2
    rm -rf "$tmp"
    die "maven could not fetch Kafka $VERSION"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "fetch produced no kafka_2.13 jar in $tmp"; }
  echo "$want" >"$tmp/.weir-fetched"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  say "fetched $(find "$LIB" -name '*.jar' | wc -l) jars ($(du -sh "$LIB" | cut -f1))"
}

write_props() {
  mkdir -p "$DATA" "$LOGDIR" "$KRAFT_DIR"
  cat >"$PROPS.tmp" <<EOF
# Written by scripts/kafka.sh; rewritten on every start. Single-node KRaft
# broker+controller for tests: replication factor 1 everywhere, small
# internal topics, short timers.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KRAFT_DIR

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4

# Topics: created explicitly by tests / weir, one partition unless asked.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
delete.topic.enable=true

# Internal topics on one node.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
offsets.topic.segment.bytes=16777216
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
transaction.state.log.segment.bytes=16777216
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Groups: no initial rebalance delay; allow short session timeouts in tests.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500

# Transactions: abort timed-out (zombie) transactions within ~1 s of their
# transaction.timeout.ms; expire idle transactional ids sooner.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=60000

# After a crash (kill), the restarted controller waits out the old broker
# registration's session before unfencing the new one: keep that short.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000

# Segments/cleaner sized for tests.
log.segment.bytes=16777216
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.threads=1
EOF
  mv "$PROPS.tmp" "$PROPS"
}

format_if_new() {
  if [[ -f "$KRAFT_DIR/meta.properties" ]]; then
    # Formatted before: the KRaft voter set holds the controller endpoint.
    local was=""
    [[ -f "$STATEFILE" ]] && was="$(sed -n 's/^controller_port=//p' "$STATEFILE")"
    if [[ -n "$was" && "$was" != "$CPORT" ]]; then
      die "data dir $DATA was formatted with controller port $was, not $CPORT; use WEIR_KAFKA_CONTROLLER_PORT=$was or \`scripts/kafka.sh reset\`"
    fi
    return 0
  fi
  local id
  id="$(random_cluster_id)"
  say "formatting $KRAFT_DIR (cluster id $id)"
  local out
  if ! out="$(run_tool kafka.tools.StorageTool format --config "$PROPS" \
    --cluster-id "$id" --standalone 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "formatting the storage failed"
  fi
  printf 'cluster_id=%s\ncontroller_port=%s\nversion=%s\n' "$id" "$CPORT" "$VERSION" >"$STATEFILE"
}

# One readiness probe, in Kafka's wire protocol: send a Metadata v0 request
# (all topics) and read the response header. The broker binds its listener
# early but serves requests only once it is unfenced and caught up with the
# metadata log, so a plain TCP connect is not enough; an answer with our
# correlation id and at least one live broker is.
probe() {
  local hex
  # shellcheck disable=SC2016 # expanded by the inner bash
  hex="$(timeout 2 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    # size=14 | api_key=3 (Metadata) | version=0 | correlation_id=7 | client_id=null | topics=[]
    printf "\x00\x00\x00\x0e\x00\x03\x00\x00\x00\x00\x00\x07\xff\xff\x00\x00\x00\x00" >&3
    head -c 12 <&3 | od -An -tx1 | tr -d " \n"
  ' "$HOST" "$PORT" 2>/dev/null)" || return 1
  # response: size(4) correlation_id(4) broker_count(4)
  [[ ${#hex} -eq 24 && "${hex:8:8}" == "00000007" && "${hex:16:8}" != "00000000" ]]
}

cmd_wait() {
  local limit="${1:-$WAIT_TIMEOUT}"
  [[ "$limit" =~ ^[0-9]+$ ]] || die "wait: timeout must be whole seconds, got '$limit'"
  local starting="${2:-}"
  local t0="${EPOCHREALTIME/[.,]/}" deadline=$((SECONDS + limit)) left
  if [[ -z "$starting" ]] && ! broker_pid >/dev/null; then
    die "broker is not running (start it: scripts/kafka.sh start)"
  fi
  while :; do
    if ! broker_pid >/dev/null; then
      rm -f "$PIDFILE"
      log_tail 40
      die "broker exited while starting (see $LOGDIR)"
    fi
    left=$((deadline - SECONDS))
    if ((left <= 0)); then break; fi
    if probe; then
      local ms=$(((${EPOCHREALTIME/[.,]/} - t0) / 1000))
      say "ready at $BOOTSTRAP (waited $((ms / 1000)).$(printf %03d $((ms % 1000))) s)"
      return 0
    fi
    sleep 0.2
  done
  log_tail 40
  die "broker not ready at $BOOTSTRAP after ${limit} s"
}

cmd_start() {
  take_lock
  local pid
  if pid="$(broker_pid)"; then
    say "already running (pid $pid) at $BOOTSTRAP"
    cmd_wait
    return 0
  fi
  rm -f "$PIDFILE"
  need_java
  cmd_fetch
  local p
  for p in "$PORT" "$CPORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by another process (set WEIR_KAFKA_PORT / WEIR_KAFKA_CONTROLLER_PORT)"
    fi
  done
  write_props
  format_if_new
  printf '=== kafka.sh start %s (Kafka %s)\n' "$(date -u +%FT%TZ)" "$VERSION" >>"$LOGDIR/broker.out"
  say "starting Kafka $VERSION on $BOOTSTRAP (controller $HOST:$CPORT, data $DATA)"
  # New session: the broker outlives this script and ignores the caller's
  # terminal signals. bash writes its own pid, then execs java in place. The
  # lock fd (9) is closed so the broker does not hold the lock forever.
  # shellcheck disable=SC2086,SC2016 # word-split HEAP_OPTS and GC_OPTS; inner bash expands $$
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
    java $HEAP_OPTS -server $GC_OPTS -XX:+ExplicitGCInvokesConcurrent \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$KDIR/log4j2.properties" "-Dkafka.logs.dir=$LOGDIR" \
    -cp "$LIB/*" kafka.Kafka "$PROPS" \
    </dev/null >>"$LOGDIR/broker.out" 2>&1 9>&- &
  local launcher=$! _
  for _ in $(seq 100); do
    [[ -s "$PIDFILE" ]] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.1
  done
  cmd_wait "$WAIT_TIMEOUT" starting
}

# Send SIG to the broker and wait up to T seconds for it to exit.
signal_and_wait() { # pid sig timeout -> 0 if gone
  local pid="$1" sig="$2" t="$3" end
  kill "-$sig" "$pid" 2>/dev/null || true
  end=$((SECONDS + t))
  while ((SECONDS < end)); do
    broker_pid >/dev/null || return 0
    sleep 0.2
  done
  ! broker_pid >/dev/null
}

cmd_stop() {
  take_lock
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  local t0=$SECONDS
  if signal_and_wait "$pid" TERM "$STOP_TIMEOUT"; then
    say "stopped (pid $pid, $((SECONDS - t0)) s)"
  else
    say "no exit ${STOP_TIMEOUT} s after SIGTERM; sending SIGKILL"
    signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
    say "killed (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

cmd_kill() {
  take_lock
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  signal_and_wait "$pid" KILL 10 || die "pid $pid survived SIGKILL"
  rm -f "$PIDFILE"
  say "killed (pid $pid, SIGKILL)"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    echo "running (pid $pid) at $BOOTSTRAP"
    return 0
  fi
  echo "stopped ($BOOTSTRAP)"
  return 3
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA"
  say "deleted $DATA"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) take_lock; cmd_fetch ;;
    start) cmd_start ;;
    wait) cmd_wait "$@" ;;
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    restart)
      if broker_pid >/dev/null; then cmd_stop; fi
      cmd_start ;;
    reset) cmd_reset ;;
    status) cmd_status ;;
    bootstrap) echo "$BOOTSTRAP" ;;
    topics) run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@" ;;
    tool)
      [[ $# -ge 1 ]] || die "tool: which class? e.g. org.apache.kafka.tools.ConsoleProducer"
      run_tool "$@" ;;
    classpath) echo "$LIB/*" ;;
    logs) log_tail "${1:-50}" 2>&1 ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) say "unknown command '$cmd'"; usage >&2; exit 2 ;;
  esac
}

main "$@"
