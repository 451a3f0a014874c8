#!/usr/bin/env bash
# Start a throw-away single-node Apache Kafka (KRaft broker+controller) on
# loopback for livewatch development and tests. No Docker: plain `java` on the
# jars fetched by fetch.sh. Every run starts from an EMPTY data dir.
#
# Env (all optional):
#   KAFKA_HOST             listen/advertise address       (default 127.0.0.1)
#   KAFKA_PORT             client port                    (default 19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port          (default 19093)
#   KAFKA_RUN_DIR          config, data, log, pid file    (default deploy/kafka/.run)
#   LIVEWATCH_KAFKA_HOME   jar cache, see fetch.sh        (default deploy/kafka/.cache)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness  (default 90)
#   KAFKA_HEAP_OPTS        JVM heap flags                 (default -Xmx512m -Xms128m)
#   KAFKA_JVM_OPTS         extra JVM flags                (default empty)
#   KAFKA_LOG_LEVEL        root log level for broker.log  (default WARN)
#   KAFKA_NUM_PARTITIONS   num.partitions default         (default 4)
#   KAFKA_OFFSETS_PARTITIONS  partitions of __consumer_offsets (default 4)
#   KAFKA_EXTRA_PROPERTIES extra server.properties lines (newline separated),
#                          appended last so they win
#   KAFKA_KEEP_DATA        1: restart on the data dir of an earlier start from
#                          this run dir (same topics, offsets, cluster id)
#                          instead of wiping it; an empty run dir starts fresh
#                          (PLAINTEXT only: SASL_SSL makes new passwords)
#   KAFKA_SECURITY         the client listener: PLAINTEXT (default) or SASL_SSL
#                          (TLS + SCRAM; a CA and the broker's certificate are
#                          made in $KAFKA_RUN_DIR/tls on every start, with keytool)
#   KAFKA_SASL_USERNAME    SASL_SSL: the client user made (SCRAM-SHA-256 and -512)
#                                                         (default livewatch)
#   KAFKA_SASL_PASSWORD    SASL_SSL: its password         (default random)
#   With SASL_SSL, $KAFKA_RUN_DIR/tls/livewatch.env holds the LIVEWATCH_*
#   settings of a client (use it as LIVEWATCH_ENV_FILE), ca.pem the CA.
#
# On success prints the bootstrap address and exits 0, leaving the broker
# running in its own session (stop it with stop.sh). On failure exits 1 and
# prints the tail of the broker log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME="${LIVEWATCH_KAFKA_HOME:-$HERE/.cache}"
RUN_DIR="${KAFKA_RUN_DIR:-$HERE/.run}"
HOST="${KAFKA_HOST:-127.0.0.1}"
PORT="${KAFKA_PORT:-19092}"
CTRL_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}"
LOG_LEVEL="${KAFKA_LOG_LEVEL:-WARN}"
NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-4}"
SECURITY="${KAFKA_SECURITY:-PLAINTEXT}"
SASL_USER="${KAFKA_SASL_USERNAME:-livewatch}"
OFFSETS_PARTITIONS="${KAFKA_OFFSETS_PARTITIONS:-4}"

BOOTSTRAP="$HOST:$PORT"
LOG_FILE="$RUN_DIR/broker.log"   # re-derived below once RUN_DIR is absolute

t0=$(date +%s%N)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fmt_s() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }   # ms -> "s.mmm"
elapsed() { fmt_s $(( $(now_ms) - t0 / 1000000 )); }
log() { echo "start.sh: $*"; }
die() { echo "start.sh: ERROR: $*" >&2; exit 1; }

