#!/usr/bin/env bash
# hack/cassandra.sh start|stop|status : a single-node Apache Cassandra for tests.
#
# Cassandra comes from Maven Central (org.apache.cassandra:cassandra-all and its
# runtime dependencies, cached in .cache/cassandra/<version>/lib) and runs on
# Java 17, bound to 127.0.0.1, with password authentication and a small heap.
# Data lives under .run/cassandra and is removed by stop. Once CQL answers,
# start creates the login role the tests use and writes
#   .run/cassandra/env                      CASSANDRA_HOSTS, CASSANDRA_PORT, CASSANDRA_SECRET_DIR
#   .run/cassandra/client-secret/{username,password}
#   .run/cassandra/tls-client-secret/{username,password,ca.crt}   (TLS port)
# which internal/cassandratest reads.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}
JAVA_HOME=${CASSANDRA_JAVA_HOME:-$(java17_home || true)}
CQL_PORT=${CASSANDRA_PORT:-9042}
# A second, TLS-only CQL port; CASSANDRA_TLS_PORT=0 starts the node without it.
TLS_PORT=${CASSANDRA_TLS_PORT:-9142}
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
HEAP=${CASSANDRA_HEAP:-1g}
READY_TIMEOUT=${CASSANDRA_READY_TIMEOUT:-5m}

LIB=$CACHE/cassandra/$CASSANDRA_VERSION/lib
STATE=$RUN/cassandra
NAME=cassandra

fetch() {
  [ -f "$LIB/.complete" ] && return 0
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local work=$CACHE/cassandra/$CASSANDRA_VERSION
  rm -rf "$LIB"
  mkdir -p "$work"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.capfleet</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  log "fetching cassandra-all $CASSANDRA_VERSION and its runtime dependencies with Maven"
  local copy=(dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB")
  # Offline first: with the jars already in ~/.m2 (a fresh clone on a used
  # machine) this skips Maven's remote checks, about half the time.
  JAVA_HOME=$JAVA_HOME mvn -o -B -q -f "$work/pom.xml" "${copy[@]}" >"$work/mvn.log" 2>&1 ||
    JAVA_HOME=$JAVA_HOME mvn -B -q -f "$work/pom.xml" "${copy[@]}" >"$work/mvn.log" 2>&1 ||
    { tail -30 "$work/mvn.log" >&2; die "Maven could not fetch cassandra-all $CASSANDRA_VERSION (log: $work/mvn.log)"; }
  [ -f "$LIB/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "Maven ran but $LIB/cassandra-all-$CASSANDRA_VERSION.jar is missing"
  touch "$LIB/.complete"
}


# make_tls writes a throw-away CA, a node certificate for 127.0.0.1 signed by it and the PKCS12 keystore
# Cassandra reads (keystore.p12, its password in keystore.pass); the CA goes to the TLS client secret.
make_tls() {
  local d=$STATE/tls
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl), or set CASSANDRA_TLS_PORT=0"
  { pki_ca "$d" /CN=capfleet-test-ca && pki_cert "$d" node /CN=127.0.0.1 serverAuth IP:127.0.0.1,DNS:localhost &&
    pki_p12 "$d" node cassandra keystore; } || die "openssl could not make the TLS keystore"
}

tls_yaml() {
  [ "$TLS_PORT" != 0 ] || return 0
  cat <<EOF
# Clear text stays on native_transport_port; TLS only on this second port.
native_transport_port_ssl: $TLS_PORT
client_encryption_options:
  enabled: true
  optional: false
  keystore: $STATE/tls/keystore.p12
  keystore_password: $(cat "$STATE/tls/keystore.pass")
  store_type: PKCS12
  require_client_auth: false
EOF
}

# commitlog_yaml: Cassandra's default, periodic (10 s), acknowledges writes before they are synced: a node
# killed with SIGKILL replays its commit log only to the last sync marker and forgets up to 10 s of
# acknowledged writes. With one replica (this node) nothing else remembers them, so a test of a crashed
# node runs CASSANDRA_COMMITLOG_SYNC=group, which answers writes after a sync every 15 ms
# (processor/processcmd's Cassandra kill test lost committed blocks under periodic). Group mode holds a
# write thread per waiting mutation, so it gets more of them; the benchmark keeps the default, as most
# clusters do (their replicas, at LOCAL_QUORUM, cover one node's loss).
commitlog_yaml() {
  case "${CASSANDRA_COMMITLOG_SYNC:-periodic}" in
    periodic) printf 'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms\n' ;;
    group) printf 'commitlog_sync: group\ncommitlog_sync_group_window: %s\n' "${CASSANDRA_COMMITLOG_WINDOW:-15ms}" ;;
    *) die "CASSANDRA_COMMITLOG_SYNC=$CASSANDRA_COMMITLOG_SYNC: periodic or group" ;;
  esac
}

