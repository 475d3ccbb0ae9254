#!/usr/bin/env bash
# hack/kafka.sh start|stop|status : a one-node Apache Kafka (KRaft, broker and
# controller in one JVM) on 127.0.0.1 for tests and local runs.
#
# Kafka's jars come from Maven Central (no download sites here), resolved once
# into $CACHE/kafka/<version>/libs. Each start gets a fresh cluster: new data
# dir, new CA and server certificate, new SCRAM password, all under $RUN/kafka,
# which stop removes. Listeners:
#   127.0.0.1:9092  PLAINTEXT        (also the inter-broker listener)
#   127.0.0.1:9093  SASL_SSL         SCRAM-SHA-512, SCRAM-SHA-256, PLAIN
#   127.0.0.1:9094  CONTROLLER       (KRaft, PLAINTEXT)
#   127.0.0.1:9095  SSL              client certificate required (mutual TLS)
# Clients find them in $RUN/kafka/env and in two kafkaconn secret dirs:
# $RUN/kafka/client-secret/ (ca.crt, sasl.mechanism, username, password) for
# 9093 and $RUN/kafka/client-mtls/ (ca.crt, tls.crt, tls.key) for 9095.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
# Kafka's own distribution ships log4j 2.24.x with the slf4j 1.x bridge, since
# its modules still log through slf4j-api 1.7.
LOG4J_VERSION=2.24.3
HOST=127.0.0.1
# KAFKA_PORT moves all four listeners (PORT..PORT+3), e.g. for a second,
# private broker next to the shared one (with its own CAPFLEET_RUN).
PLAIN_PORT=${KAFKA_PORT:-9092}
SECURE_PORT=$((PLAIN_PORT + 1)) CONTROLLER_PORT=$((PLAIN_PORT + 2)) MTLS_PORT=$((PLAIN_PORT + 3))
SCRAM_USER=capfleet
KDIR=$RUN/kafka
LIBS=$CACHE/kafka/$KAFKA_VERSION/libs
JAVA=${JAVA:-java}
# Seconds; generous because CI may start Cassandra at the same time on 2 cores.
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-300}

usage() { echo "usage: $0 start|stop|status" >&2; exit 2; }

# fetch_jars resolves kafka_2.13 and its runtime dependencies with Maven into
# $LIBS, once per version; a marker file tells a finished copy from a broken one.
fetch_jars() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local work=$CACHE/kafka/$KAFKA_VERSION/pom
  rm -rf "$LIBS" "$work" && mkdir -p "$work"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.capfleet.hack</groupId><artifactId>kafka-runtime</artifactId><version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS" >"$work/mvn.log" 2>&1 ||
    { tail -20 "$work/mvn.log" >&2; die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"; }
  ls "$LIBS"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null || die "kafka_2.13 jar missing after Maven ran"
  touch "$LIBS/.complete"
}

