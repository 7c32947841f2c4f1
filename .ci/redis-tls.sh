#!/usr/bin/env bash
# TLS-only redis-servers on loopback ports, with a private CA and a server
# certificate for 127.0.0.1 made here with openssl:
#   .ci/redis-tls.sh start DIR PORT             one standalone server
#   .ci/redis-tls.sh start DIR PORT PORT PORT   a three-master cluster (TLS on the bus too)
#   .ci/redis-tls.sh stop DIR
# Clients trust DIR/ca.crt to reach rediss://127.0.0.1:PORT.
set -euo pipefail

cmd=${1:?start or stop}
dir=${2:?directory}
shift 2
ports=("$@")

stop() {
  for pid in "$dir"/redis-*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  rm -rf "$dir"
}

certificates() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=session test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null
}

cli() { # port, redis-cli arguments...
  local port=$1; shift
  redis-cli --tls --cacert "$dir/ca.crt" -h 127.0.0.1 -p "$port" "$@"
}

case "$cmd" in
  stop) stop ;;
  start)
    [ ${#ports[@]} = 1 ] || [ ${#ports[@]} = 3 ] || { echo "one port or three" >&2; exit 2; }
    stop
    mkdir -p "$dir"
    certificates
    cluster=()
    if [ ${#ports[@]} = 3 ]; then
      cluster=(--cluster-enabled yes --tls-cluster yes --cluster-node-timeout 5000)
    fi
    for p in "${ports[@]}"; do
      redis-server --port 0 --tls-port "$p" --bind 127.0.0.1 --daemonize yes \
        --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
        --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no \
        "${cluster[@]}" --cluster-config-file "$dir/nodes-$p.conf" \
        --save "" --appendonly no --dir "$dir" --pidfile "$dir/redis-$p.pid" \
        --logfile "$dir/redis-$p.log"
    done
    for p in "${ports[@]}"; do
      for _ in $(seq 100); do
        cli "$p" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
      cli "$p" ping >/dev/null || { echo "redis TLS on port $p did not come up" >&2; cat "$dir/redis-$p.log" >&2; exit 1; }
    done
    if [ ${#ports[@]} = 3 ]; then
      cli "${ports[0]}" --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
      for _ in $(seq 100); do
        cli "${ports[0]}" cluster info | grep -q 'cluster_state:ok' && break
        sleep 0.1
      done
      cli "${ports[0]}" cluster info | grep -q 'cluster_state:ok' || { echo "TLS cluster not ok" >&2; exit 1; }
    fi
    echo "redis over TLS ready on ports ${ports[*]} (CA: $dir/ca.crt)"
    ;;
  *) echo "usage: $0 start|stop DIR [PORT…]" >&2; exit 2 ;;
esac
