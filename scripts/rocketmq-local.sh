#!/usr/bin/env bash
# rocketmq-local.sh - fetch (Maven Central), start, wait for, and stop a real Apache RocketMQ
# name server + one master broker (or RMQ_BROKERS of them) on 127.0.0.1 (or RMQ_HOST) for rmq's
# integration tests.
#
# Usage:
#   scripts/rocketmq-local.sh fetch                      # resolve jars into the cache (once)
#   scripts/rocketmq-local.sh up                         # start namesrv + broker(s), wait until registered
#   scripts/rocketmq-local.sh status                     # exit 0 iff every process runs and listens
#   scripts/rocketmq-local.sh pids                       # one line per running process: NAME PID
#   scripts/rocketmq-local.sh create-topic TOPIC [QUEUES]   # read=write=QUEUES (default 4), verified
#   scripts/rocketmq-local.sh mqadmin ARGS...            # mqadmin passthrough (-n defaults to this cluster)
#   scripts/rocketmq-local.sh down                       # stop the broker(s), then namesrv, by pid
#   scripts/rocketmq-local.sh kill|stop|cont|restart NAME   # one process, by name (below)
#   scripts/rocketmq-local.sh env                        # print the effective settings
#
# Environment (all optional):
#   RMQ_VERSION        RocketMQ version on Maven Central               (5.3.3)
#                      4.9.7 and 5.5.0 also run (see "Versions"); 4.x: IPv4 and plain TCP only
#                      tried, ACL 1.0 only.
#   RMQ_NAMESRV_PORT   name server port                                (9876)
#   RMQ_BROKER_PORT    broker listenPort; also binds PORT-2 (fast/VIP server, 127.0.0.1)
#                      and PORT+1 (HA, always 0.0.0.0)                  (10911)
#   RMQ_DATA           data/log/pid dir of THIS cluster  (${TMPDIR:-/tmp}/rmq-local-$RMQ_NAMESRV_PORT)
#                      `down`/`status` find the pids through it, so use the same RMQ_NAMESRV_PORT
#                      (or RMQ_DATA) for up, status and down.
#   RMQ_CLUSTER        brokerClusterName                               (DefaultCluster)
#   RMQ_BROKER_NAME    brokerName                                      (broker-a)
#   RMQ_BROKERS        number of master brokers under the one name server             (1)
#                      With N > 1 they are named broker-a, broker-b, ... (RMQ_BROKER_NAME is
#                      then unused); broker i (from 0) listens on RMQ_BROKER_PORT + 10*i (and
#                      that -2, +1) and keeps its data in $RMQ_DATA/broker (i = 0) or
#                      $RMQ_DATA/broker<i+1>.  `down` stops every broker found in $RMQ_DATA.
#   RMQ_NAMESRVS       name servers (1 or 2); the second one, named namesrv-2, listens on
#                      RMQ_NAMESRV_PORT + 1 (data in $RMQ_DATA/namesrv2), and every broker
#                      registers with both                                           (1)
#   RMQ_SLAVES         1: each master gets a slave (classic master/slave: same brokerName,
#                      brokerId=1, brokerRole=SLAVE, replicating from the master's HA port),
#                      named <brokerName>-slave, listening on the master's port + 5 (and that
#                      -2, +1), data in <master's dir>-slave                          (0)
#                      The controller mode (automatic master switch, DLedger controller) is
#                      not offered: see "Controller mode" below.
#   RMQ_HOST           address every server binds and advertises         (127.0.0.1)
#                      ::1 gives an IPv6 cluster: name server [::1]:PORT, brokers registered
#                      as [::1]:PORT (HA port still on all addresses).
#   RMQ_CACHE          jar cache root, outside the repo                ($HOME/.cache/rmq)
#   RMQ_LIB            jar dir          ($RMQ_CACHE/rocketmq-$RMQ_VERSION/lib)
#   JAVA / JAVA_HOME   java binary: $JAVA, else $JAVA_HOME/bin/java, else JDK 17 under
#                      /usr/lib/jvm/java-17-openjdk-amd64, else `java` on PATH
#   RMQ_START_TIMEOUT  seconds for the whole `up` (namesrv + broker + registration)   (120)
#   RMQ_STOP_TIMEOUT   seconds per process between SIGTERM and SIGKILL               (60)
#   RMQ_TLS_MODE       -Dtls.server.mode for both servers: disabled|permissive|enforcing  (disabled)
#                      permissive = plaintext and TLS on the same port, self-signed certificate
#                      enforcing = TLS only, with certificates this script makes (RMQ_TLS_CERTS)
#   RMQ_TLS_CERTS      1: make a test CA and certificates in $RMQ_DATA/tls and have the servers
#                      use them instead of a self-signed one: ca.pem (the CA), server.pem/.key
#                      (IP:$RMQ_HOST, DNS:localhost), client.pem/.key (for mutual TLS),
#                      other-ca.pem (a CA that signed nothing here)  (1 when enforcing, else 0)
#   RMQ_TLS_CLIENT_AUTH  with RMQ_TLS_CERTS: none|optional|require client certificates  (require)
#   RMQ_ACL            0: no ACL.  1: ACL 1.0 - conf/plain_acl.yml with the accounts below
#                      (brokers up to 5.2 read it with aclEnable=true; 5.3+ import it into ACL
#                      2.0 at boot).  2: ACL 2.0 (5.3+) - authentication and authorization on,
#                      users and ACLs made with mqadmin after boot.                (0)
#                      Accounts: rmq-admin / rmq-admin-secret (super user; mqadmin uses it),
#                      rmq-app / rmq-app-secret: publish and subscribe on topics RmqAcl*
#                      and every group; no right on topic RmqNoPermTopic.
#   RMQ_EXTRA_JVM_OPTS extra JVM options for namesrv and broker (word-split)
#   RMQ_BROKER_CONF_EXTRA  extra key=value lines appended to broker.conf (last one wins)
#
# Processes by name, for fault tests: namesrv, namesrv-2, the brokers' names (broker-a, ...) and
# their slaves (broker-a-slave, ...); `pids` lists them.
#   kill NAME     SIGKILL (no shutdown hook: the store recovers at the next start)
#   stop NAME     SIGSTOP (frozen: keeps its sockets open and answers nothing)
#   cont NAME     SIGCONT
#   restart NAME  SIGTERM (SIGKILL after RMQ_STOP_TIMEOUT) if it runs, then start it again with
#                 the same configuration and store, and wait for its boot line
#
# Controller mode: 5.3.3 ships the controller (rocketmq-controller, DLedger-based, also
# embeddable in the name server with enableControllerInNamesrv=true), but a master switch needs
# brokers with enableControllerMode=true, a controller quorum, and a syncStateSet elected after
# boot; the master/slave pair above keeps the classic roles (the slave serves reads when the
# master is gone, and no one promotes it), which is what the fault tests need.
#
# Ready means: stdout.log of each JVM has its boot line, then `mqadmin clusterList` lists the broker:
#   namesrv/stdout.log: The Name Server boot success. serializeType=JSON, address 127.0.0.1:9876
#   broker/stdout.log:  The broker[broker-a, 127.0.0.1:10911] boot success. serializeType=JSON and name server is 127.0.0.1:9876
#   clusterList row:    DefaultCluster  broker-a  0  127.0.0.1:10911  V5_3_3  ...
# Layout: $RMQ_DATA/{namesrv,broker}/{pid,stdout.log,*.conf,logs/rocketmqlogs/*.log}, broker store
# in $RMQ_DATA/broker/store, mqadmin logs (and every clusterList attempt of `up`) in $RMQ_DATA/tools.
#
# Measured on the first real runs (2 cores, OpenJDK 17.0.15 Debian, Maven 3.8.7, RocketMQ 5.3.3,
# Maven Central reachable; several other clusters and cargo builds sharing the box at times):
#   * fetch, cold ~/.m2: 58 s, 73 s, 122 s (network/load); 134 jars, 83 MB lib, ~111 MB in ~/.m2.
#     Warm ~/.m2, empty lib: 22 s.  Lib present: no mvn call at all.
#   * up, warm cache, idle box: namesrv 1-2 s, broker 2-5 s, +5-7 s for the clusterList check,
#     8-12 s in total; with RMQ_TLS_MODE=permissive 15-18 s (RSA key generation for the self-signed
#     certificate in each remoting server).  Under load average 10-14: 13-45 s.  First cold run:
#     fetch 58 s + boot 15 s.
#   * every mqadmin call costs 4-6 s: JVM start over 134 jars, plus ~3 s in the client's shutdown
#     (NettyEventExecutor join).  create-topic makes two calls: ~11 s.
#   * down: ~13 s (broker ~11 s - its services shut down one by one - then namesrv ~2 s).
#   * JDK 17 worked; Temurin 25 was not needed.  5.3.3 also ran up/create-topic/down WITHOUT the
#     --add-opens flags with no IllegalAccessError/InaccessibleObjectException; they stay as harmless.
#   * `grep -i exception */stdout.log` is empty after up/create-topic/down.  The broker's stdout.log
#     starts with ~170 lines of logback status ("<level> element is deprecated" in the shipped
#     rmq.broker.logback.xml makes logback print its status); harmless.  namesrv.log logs an ERROR
#     "Handle unregister broker request failed ... InterruptedException" at shutdown; harmless.
#   * Ports: listenPort and listenPort-2 bind 127.0.0.1, the HA port listenPort+1 binds *:port.
# Differences from docs/real-broker.md (written from source, before any run):
#   * clusterList prints a broker row only if its runtime-stats RPC to the broker succeeds and
#     swallows the exception otherwise: right after boot on a loaded box the output was the header
#     alone although the broker had registered (broker.log logs the registration before the boot
#     line).  Hence the retry loop in `registered`.
#   * broker.log logs BrokerConfig/Netty values (listenPort=..., autoCreateTopicEnable=...) but NOT
#     MessageStoreConfig ones (mappedFileSizeCommitLog, maxIndexNum, ...).  Check those with
#     `mqadmin getBrokerConfig -b 127.0.0.1:PORT`; all keys of broker.conf below were applied.
#   * topicRoute prints pretty-printed, not-quite-JSON ("brokerAddrs":{0:"127.0.0.1:10911"}); the
#     last key of an object has no trailing comma.  mqadmin failures go to stderr as stack traces,
#     stdout stays empty, exit status is 0.
#   * mvn -B -q still prints bare ANSI colour escapes; the fetch hides mvn output unless it fails.
#   * -Dtls.server.mode=disabled works and saves 3-7 s per up; it is the default here.
# Versions (measured on the same box, load average 13-50 from other work, Dec 2026):
#   * 4.9.7: fetch 40 jars, 28 MB, 11 s.  Same main classes as 5.x (NamesrvStartup,
#     BrokerStartup, tools.command.MQAdminStartup, all under org.apache.rocketmq).  Each reads
#     logback from $ROCKETMQ_HOME/conf/logback_{namesrv,broker,tools}.xml (JoranConfigurator on
#     that path; the shipped 4.x jars carry no such file), so `up` writes minimal ones.
#     Boot lines: "The Name Server boot success. serializeType=JSON" (no address: `up` waits for
#     the port as well), "The broker[broker-a, 127.0.0.1:41911] boot success. serializeType=JSON
#     and name server is 127.0.0.1:41876".  clusterList row: DefaultCluster broker-a 0
#     127.0.0.1:41911 V4_9_7 ...  Name server and broker have no bindAddress: they listen on
#     *:port.  up: 12 s (load 13), 21 s, 166 s (load 40, three clusters starting at once).
#     5.x-only broker.conf keys (timerWheelEnable, ...) are ignored.
#     ACL 1.0 (RMQ_ACL=1): aclEnable=true runs PlainAccessValidator on conf/plain_acl.yml; a
#     refusal is SYSTEM_ERROR (1), remark "org.apache.rocketmq.acl.common.AclException: Check
#     signature failed for accessKey=rmq-app, org.apache.rocketmq.acl.plain.PlainPermissionManager
#     .validate(PlainPermissionManager.java:683)" (also "No accessKey is configured", "No acl
#     config for X", "No default permission for topic=RmqNoPermTopic").
#     The broker drops WAIT=true from stored messages (5.x keeps it); no POP (a POP request gets
#     REQUEST_CODE_NOT_SUPPORTED).
#   * 5.5.1: only rocketmq-broker-5.5.1.jar is on Maven Central; rocketmq-all:pom (its parent),
#     namesrv, tools and client 5.5.1 answer 404, so `fetch` fails ("Non-resolvable import POM").
#     5.4.0 has no rocketmq-all pom either.  5.5.0 is the newest complete release: fetch 137
#     jars, 94 MB, 36 s; up 30 s (load ~25); same boot lines as 5.3.3; clusterList V5_5_0.
#   * 4.9.8's server jars are not on Maven Central.
set -euo pipefail

