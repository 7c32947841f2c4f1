#!/usr/bin/env bash
# A pgbouncer in transaction pooling mode in front of the PostgreSQL on
# 127.0.0.1:5432, for any database, with a server pool of 5 (a small
# pooler, as production ones are per app server):
#   .ci/pgbouncer.sh start DIR PORT USER…   (trusted users: pgbouncer still wants them listed)
#   .ci/pgbouncer.sh stop DIR
set -euo pipefail

cmd=${1:?start or stop}
dir=${2:?directory}

stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$dir/pgbouncer.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

case "$cmd" in
  stop) stop ;;
  start)
    port=${3:?port}
    shift 3
    stop
    mkdir -p "$dir"
    : > "$dir/userlist.txt"
    for user in "$@"; do printf '"%s" ""\n' "$user" >> "$dir/userlist.txt"; done
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 5
max_client_conn = 2000
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
INI
    chmod 755 "$dir"
    chmod 644 "$dir"/*
    chown -R postgres "$dir" 2>/dev/null || true
    bouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    if [ "$(id -u)" = 0 ]; then
      "$bouncer" -d -u postgres "$dir/pgbouncer.ini"
    else
      "$bouncer" -d "$dir/pgbouncer.ini"
    fi
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "pgbouncer (transaction mode, pool 5) on port $port"; exit 0; }
      sleep 0.1
    done
    echo "pgbouncer did not come up on port $port" >&2
    cat "$dir/pgbouncer.log" >&2 || true
    exit 1
    ;;
  *) echo "usage: $0 start DIR PORT USER… | stop DIR" >&2; exit 2 ;;
esac
