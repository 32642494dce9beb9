#!/usr/bin/env bash
# Start/stop the real services schoolmon's tests and demo use, as plain processes on free
# loopback ports with all their data under DIR.
#
#   scripts/services.sh start DIR [mosquitto] [influxdb] [victoria-metrics] [nats-cluster]
#                                                      (default: the first three)
#   scripts/services.sh stop  DIR [name...]                                   (default: all)
#   scripts/services.sh env   DIR                                             (print DIR/services.env)
#
# nats-cluster: three nats-server 2.9 nodes (JetStream cluster "schoolmon", MQTT 3.1.1 listener
# on each, MQTT streams replicated on all three); env NATS_MQTT_PORTS=p1,p2,p3 and
# NATS_URLS; `stop DIR nats-1` (or nats-2, nats-3) stops one node, `start DIR nats-1` brings it
# back on its ports with its JetStream store.
#
# INFLUXDB_AUTH=user:password starts InfluxDB with authentication on, that user as its admin.
#
# A service keeps its port across stop/start in the same DIR (tests stop InfluxDB and start it
# again).  `stop` ends exactly the processes this script started in DIR (by their pid files).
set -euo pipefail

ALL=(mosquitto influxdb victoria-metrics)
KNOWN=(mosquitto influxdb victoria-metrics nats-cluster nats-1 nats-2 nats-3)

die() { echo "services.sh: $*" >&2; exit 2; }

# free_port, port_of
# shellcheck source=scripts/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

is_running() {  # a zombie (killed, not yet reaped: kill -0 still succeeds) is not running
    local pidfile="$1/$2.pid" pid state
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
    [ "$state" != Z ]
}

wait_for() {  # name, command...; up to 30 s
    local name=$1; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$name did not answer within 30 s (see its log in the service directory)"
}

start_mosquitto() {
    local dir=$1 port; port=$(port_of "$dir" mosquitto)
    command -v mosquitto >/dev/null || die "mosquitto is not installed (apt-get install mosquitto)"
    mkdir -p "$dir/mosquitto"
    cat >"$dir/mosquitto.conf" <<EOF
# Loopback only, for tests and the demo; deployments use configs/mosquitto.conf (TLS, ACL).
per_listener_settings false
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/mosquitto/
autosave_interval 1
log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
user $(id -un)
EOF
    mosquitto -c "$dir/mosquitto.conf" >>"$dir/mosquitto.out" 2>&1 &
    echo $! >"$dir/mosquitto.pid"
    wait_for mosquitto python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)"
}

start_influxdb() {
    local dir=$1 port rpc; port=$(port_of "$dir" influxdb); rpc=$(port_of "$dir" influxdb-rpc)
    command -v influxd >/dev/null || die "influxd is not installed (apt-get install influxdb)"
    mkdir -p "$dir/influxdb"
    local auth_enabled=false; [ -z "${INFLUXDB_AUTH:-}" ] || auth_enabled=true
    cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/influxdb/meta"
[data]
  dir = "$dir/influxdb/data"
  wal-dir = "$dir/influxdb/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
  auth-enabled = $auth_enabled
[continuous_queries]
  log-enabled = false
EOF
    influxd run -config "$dir/influxdb.conf" >>"$dir/influxdb.log" 2>&1 &
    echo $! >"$dir/influxdb.pid"
    wait_for influxdb curl -sf "http://127.0.0.1:$port/ping"
    local auth=()
    if [ -n "${INFLUXDB_AUTH:-}" ]; then
        # With no user yet, InfluxDB accepts this one query without credentials (and with
        # them once the user exists: a restart).
        curl -sf -u "$INFLUXDB_AUTH" -XPOST "http://127.0.0.1:$port/query" --data-urlencode \
            "q=CREATE USER \"${INFLUXDB_AUTH%%:*}\" WITH PASSWORD '${INFLUXDB_AUTH#*:}' WITH ALL PRIVILEGES" \
            >/dev/null || true
        auth=(-u "$INFLUXDB_AUTH")
    fi
    curl -sf "${auth[@]}" -XPOST "http://127.0.0.1:$port/query" --data-urlencode "q=CREATE DATABASE schoolmon" >/dev/null
}

start_victoria_metrics() {
    local dir=$1 port; port=$(port_of "$dir" victoria-metrics)
    command -v victoria-metrics >/dev/null || die "victoria-metrics is not installed (apt-get install victoria-metrics)"
    mkdir -p "$dir/victoria-metrics"
    # dedup at 1ms: a re-delivered sample (same series and time) counts once, as in InfluxDB.
    victoria-metrics -httpListenAddr="127.0.0.1:$port" -storageDataPath="$dir/victoria-metrics" \
        -retentionPeriod=100y -dedup.minScrapeInterval=1ms -search.latencyOffset=0s &>>"$dir/victoria-metrics.log" &
    echo $! >"$dir/victoria-metrics.pid"
    wait_for victoria-metrics curl -sf "http://127.0.0.1:$port/health"
}