RMQ_VERSION="${RMQ_VERSION:-5.3.3}"
[[ "$RMQ_VERSION" =~ ^[45]\.[0-9]+\.[0-9]+$ ]] || { echo "rocketmq-local: RMQ_VERSION must be 4.x.y or 5.x.y, got '$RMQ_VERSION'" >&2; exit 2; }
# 4.x differs from 5.x in how the servers are started and announce themselves (see the header)
RMQ_MAJOR="${RMQ_VERSION%%.*}"
RMQ_NAMESRV_PORT="${RMQ_NAMESRV_PORT:-9876}"
RMQ_BROKER_PORT="${RMQ_BROKER_PORT:-10911}"
RMQ_DATA="${RMQ_DATA:-${TMPDIR:-/tmp}/rmq-local-$RMQ_NAMESRV_PORT}"
RMQ_CLUSTER="${RMQ_CLUSTER:-DefaultCluster}"
RMQ_BROKER_NAME="${RMQ_BROKER_NAME:-broker-a}"
RMQ_CACHE="${RMQ_CACHE:-$HOME/.cache/rmq}"
RMQ_LIB="${RMQ_LIB:-$RMQ_CACHE/rocketmq-$RMQ_VERSION/lib}"
RMQ_START_TIMEOUT="${RMQ_START_TIMEOUT:-120}"
RMQ_STOP_TIMEOUT="${RMQ_STOP_TIMEOUT:-60}"
RMQ_TLS_MODE="${RMQ_TLS_MODE:-disabled}"
if [[ "$RMQ_TLS_MODE" == enforcing ]]; then RMQ_TLS_CERTS="${RMQ_TLS_CERTS:-1}"; else RMQ_TLS_CERTS="${RMQ_TLS_CERTS:-0}"; fi
RMQ_TLS_CLIENT_AUTH="${RMQ_TLS_CLIENT_AUTH:-require}"
RMQ_ACL="${RMQ_ACL:-0}"
[[ "$RMQ_ACL" =~ ^[012]$ ]] || { echo "rocketmq-local: RMQ_ACL must be 0, 1 or 2" >&2; exit 2; }
ACL_ADMIN=rmq-admin ACL_ADMIN_SECRET=rmq-admin-secret ACL_APP=rmq-app ACL_APP_SECRET=rmq-app-secret

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RMQ_POM="$HERE/rocketmq/pom.xml"
RMQ_BROKERS="${RMQ_BROKERS:-1}"
RMQ_HOST="${RMQ_HOST:-127.0.0.1}"
RMQ_NAMESRVS="${RMQ_NAMESRVS:-1}"
RMQ_SLAVES="${RMQ_SLAVES:-0}"
[[ "$RMQ_BROKERS" =~ ^[1-9]$ ]] || { echo "rocketmq-local: RMQ_BROKERS must be 1..9" >&2; exit 2; }
[[ "$RMQ_NAMESRVS" =~ ^[12]$ ]] || { echo "rocketmq-local: RMQ_NAMESRVS must be 1 or 2" >&2; exit 2; }
[[ "$RMQ_SLAVES" =~ ^[01]$ ]] || { echo "rocketmq-local: RMQ_SLAVES must be 0 or 1" >&2; exit 2; }
# host:port, with brackets around an IPv6 host
hostport() { if [[ "$RMQ_HOST" == *:* ]]; then echo "[$RMQ_HOST]:$1"; else echo "$RMQ_HOST:$1"; fi; }
# an extended regex for host:port as the servers print it: brokers print and register an IPv6
# address without brackets (::1:10911), so they are optional
hostport_re() { printf '\\[?%s\\]?:%s' "$(sed -e 's/[.]/\\&/g' <<<"$RMQ_HOST")" "$1"; }
NS_ADDR="$(hostport "$RMQ_NAMESRV_PORT")"
NS_DIR="$RMQ_DATA/namesrv"
NS2_PORT=$((RMQ_NAMESRV_PORT + 1))
NS2_ADDR="$(hostport "$NS2_PORT")"
NS2_DIR="$RMQ_DATA/namesrv2"
# what the brokers register with
if ((RMQ_NAMESRVS == 2)); then NS_LIST="$NS_ADDR;$NS2_ADDR"; else NS_LIST="$NS_ADDR"; fi
BROKER_DIR="$RMQ_DATA/broker"
# broker i (from 0): data dir, name, listen port
broker_dir() { if (($1 == 0)); then echo "$BROKER_DIR"; else echo "$RMQ_DATA/broker$(($1 + 1))"; fi; }
broker_name() {
  local letters=abcdefghi
  if ((RMQ_BROKERS == 1)); then echo "$RMQ_BROKER_NAME"; else echo "broker-${letters:$1:1}"; fi
}
broker_port() { echo $((RMQ_BROKER_PORT + 10 * $1)); }
# the slave of broker i: data dir and listen port (its name is the master's)
slave_dir() { echo "$(broker_dir "$1")-slave"; }
slave_port() { echo $((RMQ_BROKER_PORT + 10 * $1 + 5)); }
NS_MAIN=org.apache.rocketmq.namesrv.NamesrvStartup
BROKER_MAIN=org.apache.rocketmq.broker.BrokerStartup
ADMIN_MAIN=org.apache.rocketmq.tools.command.MQAdminStartup