show_log_tail() {
  if [[ -s "$LOG_FILE" ]]; then
    echo "----- last 40 lines of $LOG_FILE -----" >&2
    tail -n 40 "$LOG_FILE" >&2
    echo "-----" >&2
  else
    echo "(broker log $LOG_FILE is empty or missing)" >&2
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

command -v java >/dev/null 2>&1 || die "'java' not found on PATH (need JDK 17+)"
case "$SECURITY" in
  PLAINTEXT) ;;
  SASL_SSL)
    command -v keytool >/dev/null 2>&1 || die "'keytool' not found on PATH (part of the JDK)"
    # they go into a SCRAM credential spec "[name=..,password=..]" and a JAAS line: no quotes, commas, brackets
    [[ "$SASL_USER" =~ ^[A-Za-z0-9._-]+$ ]] || die "KAFKA_SASL_USERNAME: letters, digits, '.', '_', '-' only"
    [[ -z "${KAFKA_SASL_PASSWORD:-}" || "$KAFKA_SASL_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] \
      || die "KAFKA_SASL_PASSWORD: letters, digits, '.', '_', '~', '-' only"
    ;;
  *) die "KAFKA_SECURITY must be PLAINTEXT or SASL_SSL (got '$SECURITY')" ;;
esac

# 1. Jars (no-op when cached).
"$HERE/fetch.sh"
KAFKA_HOME="$(cd "$KAFKA_HOME" && pwd)"
CP="$KAFKA_HOME/libs/*"

# 2. Refuse to start a second broker over a running one.
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"   # absolute: stop.sh matches it in the broker's command line
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/broker.log"
DATA_DIR="$RUN_DIR/data"
PROPS="$RUN_DIR/server.properties"
LOG4J="$RUN_DIR/log4j2.properties"
if [[ -f "$PID_FILE" ]]; then
  old_pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  if [[ -n "$old_pid" ]] && kill -0 "$old_pid" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$old_pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
    die "a broker from $RUN_DIR is already running (pid $old_pid); run $HERE/stop.sh first"
  fi
  log "removing stale pid file (pid ${old_pid:-?} is gone)"
  rm -f "$PID_FILE"
fi
for p in "$PORT" "$CTRL_PORT"; do
  port_in_use "$p" && die "port $HOST:$p is already in use (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
done

# 3. Fresh state for this run, unless asked to restart on the data of an
#    earlier one (a broker restart, for the fault suite).
KEEP=""
if [[ "${KAFKA_KEEP_DATA:-}" == 1 && -f "$DATA_DIR/meta.properties" && -s "$RUN_DIR/cluster.id" ]]; then
  # SCRAM users are written at format and the certificates are made anew on every start, so a kept
  # SASL_SSL broker would refuse its clients' new passwords: refuse the combination instead.
  [[ "$SECURITY" == PLAINTEXT ]] || die "KAFKA_KEEP_DATA=1 works with KAFKA_SECURITY=PLAINTEXT only"
  KEEP=1
  log "restarting on the existing data in $DATA_DIR (KAFKA_KEEP_DATA=1)"
else
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  : >"$LOG_FILE"
fi

# 3b. SASL_SSL: a fresh CA, the broker's certificate signed by it, SCRAM passwords. The listener
#     and the broker's own (inter-broker) client both use SASL_SSL, so no port is left in the clear
#     but the controller's, on $HOST.
TLS_DIR="$RUN_DIR/tls"
rm -rf "$TLS_DIR"
random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
make_tls() {
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  local kt=(keytool -J-Xshare:auto -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -storetype PKCS12 -storepass:env STOREPASS)
  local san="SAN=DNS:localhost,IP:127.0.0.1"
  if [[ "$HOST" =~ ^[0-9.]+$ ]]; then
    [[ "$HOST" == 127.0.0.1 ]] || san+=",IP:$HOST"
  elif [[ "$HOST" != localhost ]]; then
    san+=",DNS:$HOST"
  fi
  ( cd "$TLS_DIR"
    "${kt[@]}" -genkeypair -alias ca -keyalg EC -groupname secp256r1 -dname "CN=livewatch test CA" \
      -ext bc:c -ext KU:c=keyCertSign,cRLSign -validity 30 -keystore ca.p12
    "${kt[@]}" -exportcert -rfc -alias ca -keystore ca.p12 -file ca.pem
    "${kt[@]}" -genkeypair -alias broker -keyalg EC -groupname secp256r1 -dname "CN=$HOST" -validity 30 \
      -keystore broker.p12
    "${kt[@]}" -certreq -alias broker -keystore broker.p12 -file broker.csr
    "${kt[@]}" -gencert -alias ca -keystore ca.p12 -infile broker.csr -outfile broker.pem -rfc -validity 30 \
      -ext "$san" -ext EKU=serverAuth,clientAuth
    "${kt[@]}" -importcert -alias ca -file ca.pem -keystore broker.p12 -noprompt
    "${kt[@]}" -importcert -alias broker -file broker.pem -keystore broker.p12
    # the CA signs this one certificate: its key is not kept
    rm -f ca.p12 broker.csr
  ) >"$RUN_DIR/keytool.log" 2>&1 || { cat "$RUN_DIR/keytool.log" >&2; die "making the certificates with keytool failed"; }
}
SCRAM_ARGS=()
if [[ "$SECURITY" == SASL_SSL ]]; then
  t_tls=$(now_ms)
  STOREPASS="$(random_secret)"
  export STOREPASS  # keytool reads it from the environment (-storepass:env), not from its command line
  BROKER_PASSWORD="$(random_secret)"
  SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-$(random_secret)}"
  make_tls
  # the broker's own user for its inter-broker client; the client user with both SCRAM mechanisms
  SCRAM_ARGS=(--add-scram "SCRAM-SHA-512=[name=broker,password=$BROKER_PASSWORD]"
              --add-scram "SCRAM-SHA-256=[name=$SASL_USER,password=$SASL_PASSWORD]"
              --add-scram "SCRAM-SHA-512=[name=$SASL_USER,password=$SASL_PASSWORD]")
  umask_old=$(umask); umask 077
  cat >"$TLS_DIR/client.properties" <<CLIENT