write_config() {
  local conf=$STATE/conf
  mkdir -p "$conf" "$STATE/data" "$STATE/commitlog" "$STATE/saved_caches" "$STATE/hints" "$STATE/cdc_raw"
  cat >"$conf/cassandra.yaml" <<EOF
# Single test node on loopback; written by hack/cassandra.sh, removed by stop.
cluster_name: capfleet-test
# One token: nothing to allocate or stream, and the node joins at once.
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$STORAGE_PORT"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $STORAGE_PORT
start_native_transport: true
native_transport_port: $CQL_PORT
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer
# Caching credentials for long would let a test see a role change late.
roles_validity: 2s
permissions_validity: 2s
credentials_validity: 2s
data_file_directories:
  - $STATE/data
commitlog_directory: $STATE/commitlog
saved_caches_directory: $STATE/saved_caches
hints_directory: $STATE/hints
cdc_raw_directory: $STATE/cdc_raw
$(commitlog_yaml)
# Small memtables and caches: the machine is shared with Kafka, envtest and builds.
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
key_cache_size: 8MiB
counter_cache_size: 0MiB
concurrent_reads: 8
concurrent_writes: $([ "${CASSANDRA_COMMITLOG_SYNC:-periodic}" = group ] && echo 64 || echo 8)
concurrent_counter_writes: 4
concurrent_compactors: 1
# Dropped test keyspaces need no snapshots.
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
hinted_handoff_enabled: false
# The defaults (2 s for writes) time out on a CI machine busy with builds; the
# client's own timeout (cassconn: 10 s) stays above these so the node answers first.
read_request_timeout: 5000ms
write_request_timeout: 5000ms
counter_write_request_timeout: 5000ms
range_request_timeout: 8000ms
request_timeout: 8000ms
EOF
  tls_yaml >>"$conf/cassandra.yaml"
  cat >"$conf/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# Flags of Cassandra's conf/jvm-server.options and conf/jvm17-server.options that
# matter for a small test node, plus the module exports and opens without which
# Cassandra 5.0 fails on Java 17 (reflection into JDK internals).
jvm_opts() {
  local o=(
    -ea -da:net.openhft...
    -Xms512m "-Xmx$HEAP" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:MaxGCPauseMillis=300 -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError
    "-XX:HeapDumpPath=$STATE" -XX:+PerfDisableSharedMem -XX:+UseTLAB -XX:+ResizeTLAB
    -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    "-javaagent:$(ls "$LIB"/jamm-*.jar | head -1)"
    "-Dcassandra.config=file://$STATE/conf/cassandra.yaml"
    "-Dlogback.configurationFile=file://$STATE/conf/logback.xml"
    "-Dcassandra.logdir=$STATE/logs"
    "-Dcassandra.storagedir=$STATE"
    -Dcassandra-foreground=yes
    # A lone seed has nobody to gossip with: do not wait for gossip or the ring.
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    # Create the default superuser at once instead of after the usual 10 s.
    -Dcassandra.superuser_setup_delay_ms=0
    # No JMX port: nothing here uses nodetool, and a fixed port could collide.
  )
  printf '%s\n' "${o[@]}"
  # C1 only (CASSANDRA_JIT=c1, the default): half the CPU to reach "ready" (measured 11 s instead of 20 s
  # of CPU, 45 s instead of 81 s wall on a loaded 2-core machine); a test node never runs long enough for
  # C2's faster code to pay that back. A benchmark does (CASSANDRA_JIT=full, what hack/bench.sh starts):
  # with C1 only, each request costs Cassandra several times the CPU it costs a production node.
  [ "${CASSANDRA_JIT:-c1}" = full ] || echo -XX:TieredStopAtLevel=1
  # Extra JVM flags, one word each, for experiments (e.g. CASSANDRA_JVM_EXTRA=-XX:TieredStopAtLevel=1).
  [ -z "${CASSANDRA_JVM_EXTRA:-}" ] || printf '%s\n' $CASSANDRA_JVM_EXTRA
}

provision() {
  local admin=$STATE/admin-secret client=$STATE/client-secret
  mkdir -p "$admin" "$client"
  chmod 700 "$admin" "$client"
  printf cassandra >"$admin/username"
  printf cassandra >"$admin/password"
  if [ ! -s "$client/password" ]; then
    printf capfleet >"$client/username"
    (umask 077 && random_secret >"$client/password")
  fi
  (cd "$ROOT" && go run ./hack/cassprovision --port "$CQL_PORT" \
    --admin-secret-dir "$admin" --client-secret-dir "$client" \
    --timeout "$READY_TIMEOUT" --pid-file "$RUN/$NAME.pid") || return 1
  [ "$TLS_PORT" != 0 ] || return 0
  local tc=$STATE/tls-client-secret
  mkdir -p "$tc" && chmod 700 "$tc"
  cp "$client/username" "$client/password" "$STATE/tls/ca.crt" "$tc/"
}

ready() { [ -f "$STATE/env" ] && running "$NAME"; }

start() {
  if ready; then
    log "already running (pid $(cat "$RUN/$NAME.pid")), CQL on 127.0.0.1:$CQL_PORT"
    return 0
  fi
  # A leftover from a crash or an unfinished start: end it, wipe its data.
  stop_pid "$NAME"
  rm -rf "$STATE"
  for p in "$CQL_PORT" "$STORAGE_PORT" $([ "$TLS_PORT" = 0 ] || echo "$TLS_PORT"); do
    port_busy "$p" && die "port $p on 127.0.0.1 is taken by another process (not ours); free it or set CASSANDRA_PORT, CASSANDRA_STORAGE_PORT, CASSANDRA_TLS_PORT"
  done
  [ -x "$JAVA_HOME/bin/java" ] || die "no Java 17 at '$JAVA_HOME' (bash hack/deps.sh installs openjdk-17-jdk-headless, or set CASSANDRA_JAVA_HOME)"
  local t0=$SECONDS
  fetch
  mkdir -p "$STATE"
  [ "$TLS_PORT" = 0 ] || make_tls
  write_config
  local opts
  mapfile -t opts < <(jvm_opts)
  log "starting Cassandra $CASSANDRA_VERSION on $("$JAVA_HOME/bin/java" -version 2>&1 | head -1), log $RUN/$NAME.log"
  # 9>&- : the node must not inherit (and hold) the start/stop lock.
  start_bg "$NAME" "$JAVA_HOME/bin/java" "${opts[@]}" -cp "$STATE/conf:$LIB/*" org.apache.cassandra.service.CassandraDaemon 9>&-
  if ! provision; then
    tail -40 "$RUN/$NAME.log" >&2 || true
    stop_pid "$NAME"
    die "Cassandra did not become ready (log: $RUN/$NAME.log)"
  fi
  {
    printf 'CASSANDRA_HOSTS=127.0.0.1\nCASSANDRA_PORT=%s\nCASSANDRA_SECRET_DIR=%s\n' "$CQL_PORT" "$STATE/client-secret"
    [ "$TLS_PORT" = 0 ] || printf 'CASSANDRA_TLS_PORT=%s\nCASSANDRA_TLS_SECRET_DIR=%s\n' "$TLS_PORT" "$STATE/tls-client-secret"
  } >"$STATE/env.tmp"
  # Renamed into place so a reader never sees half a file.
  mv "$STATE/env.tmp" "$STATE/env"
  log "ready in $((SECONDS - t0)) s: CQL on 127.0.0.1:$CQL_PORT, role in $STATE/client-secret"
}

stop() {
  stop_pid "$NAME"
  rm -rf "$STATE"
  log "stopped"
}

status() {
  if ready && port_busy "$CQL_PORT"; then
    log "running (pid $(cat "$RUN/$NAME.pid")), CQL on 127.0.0.1:$CQL_PORT"
    return 0
  fi
  log "not running"
  return 1
}

# Two starts at once (two terminals, or make targets in parallel) would race
# for the ports and the state dir: starts and stops take turns.
mkdir -p "$RUN"
exec 9>"$RUN/$NAME.lock"
case "${1:-}" in
  start) flock 9; start ;;
  stop) flock 9; stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