if [[ -n "${JAVA:-}" ]]; then
  :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="$JAVA_HOME/bin/java"
elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
  JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
else
  JAVA=java
fi

# The four --add-opens are not needed by 5.3.3 on default settings (see "Measured"), but they are
# harmless and needed by 4.9.x (MappedFile cleaner) and by 5.x opt-in store settings
# (transientStorePoolEnable, warmMapedFileEnable, dataReadAheadEnable=false, controller mode).
JAVA_COMMON=(-server -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -Dfile.encoding=UTF-8
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED)

log() { echo "rocketmq-local: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------------- fetch
lib_ok() {
  [[ -f "$RMQ_LIB/.complete" && -f "$RMQ_LIB/rocketmq-broker-$RMQ_VERSION.jar" &&
     -f "$RMQ_LIB/rocketmq-namesrv-$RMQ_VERSION.jar" && -f "$RMQ_LIB/rocketmq-tools-$RMQ_VERSION.jar" ]]
}

fetch() {
  lib_ok && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch RocketMQ jars)"
  mkdir -p "$(dirname "$RMQ_LIB")"
  # one fetch at a time per cache dir (two clusters may come up at once)
  exec 8>"$(dirname "$RMQ_LIB")/.fetch.lock"
  flock -w 900 8 || die "timed out waiting for another fetch into $RMQ_LIB"
  if ! lib_ok; then
    local tmp="$RMQ_LIB.tmp.$$" t0=$SECONDS
    rm -rf "$tmp"
    log "fetching RocketMQ $RMQ_VERSION jars from Maven Central into $RMQ_LIB"
    # mvn uses the same JDK as the servers unless JAVA_HOME says otherwise
    # mvn -B -q still prints bare colour escapes, so its output is shown only when it fails
    if ! mvn -B -ntp -q -f "$RMQ_POM" -Drmq.version="$RMQ_VERSION" -Drmq.lib="$tmp" \
        dependency:copy-dependencies >"$tmp.mvn.log" 2>&1; then
      cat "$tmp.mvn.log" >&2
      rm -rf "$tmp" "$tmp.mvn.log"; die "mvn dependency:copy-dependencies failed for RocketMQ $RMQ_VERSION"
    fi
    rm -f "$tmp.mvn.log"
    [[ -f "$tmp/rocketmq-broker-$RMQ_VERSION.jar" && -f "$tmp/rocketmq-namesrv-$RMQ_VERSION.jar" ]] ||
      { rm -rf "$tmp"; die "RocketMQ $RMQ_VERSION jars missing after mvn (wrong version?)"; }
    touch "$tmp/.complete"
    rm -rf "$RMQ_LIB"
    mv "$tmp" "$RMQ_LIB"
    log "fetched $(ls "$RMQ_LIB" | wc -l) jars ($(du -sh "$RMQ_LIB" | cut -f1)) in $((SECONDS - t0)) s"
  fi
  exec 8>&-
}

