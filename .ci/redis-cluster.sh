#!/usr/bin/env bash
# Starts (or stops) a three-master Redis Cluster on loopback ports for the
# tests: `.ci/redis-cluster.sh start [BASE_PORT]` / `.ci/redis-cluster.sh stop [BASE_PORT]`.
# Nothing is kept on disk beyond the nodes.conf files in a temp folder.
set -euo pipefail

cmd=${1:?start or stop}
base=${2:-7000}
ports=("$base" "$((base + 1))" "$((base + 2))")
dir=${REDIS_CLUSTER_DIR:-/tmp/session-redis-cluster-$base}

stop() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}

case "$cmd" in
  stop) stop ;;
  start)
    stop
    mkdir -p "$dir"
    for p in "${ports[@]}"; do
      redis-server --port "$p" --bind 127.0.0.1 --daemonize yes \
        --cluster-enabled yes --cluster-config-file "$dir/nodes-$p.conf" \
        --cluster-node-timeout 5000 --dir "$dir" --save "" --appendonly no \
        --logfile "$dir/redis-$p.log"
    done
    for p in "${ports[@]}"; do
      for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 100); do
      ok=1
      for p in "${ports[@]}"; do
        redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || ok=0
      done
      [ "$ok" = 1 ] && break
      sleep 0.2
    done
    [ "$ok" = 1 ] || { echo "redis cluster did not become ready" >&2; exit 1; }
    echo "redis cluster ready on ports ${ports[*]}"
    ;;
  *) echo "usage: $0 start|stop [BASE_PORT]" >&2; exit 2 ;;
esac