# Generated by deploy/kafka/start.sh: a Kafka (Java) client of this broker, as $SASL_USER.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SASL_USER" password="$SASL_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
CLIENT
  cat >"$TLS_DIR/livewatch.env" <<ENV
# Generated by deploy/kafka/start.sh: livewatch's settings for this broker (LIVEWATCH_ENV_FILE=this file).
LIVEWATCH_BROKER=kafka://$BOOTSTRAP
LIVEWATCH_SECURITY_PROTOCOL=SASL_SSL
LIVEWATCH_SASL_MECHANISM=SCRAM-SHA-512
LIVEWATCH_SASL_USERNAME=$SASL_USER
LIVEWATCH_SASL_PASSWORD=$SASL_PASSWORD
LIVEWATCH_SSL_CAFILE=$TLS_DIR/ca.pem
ENV
  umask "$umask_old"
  log "certificates and SCRAM users made in $TLS_DIR in $(fmt_s $(( $(now_ms) - t_tls )))s"
fi

rm -f "$PROPS"  # a new file, so the umask below sets its mode
umask_old=$(umask); umask 077  # with SASL_SSL it holds the keystore and broker passwords
cat >"$PROPS" <<PROPS
# Generated by deploy/kafka/start.sh - overwritten on every start.
# Single-node KRaft cluster: this process is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CTRL_PORT
controller.listener.names=CONTROLLER
listeners=$SECURITY://$HOST:$PORT,CONTROLLER://$HOST:$CTRL_PORT
advertised.listeners=$SECURITY://$HOST:$PORT
inter.broker.listener.name=$SECURITY
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$SECURITY:$SECURITY
log.dirs=$DATA_DIR

# Topics: the app creates its topics explicitly (faust does so through the
# CreateTopics admin API), so typos in topic names fail loudly.
auto.create.topics.enable=false
num.partitions=$NUM_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
unclean.leader.election.enable=false
delete.topic.enable=true

# Internal topics sized for a single node and quick creation.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=$OFFSETS_PARTITIONS
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=$OFFSETS_PARTITIONS
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Test friendliness: no 3 s wait before the first rebalance of a new group.
group.initial.rebalance.delay.ms=0

# Keep the throw-away disk footprint small.
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
PROPS
if [[ "$SECURITY" == SASL_SSL ]]; then
  cat >>"$PROPS" <<PROPS

# SASL_SSL (KAFKA_SECURITY): TLS with the certificate made above, SCRAM users made at format.
# No authorizer: an authenticated user may do anything (docs/security.md).
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$BROKER_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$BROKER_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$STOREPASS
ssl.key.password=$STOREPASS
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=none
PROPS
fi
umask "$umask_old"
if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
  printf '\n# From KAFKA_EXTRA_PROPERTIES\n%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$PROPS"
fi

cat >"$LOG4J" <<LOG4J
# Generated by deploy/kafka/start.sh. Everything goes to stdout, which
# start.sh redirects to broker.log. Most of Kafka is kept at $LOG_LEVEL;
# start-up/shutdown milestones stay at INFO.
status = warn
name = livewatch-kafka
# Keep logging through the JVM shutdown so controlled-shutdown messages land.
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d{yyyy-MM-dd HH:mm:ss,SSS}] %p %m (%c)%n
rootLogger.level = $LOG_LEVEL
rootLogger.appenderRef.out.ref = OUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
logger.brokerserver.name = kafka.server.BrokerServer
logger.brokerserver.level = INFO
logger.controllerserver.name = kafka.server.ControllerServer
logger.controllerserver.level = INFO
logger.kafka.name = kafka.Kafka\$
logger.kafka.level = INFO
LOG4J