# ------------------------------------------------------------------------------------ processes
# pid_of DIR : prints the pid recorded in DIR/pid if that process is alive AND is the JVM this
# script started for DIR (its command line carries -Duser.home=DIR); guards against pid reuse.
pid_of() {
  local dir=$1 pid
  [[ -f "$dir/pid" ]] || return 1
  pid="$(<"$dir/pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "-Duser.home=$dir" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$RMQ_HOST/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------- TLS, ACL
TLS_DIR="$RMQ_DATA/tls"
# JVM options of the servers and of mqadmin for the certificates of RMQ_TLS_CERTS: the servers
# present server.pem and check client certificates against ca.pem; their own outgoing
# connections (broker -> name server, mqadmin) present client.pem and check the server's.
tls_opts() {
  ((RMQ_TLS_CERTS)) || return 0
  printf '%s\n' -Dtls.test.mode.enable=false \
    -Dtls.server.certPath="$TLS_DIR/server.pem" -Dtls.server.keyPath="$TLS_DIR/server.key" \
    -Dtls.server.trustCertPath="$TLS_DIR/ca.pem" -Dtls.server.need.client.auth="$RMQ_TLS_CLIENT_AUTH" \
    -Dtls.enable=true -Dtls.client.authServer=true -Dtls.client.trustCertPath="$TLS_DIR/ca.pem" \
    -Dtls.client.certPath="$TLS_DIR/client.pem" -Dtls.client.keyPath="$TLS_DIR/client.key"
}

# make_certs : a test CA, a server and a client certificate signed by it (EC P-256: fast to
# make), keys in PKCS#8 as netty reads them, and a second CA that signed nothing here.
make_certs() {
  command -v openssl >/dev/null || die "openssl not found (needed for RMQ_TLS_CERTS=1)"
  rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"
  local d=$TLS_DIR ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes) san="IP:$RMQ_HOST,DNS:localhost"
  {
    for ca in ca other-ca; do
      openssl req -x509 "${ec[@]}" -days 7 -subj "/CN=rmq test $ca" -keyout "$d/$ca.key" -out "$d/$ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    done
    # leaf NAME CN EXTENSIONS
    leaf() {
      openssl req -new "${ec[@]}" -subj "/CN=$2" -keyout "$d/$1.key" -out "$d/$1.csr"
      printf '%b' "$3" >"$d/$1.ext"
      openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 7 \
        -extfile "$d/$1.ext" -out "$d/$1.pem"
    }
    leaf server localhost "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=$san\n"
    leaf client rmq-test-client "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  } >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "making the test certificates failed"; }
}

# write_acl_files : conf/tools.yml (mqadmin signs as the admin) and, for ACL 1.0,
# conf/plain_acl.yml, in the servers' ROCKETMQ_HOME.
write_acl_files() {
  ((RMQ_ACL)) || return 0
  local conf
  conf="$(rmq_home)/conf"
  printf 'accessKey: %s\nsecretKey: %s\n' "$ACL_ADMIN" "$ACL_ADMIN_SECRET" >"$conf/tools.yml"
  ((RMQ_ACL == 1)) || return 0
  cat >"$conf/plain_acl.yml" <<YML
globalWhiteRemoteAddresses: []
accounts:
  - accessKey: $ACL_ADMIN
    secretKey: $ACL_ADMIN_SECRET
    admin: true
  - accessKey: $ACL_APP
    secretKey: $ACL_APP_SECRET
    admin: false
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
    topicPerms:
      - RmqNoPermTopic=DENY
YML
}

# broker.conf lines of the ACL mode
acl_conf() {
  ((RMQ_ACL)) || return 0
  # 4.x has ACL 1.0 only: aclEnable=true makes the broker check every request with
  # PlainAccessValidator against conf/plain_acl.yml
  if ((RMQ_MAJOR == 4)); then echo "aclEnable=true"; return 0; fi
  cat <<CONF
aclEnable=true
authenticationEnabled=true
authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider
authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider
authorizationEnabled=true
authorizationProvider=org.apache.rocketmq.auth.authorization.provider.DefaultAuthorizationProvider
authorizationMetadataProvider=org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider
innerClientAuthenticationCredentials={"accessKey":"$ACL_ADMIN","secretKey":"$ACL_ADMIN_SECRET"}
CONF
  if ((RMQ_ACL == 1)); then
    echo "migrateAuthFromV1Enabled=true"
  else
    echo "initAuthenticationUser={\"username\":\"$ACL_ADMIN\",\"password\":\"$ACL_ADMIN_SECRET\"}"
  fi
}

# acl2_users : the application user and its rights, through the admin API (ACL 2.0)
acl2_users() {
  local out
  out="$(mqadmin createUser -n "$NS_ADDR" -c "$RMQ_CLUSTER" -u "$ACL_APP" -p "$ACL_APP_SECRET" 2>&1 || true)"
  grep -qi 'success' <<<"$out" && ! grep -qi exception <<<"$out" || { log "createUser failed:"; echo "$out" >&2; return 1; }
  out="$(mqadmin createAcl -n "$NS_ADDR" -c "$RMQ_CLUSTER" -s "User:$ACL_APP" -r 'Topic:RmqAcl*,Group:*' -a Pub,Sub -d Allow 2>&1 || true)"
  grep -qi 'success' <<<"$out" && ! grep -qi exception <<<"$out" || { log "createAcl failed:"; echo "$out" >&2; return 1; }
}

# ROCKETMQ_HOME must be non-null or the servers exit -2.  5.x reads only conf/tools.yml from it
# (mqadmin ACL credentials), so an empty dir is enough.  4.x also configures logback from
# conf/logback_{namesrv,broker,tools}.xml there (a missing file aborts the name server and the
# broker), so those are written here.
rmq_home() {
  local home=$RMQ_DATA/rmqhome
  mkdir -p "$home/conf"
  if ((RMQ_MAJOR == 4)) && [[ ! -f "$home/conf/logback_tools.xml" ]]; then
    local f
    for f in namesrv broker tools; do logback_v4 "$f" >"$home/conf/logback_$f.xml"; done
  fi
  echo "$home"
}

# logback_v4 NAME : one INFO file log, ${user.home}/logs/rocketmqlogs/NAME.log (user.home is the
# process's own dir), for every logger; the servers' boot lines go to stdout regardless.
logback_v4() {
  cat <<XML
<?xml version="1.0" encoding="UTF-8"?>
<configuration>
  <appender name="file" class="ch.qos.logback.core.FileAppender">
    <file>\${user.home}/logs/rocketmqlogs/$1.log</file>
    <append>true</append>
    <encoder><pattern>%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level [%thread] %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="file"/></root>
</configuration>
XML
}

# launch DIR MAIN_CLASS LOGBACK_RESOURCE "HEAP_OPTS" [program args...]
launch() {
  local dir=$1 main=$2 logback=$3 heap=$4 home pid tls
  shift 4
  home="$(rmq_home)"
  mapfile -t tls < <(tls_opts)
  mkdir -p "$dir/tmp"
  # shellcheck disable=SC2086  # $heap and RMQ_EXTRA_JVM_OPTS are deliberately word-split
  nohup "$JAVA" "${JAVA_COMMON[@]}" $heap \
    -Duser.home="$dir" -Djava.io.tmpdir="$dir/tmp" \
    -Drocketmq.home.dir="$home" \
    -Drmq.logback.configurationFile="$logback" \
    -Dtls.server.mode="$RMQ_TLS_MODE" "${tls[@]}" \
    ${RMQ_EXTRA_JVM_OPTS:-} \
    -cp "$RMQ_LIB/*" "$main" "$@" >"$dir/stdout.log" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$dir/pid"
}

# wait_namesrv DIR NAME PORT DEADLINE
wait_namesrv() {
  local dir=$1 name=$2 port=$3 deadline=$4
  if ((RMQ_MAJOR == 4)); then
    # 4.x prints no address in its boot line and binds every address: wait for the port too
    wait_line "$dir" "$name" "The Name Server boot success" "$deadline" && wait_port "$port" "$deadline"
  else
    wait_line "$dir" "$name" "The Name Server boot success.*:$port" "$deadline"
  fi
}

# wait_line DIR NAME EXTENDED_REGEX DEADLINE  (boot lines are printed to stdout by System.out.printf)
wait_line() {
  local dir=$1 name=$2 re=$3 deadline=$4 pid
  pid="$(<"$dir/pid")"
  while ((SECONDS < deadline)); do
    if grep -Eq "$re" "$dir/stdout.log" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) exited before becoming ready"; show_logs "$dir"; return 1
    fi
    sleep 0.25
  done
  log "$name not ready within ${RMQ_START_TIMEOUT}s"; show_logs "$dir"; return 1
}