classpath() { local IFS=:; local jars=("$LIBS"/*.jar); echo "${jars[*]}"; }

# make_certs writes a throwaway CA, a server certificate for 127.0.0.1 and localhost and a client
# certificate for the mutual-TLS listener; server.pem (PKCS#8 key + chain) is what Kafka's PEM keystore reads.
make_certs() {
  local d=$KDIR/tls
  { pki_ca "$d" "/CN=capfleet test Kafka CA" &&
    pki_cert "$d" server /CN=localhost serverAuth "IP:$HOST,DNS:localhost" && pki_pem "$d" server &&
    pki_cert "$d" client "/CN=$SCRAM_USER" clientAuth; } || die "openssl could not make the broker's certificates"
}

# write_config writes server.properties, the log4j2 config and the client files.
write_config() {
  local password=$1
  mkdir -p "$KDIR/data" "$KDIR/client-secret" "$KDIR/client-mtls"
  umask 077
  cat >"$KDIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PLAIN_PORT,SASL_SSL://$HOST:$SECURE_PORT,SSL://$HOST:$MTLS_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PLAIN_PORT,SASL_SSL://$HOST:$SECURE_PORT,SSL://$HOST:$MTLS_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KDIR/data

listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SCRAM_USER="$password";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$KDIR/tls/server.pem
listener.name.sasl_ssl.ssl.client.auth=none

listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$KDIR/tls/server.pem
listener.name.ssl.ssl.truststore.type=PEM
listener.name.ssl.ssl.truststore.location=$KDIR/tls/ca.crt
listener.name.ssl.ssl.client.auth=required

# One node: every internal topic gets a single replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=1
EOF
  cat >"$KDIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
# Per-request and state-change chatter drowns the few lines that matter.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
EOF
  cp "$KDIR/tls/ca.crt" "$KDIR/client-secret/ca.crt"
  printf 'SCRAM-SHA-512\n' >"$KDIR/client-secret/sasl.mechanism"
  printf '%s\n' "$SCRAM_USER" >"$KDIR/client-secret/username"
  printf '%s\n' "$password" >"$KDIR/client-secret/password"
  cp "$KDIR/tls/ca.crt" "$KDIR/tls/client.crt" "$KDIR/tls/client.key" "$KDIR/client-mtls/"
  mv "$KDIR/client-mtls/client.crt" "$KDIR/client-mtls/tls.crt"
  mv "$KDIR/client-mtls/client.key" "$KDIR/client-mtls/tls.key"
  cat >"$KDIR/env" <<EOF
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_BROKERS=$HOST:$PLAIN_PORT
KAFKA_SECURE_BROKERS=$HOST:$SECURE_PORT
KAFKA_SECRET_DIR=$KDIR/client-secret
KAFKA_MTLS_BROKERS=$HOST:$MTLS_PORT
KAFKA_MTLS_SECRET_DIR=$KDIR/client-mtls
EOF
  umask 022
}

# KAFKA_HEAP_OPTS and KAFKA_OPTS mean what they mean to Kafka's own scripts
# (a bigger heap for benchmarks, say).
jvm_opts() {
  echo "${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent
    -Djava.awt.headless=true -Dlog4j2.configurationFile=file:$KDIR/log4j2.properties ${KAFKA_OPTS:-}"
}

# Class data sharing: the first broker records the classes it loaded into an
# archive when it exits (at stop); later starts map that archive instead of
# parsing and verifying ~5000 classes again, which halves the boot on a busy
# 2-core machine (measured: 36s -> 20s and 34s -> 14s from JVM start to
# "Kafka Server started"). Archives only fit the JVM that wrote them, hence the
# key; a stale one is reported and ignored by the JVM.
cds_archive() { echo "$CACHE/kafka/$KAFKA_VERSION/cds-$("$JAVA" -version 2>&1 | md5sum | cut -c1-12).jsa"; }

cds_opts() {
  local a; a=$(cds_archive)
  if [ -f "$a" ]; then echo "-XX:SharedArchiveFile=$a"; else echo "-XX:ArchiveClassesAtExit=$KDIR/cds.jsa"; fi
}

# cds_keep moves the archive the stopped broker wrote into the cache, once the
# JVM accepts it: a broker killed while dumping leaves a broken one behind.
cds_keep() {
  [ -f "$KDIR/cds.jsa" ] || return 0
  if "$JAVA" -XX:SharedArchiveFile="$KDIR/cds.jsa" -Xshare:on -cp "$(classpath)" -version >/dev/null 2>&1; then
    mv "$KDIR/cds.jsa" "$(cds_archive)"
  fi
}

# format_storage writes the KRaft metadata with a new cluster id and the SCRAM
# credentials, so SASL works from the first request (KIP-900). The tool takes
# the password only as an argument; it is a throwaway one for this local broker.
format_storage() {
  local password=$1 id
  # A Kafka cluster id is 16 random bytes in unpadded base64url, never starting with "-" (as Kafka's own
  # Uuid.randomUuid ensures): kafka-storage would read such an id as an option and fail, one start in 64.
  id=-
  while [ "${id#-}" != "$id" ]; do id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='); done
  local cds; cds=$(cds_archive)
  [ -f "$cds" ] && cds="-XX:SharedArchiveFile=$cds" || cds=
  # shellcheck disable=SC2046,SC2086
  "$JAVA" $(jvm_opts) $cds -cp "$(classpath)" kafka.tools.StorageTool format \
    -t "$id" -c "$KDIR/server.properties" --ignore-formatted \
    --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$password]" \
    --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$password]" \
    >"$KDIR/format.log" 2>&1 || { cat "$KDIR/format.log" >&2; die "kafka-storage format failed"; }
}

# build_probe builds the readiness probe: a metadata request on every client
# listener through kafkaconn, the code every capfleet component connects with.
# On a machine with a cold Go build cache this takes minutes, so it runs while
# the broker boots and before the readiness clock starts.
build_probe() {
  (cd "$ROOT" && go build -o "$KDIR/kafkaready" ./hack/kafkaready) >"$KDIR/probe-build.log" 2>&1
}

ready() { [ -x "$KDIR/kafkaready" ] && "$KDIR/kafkaready" -env "$KDIR/env" -timeout 5s 2>/dev/null; }

# ours: the PID file names a live broker that this script started. PIDs are
# reused (after a reboot, say), and a stale file must never get another process
# ended or taken for Kafka.
ours() { running kafka && grep -qa kafka.Kafka "/proc/$(cat "$RUN/kafka.pid")/cmdline" 2>/dev/null; }

java_major() { "$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}'; }


cmd_start() {
  ours || rm -f "$RUN/kafka.pid"
  if running kafka; then
    ready && { log "already running (pid $(cat "$RUN/kafka.pid"))"; return 0; }
    die "a Kafka started by this script is running (pid $(cat "$RUN/kafka.pid")) but does not answer; see $RUN/kafka.log or run $0 stop"
  fi
  for p in $PLAIN_PORT $SECURE_PORT $CONTROLLER_PORT $MTLS_PORT; do
    port_busy "$p" "$HOST" && die "port $HOST:$p is taken by a process this script did not start"
  done
  local t0=$SECONDS password
  [ "$(java_major)" -ge 17 ] 2>/dev/null || die "Kafka $KAFKA_VERSION needs Java 17 or newer; '$JAVA' is '$(java_major)' (set JAVA=/path/to/java)"
  fetch_jars
  rm -rf "$KDIR" && mkdir -p "$KDIR"
  password=$(random_secret)
  build_probe 9>&- &
  local probe_pid=$!
  make_certs
  write_config "$password"
  format_storage "$password"
  # shellcheck disable=SC2046
  # 9>&- : the broker must not inherit (and so hold) the start/stop lock.
  start_bg kafka "$JAVA" $(jvm_opts) $(cds_opts) -cp "$(classpath)" kafka.Kafka "$KDIR/server.properties" 9>&-
  log "started Kafka $KAFKA_VERSION (pid $(cat "$RUN/kafka.pid")), log in $RUN/kafka.log; waiting for metadata"
  # A broker that never got ready is ended here, so the next start is not
  # refused by a half-started JVM holding the ports.
  trap 'stop_pid kafka' EXIT
  wait "$probe_pid" || { cat "$KDIR/probe-build.log" >&2; die "could not build hack/kafkaready"; }
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$KDIR/kafkaready" -env "$KDIR/env" -timeout 5s 2>"$KDIR/ready.err"; do
    running kafka || { tail -30 "$RUN/kafka.log" >&2; die "Kafka exited during startup; log in $RUN/kafka.log"; }
    [ $SECONDS -lt $deadline ] || { cat "$KDIR/ready.err" >&2; die "Kafka not ready after ${READY_TIMEOUT}s; log in $RUN/kafka.log"; }
  done
  trap - EXIT
  log "ready in $((SECONDS - t0))s: PLAINTEXT $HOST:$PLAIN_PORT, SASL_SSL $HOST:$SECURE_PORT, SSL (mutual) $HOST:$MTLS_PORT; clients read $KDIR/env"
}

cmd_stop() {
  if ours; then
    log "stopping Kafka (pid $(cat "$RUN/kafka.pid"))"
    stop_pid kafka
    cds_keep
  fi
  rm -f "$RUN/kafka.pid"
  rm -rf "$KDIR"
}

cmd_status() {
  ours || { echo "kafka: not running"; return 1; }
  ready || { echo "kafka: pid $(cat "$RUN/kafka.pid") up but not answering"; return 1; }
  echo "kafka: running (pid $(cat "$RUN/kafka.pid")), ready; env in $KDIR/env"
}

# Engineers and CI share one broker per checkout: a lock keeps two starts (or a
# start and a stop) from racing for the same ports and files.
mkdir -p "$RUN"
exec 9>"$RUN/kafka.lock"
lock() { flock -w 300 9 || die "another hack/kafka.sh has held $RUN/kafka.lock for 5 minutes"; }
case ${1:-} in
  start) lock; cmd_start ;;
  stop) lock; cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