start_nats_node() {  # dir, node number (1-3): one member of the 3-node cluster
    local dir=$1 n=$2 client mqtt route
    command -v nats-server >/dev/null || die "nats-server is not installed (apt-get install nats-server)"
    client=$(port_of "$dir" "nats-$n"); mqtt=$(port_of "$dir" "nats-$n-mqtt")
    local routes=()
    for k in 1 2 3; do
        route=$(port_of "$dir" "nats-$k-route")
        routes+=("nats-route://127.0.0.1:$route")
    done
    mkdir -p "$dir/nats-$n"
    cat >"$dir/nats-$n.conf" <<EOF
# One node of a loopback 3-node cluster for tests and benches (no TLS, no auth).
server_name: n$n
listen: 127.0.0.1:$client
jetstream {
  store_dir: "$dir/nats-$n"
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: schoolmon
  listen: 127.0.0.1:$(port_of "$dir" "nats-$n-route")
  routes: [${routes[0]}, ${routes[1]}, ${routes[2]}]
}
mqtt {
  listen: 127.0.0.1:$mqtt
  # Sessions, retained messages and QoS 1 queues live in JetStream, on all three nodes.
  stream_replicas: 3
  # A QoS 1 message not PUBACKed within this is sent again (the collector acks after the write).
  ack_wait: "30s"
  max_ack_pending: 2000
}
EOF
    nats-server -c "$dir/nats-$n.conf" >>"$dir/nats-$n.log" 2>&1 &
    echo $! >"$dir/nats-$n.pid"
}

nats_ready() {  # every node answers MQTT and JetStream has a meta leader
    local dir=$1 n
    for n in 1 2 3; do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $(cat "$dir/nats-$n-mqtt.port")), 1)" || return 1
    done
    grep -qh "JetStream cluster new metadata leader\\|Self is new JetStream cluster metadata leader" "$dir"/nats-*.log
}

start_nats_cluster() {
    local dir=$1 n
    for n in 1 2 3; do is_running "$dir" "nats-$n" || start_nats_node "$dir" "$n"; done
    wait_for nats-cluster nats_ready "$dir"
}

start_nats_one() {  # dir, n: one node back, answering MQTT
    start_nats_node "$1" "$2"
    wait_for "nats-$2" python3 -c "import socket; socket.create_connection(('127.0.0.1', $(cat "$1/nats-$2-mqtt.port")), 1)"
}
start_nats_1() { start_nats_one "$1" 1; }
start_nats_2() { start_nats_one "$1" 2; }
start_nats_3() { start_nats_one "$1" 3; }

write_env() {
    local dir=$1
    {
        [ -s "$dir/mosquitto.port" ] && echo "MQTT_HOST=127.0.0.1" && echo "MQTT_PORT=$(cat "$dir/mosquitto.port")"
        [ -s "$dir/influxdb.port" ] && echo "INFLUXDB_URL=http://127.0.0.1:$(cat "$dir/influxdb.port")"
        [ -s "$dir/victoria-metrics.port" ] && echo "VICTORIA_URL=http://127.0.0.1:$(cat "$dir/victoria-metrics.port")"
        if [ -s "$dir/nats-1-mqtt.port" ]; then
            echo "NATS_MQTT_PORTS=$(cat "$dir/nats-1-mqtt.port"),$(cat "$dir/nats-2-mqtt.port"),$(cat "$dir/nats-3-mqtt.port")"
            echo "NATS_URLS=nats://127.0.0.1:$(cat "$dir/nats-1.port"),nats://127.0.0.1:$(cat "$dir/nats-2.port"),nats://127.0.0.1:$(cat "$dir/nats-3.port")"
        fi
        true
    } >"$dir/services.env"
}

stop_one() {
    local dir=$1 name=$2 pidfile="$1/$2.pid" pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: services.sh start|stop|env DIR [service...]"
shift 2
names=("$@"); explicit=yes; [ ${#names[@]} -gt 0 ] || { names=("${ALL[@]}"); explicit=no; }
for n in "${names[@]}"; do
    case " ${KNOWN[*]} " in *" $n "*) ;; *) die "unknown service $n (known: ${KNOWN[*]})" ;; esac
done

case "$cmd" in
    start)
        mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
        for n in "${names[@]}"; do
            if [ "$n" = nats-cluster ]; then start_nats_cluster "$dir"
            else is_running "$dir" "$n" || "start_${n//-/_}" "$dir"; fi
        done
        write_env "$dir"
        cat "$dir/services.env"
        ;;
    stop)
        [ -d "$dir" ] || exit 0
        dir=$(cd "$dir" && pwd)
        [ "$explicit" = yes ] || names+=(nats-cluster)
        for n in "${names[@]}"; do
            if [ "$n" = nats-cluster ]; then
                for k in 1 2 3; do stop_one "$dir" "nats-$k"; done
            else
                stop_one "$dir" "$n"
            fi
        done
        ;;
    env)
        cat "$dir/services.env"
        ;;
    *) die "unknown command $cmd (start, stop, env)" ;;
esac