# wait_port PORT DEADLINE
wait_port() {
  while ! port_open "$1"; do
    if ((SECONDS >= $2)); then log "port $1 not accepting connections within ${RMQ_START_TIMEOUT}s"; return 1; fi
    sleep 0.25
  done
}

show_logs() {
  local dir=$1 f
  for f in "$dir/stdout.log" "$dir"/logs/rocketmqlogs/{namesrv,broker}.log; do
    [[ -f "$f" ]] || continue
    echo "----- tail -n 40 $f" >&2
    tail -n 40 "$f" >&2
  done
}

# stop_one DIR NAME : SIGTERM, then SIGKILL after RMQ_STOP_TIMEOUT.  Only ever the recorded pid.
stop_one() {
  local dir=$1 name=$2 pid i
  if pid="$(pid_of "$dir")"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # a process frozen with SIGSTOP handles the SIGTERM only once continued
    kill -CONT "$pid" 2>/dev/null || true
    for ((i = 0; i < RMQ_STOP_TIMEOUT * 4; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still alive after ${RMQ_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  fi
  rm -f "$dir/pid"
}

# ---------------------------------------------------------------------------------- mqadmin
# -Drocketmq.namesrv.addr makes `-n` optional; an explicit -n still wins.
mqadmin() {
  lib_ok || die "RocketMQ $RMQ_VERSION jars not fetched (run: $0 fetch)"
  local home tls
  home="$(rmq_home)"
  mapfile -t tls < <(tls_opts)
  mkdir -p "$RMQ_DATA/tools"
  "$JAVA" "${JAVA_COMMON[@]}" -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 \
    -Duser.home="$RMQ_DATA/tools" -Drocketmq.home.dir="$home" \
    -Drmq.logback.configurationFile=rmq.tools.logback.xml \
    -Drocketmq.namesrv.addr="$NS_ADDR" "${tls[@]}" \
    -cp "$RMQ_LIB/*" "$ADMIN_MAIN" "$@" 9>&-
}

# registered DEADLINE : wait until clusterList shows every broker at its address.
# mqadmin exits 0 even when it fails, so only its output counts.  Columns:
#   #Cluster Name  #Broker Name  #BID  #Addr  #Version ...
registered() {
  local deadline=$1 out i missing ns=$NS_ADDR
  while :; do
    out="$(mqadmin clusterList -n "$ns" 2>&1 || true)"
    { echo "=== $(date +%T) clusterList $ns"; echo "$out"; } >>"$RMQ_DATA/tools/clusterList.log"
    # clusterList prints a broker's row only if its GET_BROKER_RUNTIME_INFO call succeeds (3 s
    # timeout, exceptions swallowed): on a loaded 2-core box the first call(s) after boot can
    # print the header alone although the broker is registered - so retry until the deadline.
    missing=
    for ((i = 0; i < RMQ_BROKERS; i++)); do
      grep -Eq "^$RMQ_CLUSTER[[:space:]]+$(broker_name $i)[[:space:]]+0[[:space:]]+$(hostport_re "$(broker_port $i)")[[:space:]]" <<<"$out" ||
        missing+=" $(broker_name $i) ($(hostport "$(broker_port $i)"))"
      if ((RMQ_SLAVES)); then
        grep -Eq "^$RMQ_CLUSTER[[:space:]]+$(broker_name $i)[[:space:]]+1[[:space:]]+$(hostport_re "$(slave_port $i)")[[:space:]]" <<<"$out" ||
          missing+=" $(broker_name $i)-slave ($(hostport "$(slave_port $i)"))"
      fi
    done
    if [[ -z "$missing" ]]; then
      # the second name server has its own registrations
      if ((RMQ_NAMESRVS == 2)) && [[ "$ns" == "$NS_ADDR" ]]; then ns=$NS2_ADDR; continue; fi
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "not in clusterList of $ns:$missing; last output:"
      echo "$out" >&2
      return 1
    fi
    sleep 1
  done
}

# --------------------------------------------------------------------------------- subcommands
status() {
  local rc=0 pid i dir name addr port r
  if pid="$(pid_of "$NS_DIR")" && port_open "$RMQ_NAMESRV_PORT"; then
    echo "namesrv: running, pid $pid, $NS_ADDR"
  elif [[ -n "${pid:-}" ]]; then
    echo "namesrv: pid $pid alive but $NS_ADDR not accepting connections"; rc=1
  else
    echo "namesrv: not running ($NS_ADDR)"; rc=1
  fi
  if ((RMQ_NAMESRVS == 2)); then
    pid=
    if pid="$(pid_of "$NS2_DIR")" && port_open "$NS2_PORT"; then
      echo "namesrv-2: running, pid $pid, $NS2_ADDR"
    else
      echo "namesrv-2: not running or not accepting connections ($NS2_ADDR)"; rc=1
    fi
  fi
  local roles=0
  ((RMQ_SLAVES)) && roles="0 1"
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    for r in $roles; do
      if ((r == 0)); then
        dir="$(broker_dir $i)" name="$(broker_name $i)" port="$(broker_port $i)"
      else
        dir="$(slave_dir $i)" name="$(broker_name $i)-slave" port="$(slave_port $i)"
      fi
      pid= addr="$(hostport "$port")"
      if pid="$(pid_of "$dir")" && port_open "$port"; then
        echo "broker:  running, pid $pid, $name $addr, cluster $RMQ_CLUSTER"
      elif [[ -n "${pid:-}" ]]; then
        echo "broker:  pid $pid alive but $addr not accepting connections"; rc=1
      else
        echo "broker:  not running ($name $addr)"; rc=1
      fi
    done
  done
  echo "data:    $RMQ_DATA"
  return $rc
}

# pids : NAME PID of every running process of this cluster, namesrv first, then each broker by
# its brokerName (every broker dir in $RMQ_DATA, whatever RMQ_BROKERS says); tests pause brokers
# with it.
pids() {
  local pid dir name
  while read -r name dir; do
    if pid="$(pid_of "$dir")"; then echo "$name $pid"; fi
  done < <(processes)
}

# every broker dir this data dir has (masters, then slaves), whatever the settings say now
broker_dirs() {
  local dir
  for dir in "$RMQ_DATA"/broker "$RMQ_DATA"/broker[0-9] "$RMQ_DATA"/broker-slave "$RMQ_DATA"/broker[0-9]-slave; do
    if [[ -d "$dir" ]]; then echo "$dir"; fi
  done
}

# processes : NAME DIR of every process this data dir has had (running or not): namesrv,
# namesrv-2, each broker by its brokerName, slaves as <brokerName>-slave
processes() {
  local dir name
  if [[ -f "$NS_DIR/namesrv.conf" ]]; then echo "namesrv $NS_DIR"; fi
  if [[ -f "$NS2_DIR/namesrv.conf" ]]; then echo "namesrv-2 $NS2_DIR"; fi
  while read -r dir; do
    [[ -f "$dir/broker.conf" ]] || continue
    name="$(sed -n 's/^brokerName=//p' "$dir/broker.conf")"
    if grep -qx 'brokerRole=SLAVE' "$dir/broker.conf"; then name+=-slave; fi
    echo "$name $dir"
  done < <(broker_dirs)
}

# dir_of NAME : the data dir of the process NAME
dir_of() {
  local name dir
  while read -r name dir; do
    if [[ "$name" == "$1" ]]; then echo "$dir"; return 0; fi
  done < <(processes)
  die "no process named '$1' in $RMQ_DATA (names: $(processes | cut -d' ' -f1 | tr '\n' ' '))"
}

# signal_one SIGNAL NAME : kill/stop/cont one running process by name
signal_one() {
  local dir pid
  dir="$(dir_of "$2")"
  pid="$(pid_of "$dir")" || die "$2 is not running"
  kill -"$1" "$pid"
  if [[ "$1" == KILL ]]; then
    local i
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  log "$2 (pid $pid): SIG$1"
}

# start_one DIR : start the process of DIR again, same configuration and store
start_one() {
  local dir=$1 name=$2 deadline=$((SECONDS + RMQ_START_TIMEOUT)) port
  if [[ -f "$dir/namesrv.conf" ]]; then
    port="$(sed -n 's/^listenPort=//p' "$dir/namesrv.conf")"
    launch "$dir" "$NS_MAIN" rmq.namesrv.logback.xml \
      "-Xms128m -Xmx256m -XX:MaxDirectMemorySize=128m" -c "$dir/namesrv.conf"
    wait_namesrv "$dir" "$name" "$port" "$deadline"
  else
    port="$(sed -n 's/^listenPort=//p' "$dir/broker.conf")"
    launch "$dir" "$BROKER_MAIN" rmq.broker.logback.xml \
      "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=512m" -c "$dir/broker.conf"
    wait_line "$dir" "$name" "The broker\\[.*, $(hostport_re "$port")\\] boot success" "$deadline"
  fi
}

restart_one() {
  local dir
  dir="$(dir_of "$1")"
  stop_one "$dir" "$1"
  start_one "$dir" "$1" || die "$1 did not come back"
  log "$1 restarted (pid $(<"$dir/pid"))"
}

down() {
  local dir
  [[ -d "$RMQ_DATA" ]] || { log "nothing to stop ($RMQ_DATA does not exist)"; return 0; }
  # brokers first: they unregister from the name server on shutdown; every broker dir found,
  # whatever RMQ_BROKERS says now, in parallel
  # (waiting on these pids only: this shell may be the parent of the name server it started)
  local stoppers=()
  while read -r dir; do
    stop_one "$dir" "broker ${dir##*/}" & stoppers+=($!)
  done < <(broker_dirs)
  if ((${#stoppers[@]})); then wait "${stoppers[@]}"; fi
  stop_one "$NS_DIR" namesrv & stoppers=($!)
  if [[ -d "$NS2_DIR" ]]; then stop_one "$NS2_DIR" namesrv-2 & stoppers+=($!); fi
  wait "${stoppers[@]}"
  log "down ($RMQ_DATA kept for its logs; the next 'up' wipes it)"
}

# write_broker_conf INDEX [slave]
write_broker_conf() {
  local dir store id=0 role=ASYNC_MASTER port
  dir="$(broker_dir "$1")" port="$(broker_port "$1")"
  if [[ "${2:-}" == slave ]]; then
    dir="$(slave_dir "$1")" port="$(slave_port "$1")" id=1 role=SLAVE
  fi
  store="$dir/store"
  mkdir -p "$store"
  # Properties parsing does not trim numbers/booleans: a trailing blank silently disables a key,
  # hence the sed.  Sizes: 64 MiB commitlog files, 600 kB consume-queue files, ~1.7 MB index.
  {
    cat <<CONF
brokerClusterName=$RMQ_CLUSTER
brokerName=$(broker_name "$1")
brokerId=$id
brokerRole=$role
namesrvAddr=$NS_LIST
listenPort=$port
bindAddress=$RMQ_HOST
brokerIP1=$RMQ_HOST
brokerIP2=$RMQ_HOST
storePathRootDir=$store
storePathCommitLog=$store/commitlog
mappedFileSizeCommitLog=67108864
mappedFileSizeConsumeQueue=600000
maxHashSlotNum=20000
maxIndexNum=80000
flushDiskType=ASYNC_FLUSH
deleteWhen=00;01;02;03;04;05;06;07;08;09;10;11;12;13;14;15;16;17;18;19;20;21;22;23
fileReservedTime=12
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
defaultTopicQueueNums=4
enablePropertyFilter=true
filterSupportRetry=true
traceTopicEnable=true
storeReplyMessageEnable=true
transactionTimeOut=3000
transactionCheckInterval=1000
transactionCheckMax=15
# The broker writes its "transaction ended" markers in batches every transactionOpBatchInterval
# (3000 ms by default). With the short transactionTimeOut above it would check transactions that
# had already ended, and a checker answering commit would deliver them twice.
transactionOpBatchInterval=100
timerWheelEnable=true
timerPrecisionMs=1000
waitTimeMillsInSendQueue=1000
osPageCacheBusyTimeOutMills=3000
CONF
    acl_conf
    # a consumer may read from the slave while the master runs too (the broker suggests it when
    # the master's page cache is short); with the master gone it reads there anyway
    if ((RMQ_SLAVES)); then echo "slaveReadEnable=true"; fi
    if [[ -n "${RMQ_BROKER_CONF_EXTRA:-}" ]]; then printf '%s\n' "$RMQ_BROKER_CONF_EXTRA"; fi
  } | sed -e 's/[[:space:]]*$//' >"$dir/broker.conf"
}

# the brokers' names and addresses, for messages
brokers_text() {
  local i out=
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    out+="${out:+, }$(broker_name $i) $(hostport "$(broker_port $i)")"
    if ((RMQ_SLAVES)); then out+=" (slave $(hostport "$(slave_port $i)"))"; fi
  done
  echo "$out"
}

up() {
  local ns_pid="" br_pids=() running=0 deadline p i dir

  ns_pid="$(pid_of "$NS_DIR")" || true
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    if p="$(pid_of "$(broker_dir $i)")"; then br_pids+=("$p"); running=$((running + 1)); fi
    if ((RMQ_SLAVES)) && p="$(pid_of "$(slave_dir $i)")"; then br_pids+=("$p"); running=$((running + 1)); fi
  done
  if ((RMQ_NAMESRVS == 2)) && p="$(pid_of "$NS2_DIR")"; then ns_pid+=" $p"; fi
  if [[ -n "$ns_pid" ]] && ((running == RMQ_BROKERS * (1 + RMQ_SLAVES))); then
    if registered $((SECONDS + RMQ_START_TIMEOUT)); then
      echo "RocketMQ already running: namesrv $NS_ADDR (pid $ns_pid), brokers $(brokers_text) (pids ${br_pids[*]}), data $RMQ_DATA"
      return 0
    fi
    die "processes run (namesrv $ns_pid, brokers ${br_pids[*]}) but not every broker is registered; run '$0 down' first"
  fi
  if [[ -n "$ns_pid" ]] || ((running > 0)); then
    log "half-running cluster in $RMQ_DATA: stopping it and starting fresh"
    down
  fi

  fetch

  for ((i = 0; i < RMQ_BROKERS; i++)); do
    p="$(broker_port $i)"
    for p in $((i == 0 ? RMQ_NAMESRV_PORT : p)) $((p - 2)) "$p" $((p + 1)) \
        $((RMQ_SLAVES && i == 0 ? p + 3 : p)) $((RMQ_SLAVES ? p + 5 : p)) $((RMQ_SLAVES ? p + 6 : p)) \
        $((RMQ_NAMESRVS == 2 && i == 0 ? NS2_PORT : p)); do
      if port_open "$p"; then die "port $p is already in use (another cluster? set RMQ_NAMESRV_PORT/RMQ_BROKER_PORT)"; fi
    done
  done

  # fresh store and logs: only our own sub-directories, never the whole RMQ_DATA
  rm -rf "$NS_DIR" "$NS2_DIR" "$BROKER_DIR" "$RMQ_DATA"/broker[0-9] "$RMQ_DATA"/broker-slave \
    "$RMQ_DATA"/broker[0-9]-slave "$RMQ_DATA/tools" "$RMQ_DATA/rmqhome"
  mkdir -p "$NS_DIR"
  if ((RMQ_TLS_CERTS)); then make_certs; fi
  write_acl_files
  deadline=$((SECONDS + RMQ_START_TIMEOUT))

  local t0=$SECONDS
  printf 'listenPort=%s\nbindAddress=%s\n' "$RMQ_NAMESRV_PORT" "$RMQ_HOST" >"$NS_DIR/namesrv.conf"
  launch "$NS_DIR" "$NS_MAIN" rmq.namesrv.logback.xml \
    "-Xms128m -Xmx256m -XX:MaxDirectMemorySize=128m" -c "$NS_DIR/namesrv.conf"
  if ((RMQ_NAMESRVS == 2)); then
    mkdir -p "$NS2_DIR"
    printf 'listenPort=%s\nbindAddress=%s\n' "$NS2_PORT" "$RMQ_HOST" >"$NS2_DIR/namesrv.conf"
    launch "$NS2_DIR" "$NS_MAIN" rmq.namesrv.logback.xml \
      "-Xms128m -Xmx256m -XX:MaxDirectMemorySize=128m" -c "$NS2_DIR/namesrv.conf"
  fi
  wait_namesrv "$NS_DIR" namesrv "$RMQ_NAMESRV_PORT" "$deadline" || { down; exit 1; }
  if ((RMQ_NAMESRVS == 2)); then
    wait_namesrv "$NS2_DIR" namesrv-2 "$NS2_PORT" "$deadline" || { down; exit 1; }
  fi
  local t1=$SECONDS

  # the brokers boot in parallel
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    dir="$(broker_dir $i)"
    mkdir -p "$dir"
    write_broker_conf $i
    launch "$dir" "$BROKER_MAIN" rmq.broker.logback.xml \
      "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=512m" -c "$dir/broker.conf"
    if ((RMQ_SLAVES)); then
      dir="$(slave_dir $i)"
      mkdir -p "$dir"
      write_broker_conf $i slave
      launch "$dir" "$BROKER_MAIN" rmq.broker.logback.xml \
        "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=512m" -c "$dir/broker.conf"
    fi
  done
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    # the port in the line guards against a broker ignoring listenPort (develop-only bug #9756)
    wait_line "$(broker_dir $i)" "broker $(broker_name $i)" \
      "The broker\\[$(broker_name $i), $(hostport_re "$(broker_port $i)")\\] boot success" "$deadline" ||
      { down; exit 1; }
    if ((RMQ_SLAVES)); then
      wait_line "$(slave_dir $i)" "broker $(broker_name $i)-slave" \
        "The broker\\[$(broker_name $i), $(hostport_re "$(slave_port $i)")\\] boot success" "$deadline" ||
        { down; exit 1; }
    fi
  done
  local t2=$SECONDS
  registered "$deadline" || { while read -r dir; do show_logs "$dir"; done < <(broker_dirs); down; exit 1; }
  if ((RMQ_ACL == 2)); then acl2_users || { down; exit 1; }; fi

  log "namesrv ready in $((t1 - t0)) s, broker(s) in $((t2 - t1)) s, registered after $((SECONDS - t0)) s"
  echo "RocketMQ $RMQ_VERSION up: namesrv $NS_LIST, brokers $(brokers_text), cluster $RMQ_CLUSTER, data $RMQ_DATA"
}

# create_topic TOPIC [QUEUES] : updateTopic on every master of the cluster, then wait until the
# name server's route shows the queue counts (so a client can use the topic right away).
create_topic() {
  local topic=${1:?usage: create-topic TOPIC [QUEUES]} q=${2:-4} out deadline i
  [[ "$q" =~ ^[1-9][0-9]*$ ]] || die "QUEUES must be a positive integer, got '$q'"
  pid_of "$BROKER_DIR" >/dev/null || die "broker not running (run: $0 up)"
  out="$(mqadmin updateTopic -n "$NS_ADDR" -c "$RMQ_CLUSTER" -t "$topic" -r "$q" -w "$q" 2>&1 || true)"
  for ((i = 0; i < RMQ_BROKERS; i++)); do
    if ! grep -Eq "create topic to $(hostport_re "$(broker_port $i)") success" <<<"$out" ||
       grep -qi 'exception' <<<"$out"; then
      log "updateTopic $topic failed:"; echo "$out" >&2; return 1
    fi
  done
  deadline=$((SECONDS + 30))
  while :; do
    out="$(mqadmin topicRoute -n "$NS_ADDR" -t "$topic" 2>&1 || true)"
    # pretty-printed JSON: "readQueueNums":8, / "writeQueueNums":8 (last key, no comma)
    if grep -Eq "\"readQueueNums\":$q([^0-9]|\$)" <<<"$out" &&
       grep -Eq "\"writeQueueNums\":$q([^0-9]|\$)" <<<"$out"; then
      echo "topic $topic: $q read/write queues on $(brokers_text) (cluster $RMQ_CLUSTER)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "route of $topic does not show $q queues; last topicRoute output:"; echo "$out" >&2; return 1
    fi
    sleep 1
  done
}

# lock : serialise up/down/create-topic on one data dir (fd 9; the JVMs are started with 9>&-)
lock() {
  mkdir -p "$RMQ_DATA"
  exec 9>"$RMQ_DATA/.lock"
  flock -w 300 9 || die "another up/down holds $RMQ_DATA/.lock"
}

print_env() {
  cat <<EOF
RMQ_VERSION=$RMQ_VERSION
RMQ_NAMESRV_PORT=$RMQ_NAMESRV_PORT
RMQ_BROKER_PORT=$RMQ_BROKER_PORT
RMQ_DATA=$RMQ_DATA
RMQ_CLUSTER=$RMQ_CLUSTER
RMQ_BROKER_NAME=$RMQ_BROKER_NAME
RMQ_BROKERS=$RMQ_BROKERS
RMQ_HOST=$RMQ_HOST
RMQ_NAMESRVS=$RMQ_NAMESRVS
RMQ_SLAVES=$RMQ_SLAVES
RMQ_LIB=$RMQ_LIB
RMQ_NAMESRV=$NS_LIST
RMQ_TLS_MODE=$RMQ_TLS_MODE
RMQ_TLS_CERTS=$RMQ_TLS_CERTS
RMQ_ACL=$RMQ_ACL
JAVA=$JAVA
EOF
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  fetch) fetch ;;
  up) lock; up ;;
  down) if [[ -d "$RMQ_DATA" ]]; then lock; fi; down ;;
  status) status ;;
  pids) pids ;;
  create-topic) create_topic "$@" ;;
  mqadmin) mqadmin "$@" ;;
  kill) signal_one KILL "${1:?usage: kill NAME}" ;;
  stop) signal_one STOP "${1:?usage: stop NAME}" ;;
  cont) signal_one CONT "${1:?usage: cont NAME}" ;;
  restart) lock; restart_one "${1:?usage: restart NAME}" ;;
  env) print_env ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