JAVA_OPTS=($HEAP_OPTS -Djava.awt.headless=true "-Dlog4j2.configurationFile=$LOG4J" ${KAFKA_JVM_OPTS:-})

# 4. Format the storage with a random cluster id (base64url of 16 random
#    bytes, same shape as `kafka-storage.sh random-uuid`; avoid a leading '-').
t_format=$(now_ms)
cluster_id=""
if [[ -n "$KEEP" ]]; then cluster_id="$(cat "$RUN_DIR/cluster.id")"; fi   # formatted already
while [[ -z "$cluster_id" || "$cluster_id" == -* ]]; do
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
done
echo "$cluster_id" >"$RUN_DIR/cluster.id"
if [[ -z "$KEEP" ]] && ! java -XX:TieredStopAtLevel=1 "${JAVA_OPTS[@]}" -cp "$CP" kafka.tools.StorageTool format \
      --config "$PROPS" --cluster-id "$cluster_id" --ignore-formatted "${SCRAM_ARGS[@]}" >>"$LOG_FILE" 2>&1; then
  show_log_tail
  die "kafka.tools.StorageTool format failed"
fi

# 5. Launch in the background, in its own session (so a Ctrl-C aimed at the
#    caller doesn't take it down half-way; stop.sh owns its lifetime).
t_launch=$(now_ms)
launcher=()
command -v setsid >/dev/null 2>&1 && launcher=(setsid)
nohup "${launcher[@]}" java "${JAVA_OPTS[@]}" -cp "$CP" kafka.Kafka "$PROPS" \
  >>"$LOG_FILE" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$PID_FILE"
log "broker starting (pid $pid, kafka $(ls "$KAFKA_HOME"/libs/kafka_2.13-*.jar | sed -E 's/.*kafka_2\.13-(.*)\.jar/\1/'), log $LOG_FILE)"

# 6. Wait for readiness. The readiness probe (ReadyCheck: a real metadata
#    round-trip with the Kafka Admin client, plus a group-coordinator lookup
#    that pre-creates __consumer_offsets) is started right away, so its JVM
#    warms up while the broker boots; meanwhile a bash /dev/tcp probe notes
#    when the port opens and we watch that the broker is still alive.
QUICK_JVM=(-Xmx64m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)
CHECK_ARGS=()
[[ "$SECURITY" == SASL_SSL ]] && CHECK_ARGS=(--command-config "$TLS_DIR/client.properties")
java "${QUICK_JVM[@]}" -cp "$KAFKA_HOME/classes:$CP" ReadyCheck "$BOOTSTRAP" "$TIMEOUT" "${CHECK_ARGS[@]}" \
  >"$RUN_DIR/readycheck.out" 2>&1 </dev/null &
check_pid=$!
fail() {
  kill "$check_pid" 2>/dev/null || true
  wait "$check_pid" 2>/dev/null || true
  [[ -s "$RUN_DIR/readycheck.out" ]] && sed 's/^/readycheck: /' "$RUN_DIR/readycheck.out" >&2
  show_log_tail
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  die "$*"
}
deadline=$(( $(date +%s) + TIMEOUT + 5 ))
t_port=""
while kill -0 "$check_pid" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || fail "broker process exited during start-up"
  (( $(date +%s) < deadline )) || fail "broker at $BOOTSTRAP not ready within ${TIMEOUT}s"
  if [[ -z "$t_port" ]] && port_in_use "$PORT"; then t_port=$(now_ms); fi
  sleep 0.1
done
if ! wait "$check_pid"; then
  fail "broker at $BOOTSTRAP did not answer metadata requests within ${TIMEOUT}s"
fi
kill -0 "$pid" 2>/dev/null || fail "broker process exited during start-up"
t_ready=$(now_ms)
[[ -n "$t_port" ]] || t_port=$t_ready
sed 's/^/start.sh: readycheck: /' "$RUN_DIR/readycheck.out"

echo "$BOOTSTRAP" >"$RUN_DIR/bootstrap.servers"
log "ready in $(elapsed)s (format $(fmt_s $((t_launch - t_format)))s, port open $(fmt_s $((t_port - t_launch)))s, ready $(fmt_s $((t_ready - t_launch)))s after launch)"
log "bootstrap.servers=$BOOTSTRAP pid=$pid run dir=$RUN_DIR"
if [[ "$SECURITY" == SASL_SSL ]]; then
  log "SASL_SSL (SCRAM-SHA-256/512) as user $SASL_USER; client settings: LIVEWATCH_ENV_FILE=$TLS_DIR/livewatch.env"
fi
